"""Calibrated noise channels of one snapshot: gates that reproduce the calibrated fidelity, idle
relaxation, and which gates the calibration cannot be reproduced on.

**Gate channel.** A gate of duration ``t`` on qubits ``Q`` with calibrated error ``e``
(= 1 - average gate fidelity, IBM's and Aer's convention) is the ideal gate followed by

    N = R o D,   D = depolarizing_error(p, |Q|),   R = (x)_q thermal_relaxation_error(T1_q, T2_q, t)

(D first, then R), with ``p = d (F(R) - (1 - e)) / (d F(R) - 1)`` so that ``F(N) = 1 - e``
exactly: the average gate fidelity is linear in ``p``, ``F(R o D) = (1 - p) F(R) + p / d``. This is
the model and the parameter of qiskit-aer's ``basic_device_gate_errors`` (what
``NoiseModel.from_backend`` uses), so the channels are Aer's matrices. T2 is truncated to 2 T1 and
a missing T1/T2 means no relaxation, as in Aer.

**Flagged gates.** Where relaxation alone is already worse than calibrated (``1 - F(R) >= e``) no
``p >= 0`` reaches the calibration: the reported EPG and the reported T1/T2 are not jointly
consistent. Aer then silently drops the depolarizing part; the twin does the same, **flags** the
gate (:func:`flagged_gates`, ``qflhw calibration show DEVICE --fidelity``), and ESP uses the
fidelity of the channel actually simulated, ``F(R)``, so ESP and simulation never disagree.
With the optional *channel correction* (``[twin] channel_correction = true``) a flagged gate
relaxes instead for the shorter effective time ``tau`` with ``1 - F(R(tau)) = e``: the calibrated
gate error wins over the coherence times, and the channel reproduces the calibration everywhere.

**Idle channel.** ``thermal_relaxation_error(T1, T2, t)`` for ``t`` seconds of idling: the channel
Aer's ``RelaxationNoisePass`` puts on a scheduled delay (zero temperature).

Matrices are Pauli transfer matrices (real, qubit 0 the least significant factor), what
:mod:`qflhw.devices.kernel` evolves. Relaxation at zero temperature has the PTM

    r_X' = e^(-t/T2) r_X,   r_Y' = e^(-t/T2) r_Y,   r_Z' = e^(-t/T1) r_Z + (1 - e^(-t/T1)) r_I

(:func:`relaxation_ptm`; ``tests/unit/calibration/test_channels.py`` checks it against qiskit's
``PTM`` of Aer's ``thermal_relaxation_error``, and the whole channels against Aer's
``basic_device_gate_errors``), so building one costs microseconds instead of milliseconds; the
depolarizing part is Aer's ``depolarizing_error``, which is affine in ``p``. Average gate
fidelities follow from the PTM's trace (``F_avg = (Tr R / d + 1) / (d + 1)``), so ESP needs no
superoperators either.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from qflhw.calibration.snapshot import Calibration


def relaxation_times(cal: Calibration, qubit: int) -> tuple[float, float]:
    """(T1, T2) of a qubit as Aer's relaxation uses them: missing -> inf, T2 at most 2 T1."""
    q = cal.qubits[qubit]
    t1 = q.t1 if q.t1 else math.inf
    t2 = q.t2 if q.t2 else 2 * t1
    return t1, min(t2, 2 * t1)


def relaxation_ptm(cal: Calibration, qubit: int, seconds: float) -> np.ndarray:
    """The 4x4 PTM of ``qubit`` relaxing for ``seconds`` (module docstring; identity without T1/T2)."""
    t1, t2 = relaxation_times(cal, qubit)
    a, b = math.exp(-seconds / t2), math.exp(-seconds / t1)
    return np.array([[1.0, 0, 0, 0], [0, a, 0, 0], [0, 0, a, 0], [1.0 - b, 0, 0, b]])


def _average(f_pro: float, d: int) -> float:
    return (d * f_pro + 1) / (d + 1)


def relaxation_fidelity(cal: Calibration, qubits: tuple[int, ...], seconds: float) -> float:
    """Average gate fidelity of ``qubits`` all relaxing for ``seconds`` (tensor product: the
    process fidelity ``Tr R / d^2`` multiplies over the qubits)."""
    f_pro = float(np.prod([np.trace(relaxation_ptm(cal, q, seconds)) / 4 for q in qubits]))
    return _average(f_pro, 2 ** len(qubits))


