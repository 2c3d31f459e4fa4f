"""Calibrations that change during a run: dated series stepped through by round, and a seeded drift.

Real devices drift between and within days; a run with one snapshot per client sees none of it.
A :class:`CalibrationSchedule` gives a client's calibration for each round:

- a **series**: a list (or glob) of snapshots, each used for ``every`` rounds in turn, the last
  one kept to the end of the run;
- a **drift model** around the current snapshot: each figure ``f`` (every gate error, both readout
  probabilities and T1/T2 of every qubit) becomes ``f * exp(x)`` (``exp(-x)`` for T1/T2), where each
  ``x`` is an independent stationary Ornstein-Uhlenbeck process sampled once per round,
  ``x[t+1] = a x[t] + sigma sqrt(1 - a^2) eps[t]`` with ``a = exp(-1 / tau)`` and standard normal
  ``eps`` (the exact discretization of the OU process, Gillespie, Phys. Rev. E 54, 2084 (1996)).
  So ``x`` has mean 0, stationary variance ``sigma^2`` and lag-k correlation ``a^k``. It starts at 0
  (the device was just calibrated) and, with ``recalibrate_every = R``, is reset to 0 every R
  rounds, so ``Var x[t] = sigma^2 (1 - a^(2 s))`` where ``s`` is the number of steps since the last
  reset. With ``common = c`` each offset is ``sqrt(c) y + sqrt(1 - c) z_i``: ``y`` one OU process
  shared by every figure of the device (a device-wide drift, e.g. a fridge or electronics change)
  and ``z_i`` its own, so every offset is still an OU process with the same sigma and tau, and two
  figures' offsets have correlation ``c``. Errors are capped (gates at 0.75, or their snapshot
  value if that is higher, e.g. a broken coupler's 1.0; readout at 0.5, or the measured value if
  higher) and T2 is kept at most 2 T1 (or the snapshot's own T2/T1, if higher).

``qflhw calibration drift DEVICE`` writes the same model's snapshots as a dated series
(:func:`write_series`); a spec that steps through those files sees the same figures as one with a
``[clients.drift]`` table and the same seed.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import glob as _glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.snapshot import Calibration, Provenance
from qflhw.config.spec import GLOB_CHARS, DriftSpec
from qflhw.errors import ConfigError

GATE_ERROR_CAP = 0.75
READOUT_CAP = 0.5


# ------------------------------------------------------------------------------ series
def expand_refs(refs: Sequence[str], root: Path | None = None) -> list[str]:
    """Calibration references with every glob replaced by the files it matches (sorted by name).

    ``<device>/<pattern>`` matches snapshot dates in the calibration folder (``ibm_torino/2025-*``);
    a pattern ending in ``.json`` matches files (``drift/ibm_torino/*.json``). A glob that matches
    nothing is a ConfigError naming it.
    """
    out: list[str] = []
    for ref in refs:
        if not any(ch in ref for ch in GLOB_CHARS):
            out.append(ref)
            continue
        if ref.endswith(".json"):
            found = sorted(_glob.glob(ref))
        else:
            device, _, pattern = ref.partition("/")
            found = [str(p) for p in cal_mod.snapshots(device, root) if fnmatch.fnmatch(p.stem, pattern or "*")]
        if not found:
            raise ConfigError(f"calibration glob {ref!r} matches no snapshot; check the pattern (dates are YYYY-MM-DD)")
        out.extend(found)
    return out


# ------------------------------------------------------------------------------ the drift model
def ou_path(sigma: float, tau: float, steps: int, size: int, rng: np.random.Generator, *, reset_every: int = 0) -> np.ndarray:
    """``steps`` rows of ``size`` independent OU processes started (and reset) at 0; see the module doc."""
    if not (sigma > 0 and tau > 0 and steps >= 1):
        raise ConfigError(f"drift needs sigma > 0, tau > 0 and steps >= 1, got sigma={sigma}, tau={tau}, steps={steps}")
    a = float(np.exp(-1.0 / tau))
    kick = sigma * float(np.sqrt(1.0 - a * a))
    out = np.zeros((steps, size))
    eps = rng.standard_normal((steps, size))  # drawn in one go: the path does not depend on resets
    for t in range(1, steps):
        if reset_every and t % reset_every == 0:
            continue  # recalibrated: back at the snapshot
        out[t] = a * out[t - 1] + kick * eps[t]
    return out


def drift_size(cal: Calibration) -> int:
    """Number of drifting figures of a snapshot: one per gate entry, four per qubit (p01, p10, T1, T2)."""
    return len(cal.gates) + 4 * cal.num_qubits


def apply_drift(base: Calibration, x: np.ndarray, drift: DriftSpec, *, step: int, seed: int) -> Calibration:
    """``base`` with its figures moved by the log-offsets ``x`` (layout: gates, then p01, p10, T1, T2 per qubit).

    The copy is dated ``step`` days after ``base`` and says in its provenance what made it, so the
    same model, seed and step always give the same snapshot (and the same content-hashed id).
    """
    n_g, n_q = len(base.gates), base.num_qubits
    if x.shape != (n_g + 4 * n_q,):
        raise ConfigError(f"drift offsets have shape {x.shape}, expected ({n_g + 4 * n_q},) for {base.device}")
    xg, x01, x10, xt1, xt2 = x[:n_g], x[n_g : n_g + n_q], x[n_g + n_q : n_g + 2 * n_q], x[n_g + 2 * n_q : n_g + 3 * n_q], x[n_g + 3 * n_q :]
    gates = base.gates
    if drift.gates:
        gates = tuple(
            g.model_copy(update={"error": min(g.error * float(np.exp(d)), max(GATE_ERROR_CAP, g.error))}) for g, d in zip(base.gates, xg)
        )
    qubits = []
    for i, q in enumerate(base.qubits):
        upd: dict = {}
        if drift.readout:
            upd["prob_meas1_prep0"] = min(q.prob_meas1_prep0 * float(np.exp(x01[i])), max(READOUT_CAP, q.prob_meas1_prep0))
            upd["prob_meas0_prep1"] = min(q.prob_meas0_prep1 * float(np.exp(x10[i])), max(READOUT_CAP, q.prob_meas0_prep1))
        if drift.coherence and q.t1:
            t1 = q.t1 * float(np.exp(-xt1[i]))
            upd["t1"] = t1
            if q.t2:
                # T2 <= 2 T1 (or the snapshot's own ratio, if it already broke that)
                upd["t2"] = min(q.t2 * float(np.exp(-xt2[i])), t1 * max(2.0, q.t2 / q.t1))
        elif drift.coherence and q.t2:
            upd["t2"] = q.t2 * float(np.exp(-xt2[i]))
        qubits.append(q.model_copy(update=upd) if upd else q)
    prov = Provenance(
        kind="drifted",
        source=base.id,
        retrieved=base.provenance.retrieved,
        notes=(
            f"Ornstein-Uhlenbeck drift step {step}: sigma={drift.sigma:g}, tau={drift.tau_rounds:g} steps, common={drift.common:g}, "
            f"recalibrate_every={drift.recalibrate_every}, seed={seed}, gates={drift.gates}, readout={drift.readout}, "
            f"coherence={drift.coherence}"
        ),
    )
    return base.model_copy(
        update={
            "gates": gates,
            "qubits": tuple(qubits),
            "provenance": prov,
            "date": base.date + _dt.timedelta(days=step),
        }
    )


class CalibrationSchedule:
    """A client's calibration in each round: a series of snapshots, optionally drifting (module doc).

    ``snapshots`` are the series in order (one entry: a static snapshot, drifting if ``drift`` is
    given); each is used for ``every`` rounds. All must be of one device with one qubit count.
    """

    def __init__(
        self,
        snapshots: Sequence[Calibration],
        *,
        every: int = 1,
        drift: DriftSpec | None = None,
        seed: int = 0,
        rounds: int = 1,
    ):
        if not snapshots:
            raise ConfigError("a calibration schedule needs at least one snapshot")
        first = snapshots[0]
        for s in snapshots[1:]:
            if s.device != first.device or s.num_qubits != first.num_qubits or len(s.gates) != len(first.gates):
                raise ConfigError(
                    f"calibration series mixes {first.device} ({first.num_qubits} qubits, {len(first.gates)} gates) and "
                    f"{s.device} ({s.num_qubits} qubits, {len(s.gates)} gates); a series must be snapshots of one device"
                )
        if every < 1:
            raise ConfigError(f"calibration_every must be >= 1, got {every}")
        self.snapshots = list(snapshots)
        self.every = every
        self.drift = drift
        self.seed = seed
        self.rounds = max(1, rounds)
        self._path: np.ndarray | None = None
        self._cache: dict[int, Calibration] = {}

    @property
    def changes(self) -> bool:
        """Whether the calibration can differ between rounds."""
        return self.drift is not None or len(self.snapshots) > 1

    def offsets(self, round_: int) -> np.ndarray:
        """The drift's log-offsets in ``round_`` (zeros without a drift model)."""
        size = drift_size(self.snapshots[0])
        if self.drift is None:
            return np.zeros(size)
        if self._path is None or round_ >= len(self._path):
            steps = max(self.rounds, round_ + 1)
            d = self.drift
            both = ou_path(d.sigma, d.tau_rounds, steps, size + 1, np.random.default_rng(self.seed), reset_every=d.recalibrate_every)
            self._path = np.sqrt(d.common) * both[:, -1:] + np.sqrt(1.0 - d.common) * both[:, :-1]
        return self._path[round_]

    def base(self, round_: int) -> Calibration:
        """The series snapshot in use in ``round_`` (before any drift)."""
        return self.snapshots[min(round_ // self.every, len(self.snapshots) - 1)]

    def at(self, round_: int) -> Calibration:
        """The calibration of ``round_`` (cached: a drifted snapshot is built once)."""
        if round_ < 0:
            raise ConfigError(f"round must be >= 0, got {round_}")
        if round_ not in self._cache:
            base = self.base(round_)
            if self.drift is None:
                self._cache[round_] = base
            else:
                self._cache[round_] = apply_drift(base, self.offsets(round_), self.drift, step=round_, seed=self.seed)
        return self._cache[round_]


def write_series(
    ref: str, drift: DriftSpec, steps: int, out: str | Path, *, seed: int = 0, noise_scale: float = 1.0
) -> list[Path]:
    """Write ``steps`` drifted what-if snapshots of ``ref`` to ``out/<device>/<date>.json`` (step 0 first).

    The same model as ``[clients.drift]`` with this ``seed``: step ``r`` is the client's
    calibration in round ``r``. ``out`` may not lie in the calibration folder (it holds measured
    snapshots only), and no file is ever overwritten: an existing one stops the command before
    anything is written.
    """
    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    root = cal_mod.calibration_root().resolve()
    out = Path(out)
    if out.resolve().is_relative_to(root):
        raise ConfigError(
            f"{out}: inside {root}, which holds measured snapshots only; write the drifted series elsewhere "
            "and use it as a client's calibration glob"
        )
    base = cal_mod.load(ref)
    if noise_scale != 1.0:
        base = base.scaled(noise_scale)
    schedule = CalibrationSchedule([base], drift=drift, seed=seed, rounds=steps)
    snaps = [schedule.at(r) for r in range(steps)]
    paths = [out / s.device / f"{s.date.isoformat()}.json" for s in snaps]
    taken = [p for p in paths if p.exists()]
    if taken:
        raise ConfigError(f"{taken[0]}: exists already; drifted series never overwrite a file, pick another --out")
    for s in snaps:
        s.save(out)
    return paths
