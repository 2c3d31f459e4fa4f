"""A wireless uplink for federated clients: Rician-faded sub-channels, interference and Shannon rates.

The model is our reconstruction of the 6G case study of arXiv:2509.10559 (section V), which names
its ingredients but gives no equations: N clients at distances uniform in [1 m, 1.8 km] from one
base station, K sub-channels of bandwidth B (180 kHz), transmit powers in [0, 24] dBm, and
interference between clients that share a sub-channel. Client ``n`` on sub-channel ``k`` with
power ``p_n`` has the rate

    R_n = B log2(1 + p_n g_nk / (sum_{m != n on k} p_m g_mk + B N0))

with channel power gain ``g_nk = 10^(-PL(d_n)/10) |h_nk|^2``; ``PL(d) = 128.1 + 37.6 log10(d / km)``
dB (the 3GPP macro-cell path loss of TR 36.814, common in wireless-FL papers) and Rician fading
``h = sqrt(K/(K+1)) e^(j phi) + sqrt(1/(K+1)) CN(0, 1)`` (K-factor 3 by default, uniform phase
``phi``), redrawn every round (block fading) while distances stay fixed for the run. ``N0`` is
-174 dBm/Hz. The paper states none of the K-factor, path-loss law or noise density: these are
common textbook choices, all settable in ``[scheduling]``.

Power control (:func:`power_bcd`) is block coordinate descent over the clients: each client's power
in turn is set to the best of a 1 dB grid over its range with the others fixed, which never lowers
the sum rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qflhw._util import stable_seed
from qflhw.config.spec import SchedulingSpec


def dbm_to_w(dbm: float | np.ndarray) -> np.ndarray:
    return np.power(10.0, (np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def w_to_dbm(w: float | np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.asarray(w, dtype=float)) + 30.0


@dataclass(frozen=True, eq=False)
class Uplink:
    """One round's channels: ``gains[n, k]`` (linear power gain of client n on sub-channel k)."""

    gains: np.ndarray
    bandwidth_hz: float
    noise_w: float  # noise power in one sub-channel: B * N0
    p_min_w: float
    p_max_w: float

    @property
    def clients(self) -> int:
        return self.gains.shape[0]

    @property
    def subchannels(self) -> int:
        return self.gains.shape[1]


def distances(spec: SchedulingSpec, n: int, seed: int) -> np.ndarray:
    """Each client's distance to the base station, uniform in [min, max]; fixed for the run."""
    rng = np.random.default_rng(stable_seed(seed, "wireless", "distances"))
    return rng.uniform(spec.min_distance_m, spec.max_distance_m, size=n)


def path_loss_db(spec: SchedulingSpec, d_m: np.ndarray) -> np.ndarray:
    return spec.path_loss_db_1km + 10.0 * spec.path_loss_exponent * np.log10(np.asarray(d_m) / 1000.0)


def rician_power(k_factor: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """|h|^2 of Rician fading with mean power 1 and K-factor ``k_factor`` (0: Rayleigh)."""
    los = np.sqrt(k_factor / (k_factor + 1.0)) * np.exp(1j * rng.uniform(0, 2 * np.pi, size=shape))
    scatter = np.sqrt(1.0 / (k_factor + 1.0)) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)
    return np.abs(los + scatter) ** 2


def uplink(spec: SchedulingSpec, n: int, seed: int, round_: int) -> Uplink:
    """The channels of ``n`` clients in ``round_``: fixed distances, fading drawn for the round."""
    d = distances(spec, n, seed)
    rng = np.random.default_rng(stable_seed(seed, "wireless", "fading", str(round_)))
    fading = rician_power(spec.rician_k, (n, spec.subchannels), rng)
    gains = np.power(10.0, -path_loss_db(spec, d) / 10.0)[:, None] * fading
    noise = float(dbm_to_w(spec.noise_psd_dbm_hz)) * spec.bandwidth_hz
    return Uplink(gains, spec.bandwidth_hz, noise, float(dbm_to_w(spec.min_power_dbm)), float(dbm_to_w(spec.max_power_dbm)))


def rates(link: Uplink, assign: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Shannon rate (bit/s) of each client; ``assign[n]`` is its sub-channel (-1: not transmitting)."""
    assign = np.asarray(assign, dtype=int)
    power_w = np.asarray(power_w, dtype=float)
    on = assign >= 0
    idx = np.arange(link.clients)
    received = np.zeros(link.clients)
    received[on] = power_w[on] * link.gains[idx[on], assign[on]]
    total = np.zeros(link.subchannels)
    np.add.at(total, assign[on], received[on])
    out = np.zeros(link.clients)
    interference = total[assign[on]] - received[on]
    out[on] = link.bandwidth_hz * np.log2(1.0 + received[on] / (interference + link.noise_w))
    return out


def sum_rate(link: Uplink, assign: np.ndarray, power_w: np.ndarray) -> float:
    return float(rates(link, assign, power_w).sum())


def power_bcd(link: Uplink, assign: np.ndarray, power_w: np.ndarray, *, sweeps: int = 2, step_db: float = 1.0) -> np.ndarray:
    """Block coordinate descent on the powers: each client's power in turn set to the best of a
    ``step_db`` grid over its range, the others fixed (only its sub-channel's rates change)."""
    p = np.array(power_w, dtype=float)
    lo, hi = float(w_to_dbm(link.p_min_w)), float(w_to_dbm(link.p_max_w))
    grid = dbm_to_w(np.append(np.arange(lo, hi, step_db), hi))
    assign = np.asarray(assign, dtype=int)
    for _ in range(sweeps):
        changed = False
        for n in np.flatnonzero(assign >= 0):
            k = assign[n]
            members = np.flatnonzero(assign == k)
            g = link.gains[members, k]
            me = int(np.flatnonzero(members == n)[0])
            # sum rate of the sub-channel for each candidate power of client n
            P = np.tile(p[members], (len(grid), 1))
            P[:, me] = grid
            rx = P * g[None, :]
            sinr = rx / (rx.sum(axis=1, keepdims=True) - rx + link.noise_w)
            total = np.log2(1.0 + sinr).sum(axis=1)
            current = float(np.log2(1.0 + (p[members] * g) / ((p[members] * g).sum() - p[members] * g + link.noise_w)).sum())
            best = int(np.argmax(total))
            if total[best] > current * (1 + 1e-12) + 1e-15:
                p[n] = grid[best]
                changed = True
        if not changed:
            break
    return p


def upload_seconds(rate_bps: np.ndarray, bits: int) -> np.ndarray:
    """Time to send ``bits`` at each rate (infinite at rate 0)."""
    r = np.asarray(rate_bps, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(r > 0, bits / np.where(r > 0, r, 1.0), np.inf)
