"""Which clients upload how each round: sub-channels and powers that maximize the uplink sum rate.

With a ``[scheduling]`` table, each round's sampled clients (``client_fraction``, as without
it) transmit their updates over the wireless uplink of :mod:`qflhw.federation.wireless`: every
client gets one of the K sub-channels and a transmit power. The scheduler chooses them to maximize
the sum of the clients' Shannon rates, alternating two blocks ``iterations`` times, as the 6G case
study of arXiv:2509.10559 does (QAOA for the assignment, block coordinate descent for the powers):

1. **Sub-channel assignment**, powers fixed:
   - ``all``: round-robin (client j of the round on sub-channel j mod K) at full power, no search;
   - ``random``: uniformly random sub-channels at full power, no search;
   - ``greedy``: each client in turn (strongest channel first) moves to the sub-channel that
     maximizes the sum rate with the others fixed (a best-response sweep);
   - ``qaoa``: blocks of ``block_clients`` clients are re-assigned among ``block_subchannels``
     sub-channels at once. A block's sum rate, with the other clients fixed, is expanded to second
     order in the block's choices: a QUBO over one-hot bits ``x[client, sub-channel]``, exact for
     blocks of two clients (the default; with three or more sharing a sub-channel the expansion
     misses the higher-order interference and misranks assignments). It is solved by QAOA with an
     XY mixer (:mod:`qflhw.execution.qaoa`, exact statevector or a qflhw fake device); the samples
     are scored by the true sum rate and the best is kept if it beats the current assignment.
2. **Power control** (``greedy`` and ``qaoa``, unless ``power_control = false``):
   :func:`~qflhw.federation.wireless.power_bcd`.

Every client uploads ``payload_bits`` (default 32 bits per model parameter); its upload time is
``bits / rate`` and the round's latency is the slowest upload. With ``deadline_s`` a client whose
upload would take longer sits the round out (at least the fastest client always uploads), and the
round lasts the deadline. The decomposition into blocks, the QUBO and the deadline are our
reconstruction: the paper gives no equations.

:func:`plan_round` is deterministic (seeded by the spec seed and the round) and cached, so the
round loop, the Flower server and ``qflhw estimate`` that all select through
:func:`qflhw.federation.assembly.selected_indices` see the same plan.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qflhw._util import stable_seed
from qflhw.config.spec import JobSpec, SchedulingSpec
from qflhw.devices.base import Device
from qflhw.errors import ConfigError
from qflhw.execution.qaoa import QAOASolver
from qflhw.federation import wireless
from qflhw.federation.wireless import Uplink


@dataclass(frozen=True)
class RoundPlan:
    """One round's uplink: per candidate client its sub-channel, power, rate and upload time."""

    round: int
    method: str
    candidates: tuple[int, ...]  # spec positions of the clients sampled this round
    subchannel: tuple[int, ...]  # per candidate
    power_dbm: tuple[float, ...]
    rate_bps: tuple[float, ...]
    upload_s: tuple[float, ...]
    selected: tuple[int, ...]  # candidates that upload this round (within the deadline), spec order
    sum_rate_bps: float
    latency_s: float
    history: tuple[float, ...]  # sum rate before the first iteration, then after each

    def fields(self, index: int) -> dict[str, object]:
        """The metrics.csv fields of client ``index`` (spec position) this round."""
        out: dict[str, object] = {
            "sum_rate_bps": self.sum_rate_bps, "latency_s": self.latency_s, "sum_rate_history": list(self.history)
        }
        if index in self.candidates:
            j = self.candidates.index(index)
            out.update(
                subchannel=self.subchannel[j], power_dbm=self.power_dbm[j], rate_bps=self.rate_bps[j], upload_s=self.upload_s[j]
            )
        return out


# ------------------------------------------------------------------------------ assignment steps
def channel_rate(link: Uplink, members: Sequence[int], k: int, power_w: np.ndarray) -> float:
    """Sum rate of ``members`` all on sub-channel ``k``."""
    m = np.asarray(list(members), dtype=int)
    if not len(m):
        return 0.0
    rx = power_w[m] * link.gains[m, k]
    return float(link.bandwidth_hz * np.log2(1.0 + rx / (rx.sum() - rx + link.noise_w)).sum())