@dataclass(frozen=True)
class GateChannel:
    """The noise after one gate on one qubit tuple, and how it relates to the calibration."""

    name: str
    qubits: tuple[int, ...]
    duration: float  # s, the calibrated gate duration
    calibrated_error: float
    relaxation_error: float  # 1 - F(R) for the calibrated duration
    depolarizing: float  # Aer's depolarizing parameter p (0 when flagged)
    relaxation_time: float  # s the channel relaxes for: the duration, or tau when corrected
    fidelity: float  # average gate fidelity of the simulated channel
    flagged: bool  # relaxation alone is worse than the calibration
    corrected: bool = False  # flagged, and relaxing for tau so that fidelity = 1 - error

    @property
    def deficit(self) -> float:
        """How much worse than calibrated the simulated channel is (0 unless flagged, uncorrected)."""
        return (1 - self.fidelity) - self.calibrated_error

    @property
    def ideal(self) -> bool:
        return self.depolarizing == 0 and self.relaxation_time == 0


def _effective_time(cal: Calibration, qubits: tuple[int, ...], duration: float, error: float) -> float:
    """The relaxation time ``tau <= duration`` whose relaxation alone has error ``error``."""
    from scipy.optimize import brentq

    return float(brentq(lambda t: 1 - relaxation_fidelity(cal, qubits, t) - error, 0.0, duration, xtol=1e-20, rtol=1e-15))


def gate_channel(cal: Calibration, name: str, qubits: tuple[int, ...], *, correct: bool = False) -> GateChannel:
    """The calibrated channel of gate ``name`` on ``qubits`` (module docstring); a gate without
    calibration data (virtual ``rz``) is ideal."""
    qubits = tuple(qubits)
    g = next((g for g in cal.gates if g.gate == name and g.qubits == qubits), None)
    return _channel(cal, name, qubits, g.error if g else 0.0, g.duration if g else 0.0, correct)


def _channel(cal: Calibration, name: str, qubits: tuple[int, ...], error: float, duration: float, correct: bool) -> GateChannel:
    d = 2 ** len(qubits)
    f_relax = relaxation_fidelity(cal, qubits, duration)
    relax_infid = 1 - f_relax
    if error > 0 and error > relax_infid:  # Aer's condition for a depolarizing part
        e = min(error, d / (d + 1))
        p = min(d * (e - relax_infid) / (d * f_relax - 1), 4 ** len(qubits) / (4 ** len(qubits) - 1))
        return GateChannel(name, qubits, duration, error, relax_infid, p, duration, (1 - p) * f_relax + p / d, False)
    flagged = error > 0 and duration > 0 and relax_infid > 0
    if flagged and correct and relax_infid > error:
        tau = _effective_time(cal, qubits, duration, error)
        return GateChannel(name, qubits, duration, error, relax_infid, 0.0, tau, relaxation_fidelity(cal, qubits, tau), True, True)
    return GateChannel(name, qubits, duration, error, relax_infid, 0.0, duration, f_relax, flagged)