def best_response_sweep(link: Uplink, assign: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Each client in turn (strongest best channel first) moves to the sub-channel that maximizes the sum rate."""
    a = np.array(assign, dtype=int)
    order = np.argsort(-link.gains.max(axis=1), kind="stable")
    for n in order:
        old = a[n]
        base = {k: [m for m in np.flatnonzero(a == k) if m != n] for k in range(link.subchannels)}
        without = {k: channel_rate(link, base[k], k, power_w) for k in range(link.subchannels)}
        gain = [channel_rate(link, [*base[k], n], k, power_w) - without[k] for k in range(link.subchannels)]
        best = int(np.argmax(gain))
        if gain[best] > gain[old] * (1 + 1e-12) + 1e-9:
            a[n] = best
    return a


def block_qubo(
    link: Uplink, assign: np.ndarray, power_w: np.ndarray, block: Sequence[int], channels: Sequence[int]
) -> tuple[np.ndarray, list[list[int]]]:
    """The QUBO of re-assigning ``block`` among ``channels`` with every other client fixed.

    Bit ``i * len(channels) + j`` means block client ``i`` takes ``channels[j]``. Minimizing
    ``x^T Q x`` maximizes the second-order expansion of the sum rate of those sub-channels:
    ``f(S)`` is a sub-channel's sum rate with block clients ``S`` on it, ``d1 = f({n}) - f({})`` the
    linear and ``d2 = f({n, m}) - f({n}) - f({m}) + f({})`` the pair terms (scaled to max |Q| = 1).
    Returns ``(Q, groups)``: the matrix and one group of bits per block client.
    """
    block = list(block)
    channels = list(channels)
    c = len(channels)
    n_bits = len(block) * c
    Q = np.zeros((n_bits, n_bits))
    inside = set(block)
    for j, k in enumerate(channels):
        fixed = [m for m in np.flatnonzero(assign == k) if m not in inside]
        f0 = channel_rate(link, fixed, k, power_w)
        f1 = [channel_rate(link, [*fixed, n], k, power_w) for n in block]
        for i in range(len(block)):
            Q[i * c + j, i * c + j] = -(f1[i] - f0)
            for i2 in range(i + 1, len(block)):
                f2 = channel_rate(link, [*fixed, block[i], block[i2]], k, power_w)
                Q[i * c + j, i2 * c + j] = -(f2 - f1[i] - f1[i2] + f0)
    scale = float(np.max(np.abs(Q)))
    if scale > 0:
        Q /= scale
    groups = [[i * c + j for j in range(c)] for i in range(len(block))]
    return Q, groups


def blocks(assign: np.ndarray, subchannels: int, size: int, width: int, rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """A sweep's blocks (clients, sub-channels): every client in exactly one block.

    With ``width >= K`` a block is ``size`` clients over all sub-channels; otherwise ``width``
    sub-channels (the first client's own and random others) and up to ``size`` clients on them.
    """
    order = [int(n) for n in rng.permutation(len(assign))]
    if width >= subchannels:
        return [(order[i : i + size], list(range(subchannels))) for i in range(0, len(order), size)]
    out = []
    left = order
    while left:
        first = left[0]
        others = [k for k in rng.permutation(subchannels) if k != assign[first]][: width - 1]
        chans = sorted([int(assign[first]), *[int(k) for k in others]])
        members = [n for n in left if assign[n] in chans][:size]
        out.append((members, chans))
        left = [n for n in left if n not in members]
    return out


BlockSolver = Callable[[np.ndarray, list[list[int]], int], Sequence[tuple[int, ...]]]
"""``solver(Q, groups, seed)``: candidate choices (one option per group) for a block QUBO, best guesses first."""


def qaoa_solver(spec: SchedulingSpec, device: Device | None = None) -> BlockSolver:
    """The block solver of ``method = "qaoa"``: QAOA samples, most frequent first.

    With ``qaoa_warm_start`` every block after the first starts from the angles tuned on the block
    before (QAOA angles transfer between instances of one problem family, Brandao et al.,
    arXiv:1812.04170), with one COBYLA start of a third of the iterations."""

    last: list[tuple[float, ...]] = []  # the previous block's tuned angles (parameter transfer)

    def solve(Q: np.ndarray, groups: list[list[int]], seed: int) -> Sequence[tuple[int, ...]]:
        warm = spec.qaoa_warm_start and last and len(last[-1]) == 2 * spec.qaoa_reps
        solver = QAOASolver(
            reps=spec.qaoa_reps,
            shots=spec.qaoa_shots,
            maxiter=max(2 * spec.qaoa_reps + 2, spec.qaoa_maxiter // 3) if warm else spec.qaoa_maxiter,
            restarts=1 if warm else spec.qaoa_restarts,
            seed=seed,
            device=device,
        )
        result = solver.solve(Q, groups, initial=last[-1] if warm else None)
        last.append(result.angles)
        return [choice for choice, _ in result.samples]

    return solve


def exhaustive_solver(Q: np.ndarray, groups: list[list[int]], seed: int) -> Sequence[tuple[int, ...]]:
    """Every assignment of the block, best QUBO value first: the classical reference for the same blocks."""
    options = [range(len(g)) for g in groups]
    scored = []
    for choice in itertools.product(*options):
        x = np.zeros(Q.shape[0])
        x[[g[j] for g, j in zip(groups, choice)]] = 1.0
        scored.append((float(x @ Q @ x), choice))
    return [c for _, c in sorted(scored)]


def block_sweep(link: Uplink, assign: np.ndarray, power_w: np.ndarray, spec: SchedulingSpec, rng: np.random.Generator,
                solver: BlockSolver) -> np.ndarray:
    """One sweep of block updates; a block's candidates are scored by the true sum rate, and the best
    replaces the current assignment only if the sum rate rises."""
    a = np.array(assign, dtype=int)
    current = wireless.sum_rate(link, a, power_w)
    for members, chans in blocks(a, link.subchannels, spec.block_clients, spec.block_subchannels, rng):
        if len(chans) < 2 or not members:
            continue
        Q, groups = block_qubo(link, a, power_w, members, chans)
        for choice in solver(Q, groups, int(rng.integers(2**31))):
            trial = a.copy()
            trial[members] = [chans[j] for j in choice]
            value = wireless.sum_rate(link, trial, power_w)
            if value > current * (1 + 1e-12):
                a, current = trial, value
    return a


# ------------------------------------------------------------------------------ one round
def optimize(
    link: Uplink, spec: SchedulingSpec, rng: np.random.Generator, *, device: Device | None = None, solver: BlockSolver | None = None
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``(assignment, powers in W, sum rate history)`` for one round's channels (module doc).

    ``solver`` replaces QAOA as the block solver of ``qaoa`` (e.g. :func:`exhaustive_solver`, to
    compare QAOA with exact solutions of the same blocks)."""
    m, k = link.clients, link.subchannels
    a: np.ndarray = np.arange(m) % k
    p = np.full(m, link.p_max_w)
    if spec.method == "random":
        a = rng.integers(0, k, size=m)
    history = [wireless.sum_rate(link, a, p)]
    if spec.method in ("all", "random"):
        return a, p, history
    solve = solver or qaoa_solver(spec, device)
    for _ in range(spec.iterations):
        if spec.method == "greedy":
            a = best_response_sweep(link, a, p)
        else:
            a = block_sweep(link, a, p, spec, rng, solve)
        if spec.power_control:
            p = wireless.power_bcd(link, a, p)
        history.append(wireless.sum_rate(link, a, p))
    return a, p, history


def plan_round(spec: JobSpec, round_: int, candidates: Sequence[int], payload_bits: int) -> RoundPlan:
    """The uplink plan of ``round_`` for the sampled ``candidates`` (cached per spec and round)."""
    if spec.scheduling is None:
        raise ConfigError("plan_round needs a [scheduling] table")
    return _cached_plan(spec.model_dump_json(), round_, tuple(int(c) for c in candidates), int(payload_bits))


@functools.lru_cache(maxsize=1024)
def _cached_plan(spec_json: str, round_: int, candidates: tuple[int, ...], payload_bits: int) -> RoundPlan:
    spec = JobSpec.model_validate_json(spec_json)
    s = spec.scheduling
    assert s is not None
    full = wireless.uplink(s, len(spec.clients), spec.seed, round_)
    idx = np.asarray(candidates, dtype=int)
    link = Uplink(full.gains[idx], full.bandwidth_hz, full.noise_w, full.p_min_w, full.p_max_w)
    rng = np.random.default_rng(stable_seed(spec.seed, "scheduling", s.method, str(round_)))
    a, p, history = optimize(link, s, rng, device=qaoa_device(spec))
    r = wireless.rates(link, a, p)
    t = wireless.upload_seconds(r, payload_bits)
    ok: np.ndarray = np.ones(len(idx), dtype=bool)
    latency = float(np.max(t))
    if s.deadline_s > 0 and latency > s.deadline_s:
        ok = t <= s.deadline_s
        if not ok.any():  # nobody makes it: the fastest still uploads, late
            ok[int(np.argmin(t))] = True
            latency = float(np.min(t))
        else:
            latency = s.deadline_s
    return RoundPlan(
        round=round_,
        method=s.method,
        candidates=candidates,
        subchannel=tuple(int(x) for x in a),
        power_dbm=tuple(round(float(x), 6) for x in wireless.w_to_dbm(p)),
        rate_bps=tuple(float(x) for x in r),
        upload_s=tuple(float(x) for x in t),
        selected=tuple(int(c) for c, keep in zip(candidates, ok) if keep),
        sum_rate_bps=float(r.sum()),
        latency_s=latency,
        history=tuple(float(h) for h in history),
    )


_DEVICES: dict[tuple[str, int], Device] = {}


def qaoa_device(spec: JobSpec) -> Device | None:
    """The fake device ``[scheduling] qaoa_device`` names (built once per process), or None."""
    s = spec.scheduling
    if s is None or s.method != "qaoa" or not s.qaoa_device:
        return None
    key = (s.qaoa_device, spec.seed)
    if key not in _DEVICES:
        from qflhw.config.profiles import load_profile
        from qflhw.devices.factory import make_device

        profile = load_profile(s.qaoa_device)
        if profile.provider != "fake":
            raise ConfigError(
                f"scheduling.qaoa_device = {s.qaoa_device!r} is a {profile.provider} QPU; QAOA scheduling runs on fake "
                "twins or the exact statevector only (leave qaoa_device out)"
            )
        _DEVICES[key] = make_device(profile, seed=stable_seed(spec.seed, "scheduling", "qaoa-device"))
    return _DEVICES[key]


def summary(rows: Sequence[dict], spec: JobSpec) -> dict | None:
    """The run summary's ``scheduling`` entry from the metrics rows: sum rate, latency and wall clock per round."""
    if spec.scheduling is None:
        return None
    per_round: dict[int, dict] = {}
    for r in rows:
        if r.get("sum_rate_bps", "") != "":
            per_round.setdefault(int(r["round"]), r)
    rounds = sorted(per_round)
    latency = [float(per_round[k]["latency_s"]) for k in rounds]
    return {
        "method": spec.scheduling.method,
        "sum_rate_bps": [float(per_round[k]["sum_rate_bps"]) for k in rounds],
        "latency_s": latency,
        "wall_clock_s": [float(v) for v in np.cumsum(latency)],
        "sum_rate_per_iteration": [list(per_round[k].get("sum_rate_history", [])) for k in rounds],
        "mean_sum_rate_bps": float(np.mean([float(per_round[k]["sum_rate_bps"]) for k in rounds])) if rounds else float("nan"),
    }