class ChannelTable:
    """Gate and idle channels of one calibration (and correction setting), built on first use.

    :meth:`of` shares one table per calibration id between the transpiler (ESP) and the
    simulator; the tables are small and cached per process.
    """

    _shared: OrderedDict[tuple[str, bool], ChannelTable] = OrderedDict()
    _shared_lock = threading.Lock()

    def __init__(self, calibration: Calibration, *, correct: bool = False):
        self.calibration = calibration
        self.correct = correct
        self._index = {(g.gate, g.qubits): g for g in calibration.gates}
        self._gates: dict[tuple[str, tuple[int, ...]], GateChannel] = {}
        self._ptms: dict[tuple, np.ndarray | None] = {}
        self._idle_fid: dict[tuple[int, float], float] = {}
        self._lock = threading.RLock()

    @classmethod
    def of(cls, calibration: Calibration, *, correct: bool = False) -> ChannelTable:
        key = (calibration.id, correct)
        with cls._shared_lock:
            table = cls._shared.get(key)
            if table is None:
                table = cls._shared[key] = cls(calibration, correct=correct)
                while len(cls._shared) > 32:
                    cls._shared.popitem(last=False)
            cls._shared.move_to_end(key)
            return table

    # ------------------------------------------------------------------ channels and fidelities
    def gate(self, name: str, qubits: tuple[int, ...]) -> GateChannel:
        key = (name, tuple(qubits))
        with self._lock:
            hit = self._gates.get(key)
            if hit is None:
                hit = self._gates[key] = self._gate_channel(name, key[1])
            return hit

    def _gate_channel(self, name: str, qubits: tuple[int, ...]) -> GateChannel:
        g = self._index.get((name, qubits))
        return _channel(self.calibration, name, qubits, g.error if g else 0.0, g.duration if g else 0.0, self.correct)

    def idle_fidelity(self, qubit: int, seconds: float) -> float:
        """Average gate fidelity of one qubit idling ``seconds`` (1 for no time)."""
        key = (qubit, seconds)
        with self._lock:
            hit = self._idle_fid.get(key)
            if hit is None:
                hit = self._idle_fid[key] = relaxation_fidelity(self.calibration, (qubit,), seconds)
            return hit

    # ------------------------------------------------------------------ Pauli transfer matrices
    def _relaxation_ptm(self, qubits: tuple[int, ...], seconds: float) -> np.ndarray | None:
        """PTM of ``qubits`` relaxing for ``seconds`` (qubits[0] least significant), None if none relaxes."""
        if not seconds or all(relaxation_times(self.calibration, q) == (math.inf, math.inf) for q in qubits):
            return None
        out = relaxation_ptm(self.calibration, qubits[0], seconds)
        for q in qubits[1:]:
            out = np.kron(relaxation_ptm(self.calibration, q, seconds), out)
        return out

    def gate_ptm(self, name: str, qubits: tuple[int, ...]) -> np.ndarray | None:
        """PTM of the noise after gate ``name`` on ``qubits`` (None: ideal)."""
        key = ("gate", name, tuple(qubits))
        with self._lock:
            if key in self._ptms:
                return self._ptms[key]
        ch = self.gate(name, qubits)
        relax = self._relaxation_ptm(ch.qubits, ch.relaxation_time)
        out = relax
        if ch.depolarizing > 0:
            depol = (1 - ch.depolarizing) * np.eye(4 ** len(ch.qubits)) + ch.depolarizing * _full_depolarizing(len(ch.qubits))
            out = depol if relax is None else relax @ depol  # D first, then R
        with self._lock:
            self._ptms[key] = out
        return out

    def idle_ptm(self, qubit: int, seconds: float) -> np.ndarray | None:
        """PTM of one qubit idling ``seconds`` (None when it does not relax)."""
        key = ("idle", qubit, seconds)
        with self._lock:
            if key in self._ptms:
                return self._ptms[key]
        out = self._relaxation_ptm((qubit,), seconds)
        with self._lock:
            self._ptms[key] = out
        return out

    # ------------------------------------------------------------------ reports
    def flagged(self) -> list[GateChannel]:
        """Every usable calibrated gate whose relaxation alone is worse than its calibrated error."""
        out = []
        for g in self.calibration.gates:
            if g.error > 0 and g.duration > 0 and self.calibration.usable(g):
                ch = self.gate(g.gate, g.qubits)
                if ch.flagged:
                    out.append(ch)
        return out


def flagged_gates(calibration: Calibration, *, correct: bool = False) -> list[GateChannel]:
    """Where this snapshot's calibration cannot be reproduced: gates whose relaxation alone (from
    T1/T2 and the gate duration) is worse than the calibrated gate error (module docstring)."""
    return ChannelTable.of(calibration, correct=correct).flagged()


@functools.cache
def _full_depolarizing(n: int) -> np.ndarray:
    """PTM of Aer's ``depolarizing_error(1, n)`` (rho -> I/d); ``depolarizing_error(p, n)`` is
    ``(1 - p) identity + p`` that."""
    from qiskit.quantum_info import PTM
    from qiskit_aer.noise import depolarizing_error

    return _real(PTM(depolarizing_error(1.0, n).to_quantumchannel()).data)


def _real(data: np.ndarray) -> np.ndarray:
    """A PTM's real part (its imaginary part is rounding only), contiguous."""
    if np.iscomplexobj(data):
        data = data.real
    return np.ascontiguousarray(data, dtype=float)
