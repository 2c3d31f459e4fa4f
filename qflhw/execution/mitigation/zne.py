"""Error mitigation with Mitiq, as expand-then-combine around one provider job.

A technique here implements the ``Mitigation`` protocol of :mod:`qflhw.executor`:
``variants(tc)`` expands a transpiled circuit into the circuits to run (they all go into the
step's one batch) and ``combine(results, observables)`` turns their results into one value per
binding and observable.

* :class:`ZNE`: zero-noise extrapolation. The *compact* transpiled circuit (physical qubits kept)
  is folded by Mitiq (two-qubit gates only by default, or globally), put back into the device's
  native gates without moving a qubit, and the scale factors' values are extrapolated to zero
  noise by Mitiq's factories (Richardson, linear, exponential).
* :class:`REM`: readout-error mitigation. The outcome distributions are multiplied by Mitiq's
  tensored inverse confusion matrix of the qubits they were measured on (from the calibration
  snapshot, or measured matrices), then expectations are recomputed.
* ZNE + REM: a :class:`ZNE` with ``readout=REM(...)`` corrects every scale factor's readout
  before extrapolating.

Parameterized circuits: Mitiq converts Qiskit circuits through OpenQASM 2, which cannot hold
unbound parameters, so ``fold_gates_at_random(compact)`` fails on our circuits. We hand Mitiq
only the circuit's *structure*: one opaque placeholder gate per instruction, on the same qubits,
whose inverse is a marked placeholder. Mitiq chooses and applies the folds on that Cirq circuit;
each placeholder is then replaced by its original Qiskit instruction (or that instruction's
``inverse()``). Parameters stay symbolic; qflhw never decides where a fold goes. A two-qubit
gate whose inverse is not native (Rigetti's iswap) is inverted in a Pauli frame, so a fold adds
exactly two of the same native gate.

Dynamical decoupling is not offered: the fake devices' noise model (Aer from the Target) has no
idle-qubit noise, so DD would change nothing locally and could not be checked; on IBM hardware
Runtime's own DD option is the better tool.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.calibration import Calibration
from qflhw.devices.base import ItemResult
from qflhw.devices.measure import expectations
from qflhw.errors import ConfigError
from qflhw.transpile import Transpiled

if TYPE_CHECKING:
    from qflhw.devices.base import Device
    from qflhw.spec import MitigationSpec

EXTRAPOLATIONS = ("richardson", "linear", "exponential")
FOLDINGS = ("two-qubit", "global")


# ---------------------------------------------------------------------------- folding


def _slot_gate():
    """The Cirq placeholder gate class (built lazily: importing Cirq takes a second)."""
    import cirq

    class Slot(cirq.Gate):
        """Stands for instruction ``index`` of a Qiskit circuit (``adjoint``: its inverse)."""

        def __init__(self, index: int, width: int, adjoint: bool = False):
            self.index, self.width, self.adjoint = index, width, adjoint

        def _num_qubits_(self) -> int:
            return self.width

        def __pow__(self, exponent):  # noqa: ANN001, ANN204 - cirq protocol
            if exponent == 1:
                return self
            if exponent == -1:
                return Slot(self.index, self.width, not self.adjoint)
            return NotImplemented

        def _circuit_diagram_info_(self, args):  # noqa: ANN001, ANN202
            return (f"S{self.index}{'†' if self.adjoint else ''}",) * self.width

    return Slot


def _pauli_frame_inverse(op):  # noqa: ANN001, ANN202
    """Paulis (p0, p1) with (p0 x p1) G (p0 x p1) = G^dagger for a fixed two-qubit gate G, or None.

    A gate's inverse is not always native (Rigetti's iswap: iswap_dg becomes two iswaps after
    translation, which would fold the noise by the wrong factor). When a Pauli frame turns G into
    G^dagger (iswap: Z on one qubit), G^dagger is run as G between Paulis: same two-qubit gate,
    same noise, and Z is a virtual rz.
    """
    from qiskit.circuit.library import IGate, XGate, YGate, ZGate
    from qiskit.quantum_info import Operator

    if op.num_qubits != 2 or any(hasattr(p, "parameters") for p in op.params):
        return None
    try:
        target = Operator(op).adjoint()
    except Exception:  # noqa: BLE001 - gates without a matrix simply get no Pauli frame
        return None
    paulis = (IGate(), XGate(), YGate(), ZGate())
    for p0 in paulis:
        for p1 in paulis:
            frame = Operator(p0).tensor(Operator(p1))  # p1 on qubit 0, p0 on qubit 1
            if (frame @ Operator(op) @ frame).equiv(target):
                return p1, p0
    return None


def fold(
    compact: QuantumCircuit,
    scale: float,
    *,
    method: str = "two-qubit",
    seed: int = 0,
    native: frozenset[str] | None = None,
) -> QuantumCircuit:
    """``compact`` with its noise scaled by ``scale`` through Mitiq's unitary folding.

    ``two-qubit``: ``fold_gates_at_random(fidelities={"single": 1.0})``, only two-qubit gates are
    folded (single-qubit gates are near-ideal, and rz is virtual on IBM devices).
    ``global``: ``fold_global``, the whole circuit (every gate counts, virtual rz too).
    Qubit indices are unchanged; folded gates are ``inverse()``s, not yet native (see
    :meth:`ZNE.fold`), except that a two-qubit gate whose inverse is not in ``native`` is run
    in a Pauli frame when one inverts it (see :func:`_pauli_frame_inverse`). Deterministic for a
    given ``seed``.
    """
    import cirq
    from mitiq.zne.scaling import fold_gates_at_random, fold_global

    if method not in FOLDINGS:
        raise ConfigError(f"mitigation.folding must be one of {', '.join(FOLDINGS)}, got {method!r}")
    slot = _slot_gate()
    data = list(compact.data)
    qubits = cirq.LineQubit.range(compact.num_qubits)
    structure = cirq.Circuit(
        slot(k, ci.operation.num_qubits).on(*(qubits[compact.find_bit(q).index] for q in ci.qubits))
        for k, ci in enumerate(data)
    )
    if method == "two-qubit":
        folded = fold_gates_at_random(structure, scale, seed=seed, fidelities={"single": 1.0})
    else:
        folded = fold_global(structure, scale)
    out = compact.copy_empty_like()
    frames: dict[int, object] = {}
    for op in folded.all_operations():
        ci = data[op.gate.index]
        if not op.gate.adjoint:
            out.append(ci.operation, ci.qubits, ci.clbits)
            continue
        inverse = ci.operation.inverse()
        if native is not None and inverse.name not in native:
            if op.gate.index not in frames:
                frames[op.gate.index] = _pauli_frame_inverse(ci.operation)
            frame = frames[op.gate.index]
            if frame is not None:
                for p, q in zip(frame, ci.qubits):
                    out.append(p, [q])
                out.append(ci.operation, ci.qubits)
                for p, q in zip(frame, ci.qubits):
                    out.append(p, [q])
                continue
        out.append(inverse, ci.qubits, ci.clbits)
    return out


# ---------------------------------------------------------------------------- extrapolation


def _factory(extrapolation: str):
    from mitiq.zne.inference import ExpFactory, LinearFactory, RichardsonFactory

    return {"richardson": RichardsonFactory, "linear": LinearFactory, "exponential": ExpFactory}[extrapolation]


def extrapolation_weights(scale_factors: Sequence[float], extrapolation: str = "richardson") -> np.ndarray:
    """w with zero-noise value = sum_k w_k * value_k, from Mitiq's own ``extrapolate``.

    Richardson and linear (least-squares) extrapolation are linear in the values, so extrapolating
    each unit vector gives the weights exactly; one dot product then extrapolates a whole batch.
    Exponential extrapolation is not linear: its Richardson weights are returned as the
    sensitivity used for shot allocation and overhead estimates.
    """
    kind = "richardson" if extrapolation == "exponential" else extrapolation
    factory = _factory(kind)
    sf = [float(s) for s in scale_factors]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([float(factory.extrapolate(sf, list(e))) for e in np.eye(len(sf))])


def check_zne(scale_factors: Sequence[float], extrapolation: str, folding: str) -> None:
    """Raise ConfigError naming the field and the fix when a ZNE setting cannot work."""
    sf = list(scale_factors)
    if extrapolation not in EXTRAPOLATIONS:
        raise ConfigError(f"mitigation.extrapolation must be one of {', '.join(EXTRAPOLATIONS)}, got {extrapolation!r}")
    if folding not in FOLDINGS:
        raise ConfigError(f"mitigation.folding must be one of {', '.join(FOLDINGS)}, got {folding!r}")
    if len(sf) < 2:
        raise ConfigError(f"mitigation.scale_factors needs at least 2 values to extrapolate, got {sf}; e.g. [1, 3, 5]")
    if any(not np.isfinite(s) or s < 1 for s in sf):
        raise ConfigError(f"mitigation.scale_factors must all be >= 1 (1 = the circuit as compiled), got {sf}")
    if len(set(sf)) != len(sf):
        raise ConfigError(f"mitigation.scale_factors must be distinct, got {sf}")
    if extrapolation == "exponential" and len(sf) < 3:
        raise ConfigError(
            f"mitigation.extrapolation = 'exponential' fits 3 parameters and needs at least 3 scale factors, "
            f"got {sf}; add one or use 'linear'"
        )


# ---------------------------------------------------------------------------- REM


class REM:
    """Readout-error mitigation by inverting per-qubit confusion matrices (Mitiq ``rem``).

    ``matrices`` (physical qubit -> 2x2 A[measured, prepared]) overrides the calibration's, e.g.
    with freshly measured ones. Corrected distributions are quasi-probabilities: they are kept
    as they are (projecting onto probabilities, Mitiq's ``closest_positive_distribution``, would
    bias the expectation and cost one optimization per distribution).
    """

    name = "rem"

    def __init__(self, calibration: Calibration | None = None, *, matrices: Mapping[int, np.ndarray] | None = None):
        if calibration is None and matrices is None:
            raise ConfigError("REM needs a calibration or measured confusion matrices")
        self.calibration = calibration
        self.matrices = {int(q): np.asarray(m, dtype=float) for q, m in (matrices or {}).items()}
        self.measured: tuple[int, ...] | None = None
        self._inverse: np.ndarray | None = None

    def matrix(self, qubit: int) -> np.ndarray:
        if qubit in self.matrices:
            return self.matrices[qubit]
        if self.calibration is None:
            raise ConfigError(f"REM: no confusion matrix for physical qubit {qubit}; pass one in matrices")
        return self.calibration.readout_matrix(qubit)

    def prepare(self, tc: Transpiled) -> None:
        """Build the inverse confusion matrix for the qubits ``tc`` is measured on."""
        from mitiq.rem import generate_tensored_inverse_confusion_matrix

        measured = tc.final_physical
        for q in measured:
            m = self.matrix(q)
            if m[0, 0] + m[1, 1] - 1.0 < 0.05:
                raise ConfigError(
                    f"REM: readout of physical qubit {q} is nearly random (P(0|0) + P(1|1) - 1 = "
                    f"{m[0, 0] + m[1, 1] - 1.0:.3f}), so it cannot be inverted; lower noise_scale or use method 'zne'"
                )
        # Distribution index bit i is logical qubit i (measured on measured[i]); Mitiq's kron puts
        # its first matrix on the most significant bit, so the list runs from the last qubit.
        mats = [self.matrix(q) for q in reversed(measured)]
        self._inverse = generate_tensored_inverse_confusion_matrix(len(measured), mats)
        self.measured = measured

    def variants(self, tc: Transpiled) -> list[Transpiled]:
        self.prepare(tc)
        return [tc]

    def correct(self, result: ItemResult) -> list[np.ndarray]:
        """Readout-corrected (quasi-)distributions, one per measurement basis."""
        if self._inverse is None:
            raise ConfigError("REM: call variants(tc) before combine (the measured qubits are not known yet)")
        if not result.distributions:
            raise ConfigError("REM needs outcome distributions but the device returned none; use mitigation.method = 'zne'")
        return [np.asarray(p, dtype=float) @ self._inverse.T for p in result.distributions]

    def gain(self, observables: Sequence[SparsePauliOp]) -> np.ndarray:
        """Variance amplification of each observable's estimate, to first order.

        Inverting a qubit's readout divides a parity by ``a00 + a11 - 1``; a Pauli term's
        estimator is amplified by the product over its qubits, an observable by its worst term.
        """
        if self.measured is None:
            raise ConfigError("REM: call variants(tc) before combine (the measured qubits are not known yet)")
        per_qubit = [1.0 / (m[0, 0] + m[1, 1] - 1.0) ** 2 for m in (self.matrix(q) for q in self.measured)]
        out = []
        for op in observables:
            worst = 1.0
            for label in (p.to_label() for p in op.paulis):
                n = len(label)
                g = float(np.prod([per_qubit[n - 1 - pos] for pos, ch in enumerate(label) if ch != "I"]))
                worst = max(worst, g)
            out.append(worst)
        return np.array(out)

    def values(self, result: ItemResult, observables: Sequence[SparsePauliOp]) -> tuple[np.ndarray, np.ndarray]:
        """Corrected expectations and their estimated variances, per binding and observable."""
        values, _ = expectations(self.correct(result), result.bases, observables)
        return values, result.stderr**2 * self.gain(observables)[None, :]

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> np.ndarray:
        return self.values(results[0], observables)[0]

    def variance(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> np.ndarray:
        return self.values(results[0], observables)[1]


# ---------------------------------------------------------------------------- ZNE


class ZNE:
    """Zero-noise extrapolation by Mitiq folding and Mitiq extrapolation; optionally with REM."""

    def __init__(
        self,
        calibration: Calibration,
        *,
        scale_factors: Sequence[float] = (1.0, 3.0, 5.0),
        extrapolation: str = "richardson",
        folding: str = "two-qubit",
        seed: int = 0,
        readout: REM | None = None,
    ):
        check_zne(scale_factors, extrapolation, folding)
        self.calibration = calibration
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.extrapolation = extrapolation
        self.folding = folding
        self.seed = seed
        self.readout = readout
        self.name = "zne+rem" if readout else "zne"
        self.weights = extrapolation_weights(self.scale_factors, extrapolation)
        self.fallbacks = 0  # exponential fits that failed and fell back to Richardson

    def coefficients(self) -> np.ndarray:
        """How much each variant's value counts in the result (for shot allocation)."""
        return self.weights.copy()

    def fold(self, tc: Transpiled, scale: float) -> QuantumCircuit:
        """The compact circuit folded to ``scale``, re-translated to native gates in place.

        Optimization level 0 with a trivial layout and no routing on the Target restricted to
        the circuit's own physical qubits: level 1 would cancel the folds, and any layout or
        routing would move qubits.
        """
        from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

        from qflhw.target import to_target

        folded = fold(
            tc.compact, scale, method=self.folding, seed=self.seed, native=frozenset(self.calibration.native_gates)
        )
        pm = generate_preset_pass_manager(
            optimization_level=0,
            target=to_target(self.calibration, tc.physical_qubits),
            layout_method="trivial",
            routing_method="none",
        )
        native = pm.run(folded)
        out = QuantumCircuit(*tc.compact.qregs, name=tc.compact.name, global_phase=native.global_phase)
        for ci in native.data:  # drop the layout the pass manager attached; keep the gates
            out.append(ci.operation, [native.find_bit(q).index for q in ci.qubits])
        return out

    def variants(self, tc: Transpiled) -> list[Transpiled]:
        if self.readout:
            self.readout.prepare(tc)
        return [_with_isa(tc.with_compact(self.fold(tc, s), tag=f"scale={s:g}")) for s in self.scale_factors]

    def _values(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> tuple[np.ndarray, np.ndarray]:
        if len(results) != len(self.scale_factors):
            raise ConfigError(f"ZNE expects {len(self.scale_factors)} results (one per scale factor), got {len(results)}")
        if self.readout:
            pairs = [self.readout.values(r, observables) for r in results]
            return np.stack([v for v, _ in pairs]), np.stack([s for _, s in pairs])
        return np.stack([r.values for r in results]), np.stack([r.stderr**2 for r in results])

    def extrapolate(self, values: np.ndarray) -> np.ndarray:
        """Zero-noise values from ``values[k]`` measured at ``scale_factors[k]``."""
        values = np.asarray(values, dtype=float)
        linear = np.tensordot(self.weights, values, axes=1)
        if self.extrapolation != "exponential":
            return linear
        from mitiq.zne.inference import ExpFactory, ExtrapolationError

        out = linear.copy()
        flat_vals = values.reshape(len(self.scale_factors), -1)
        flat_out = out.reshape(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(flat_vals.shape[1]):
                try:
                    v = float(ExpFactory.extrapolate(self.scale_factors, flat_vals[:, j].tolist()))
                except (ExtrapolationError, ValueError, np.linalg.LinAlgError):
                    v = float("nan")
                if np.isfinite(v) and abs(v) <= 1.5 * max(1.0, float(np.max(np.abs(flat_vals[:, j])))):
                    flat_out[j] = v
                else:  # a failed or runaway fit: keep the Richardson value
                    self.fallbacks += 1
        return out

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> np.ndarray:
        return self.extrapolate(self._values(results, observables)[0])

    def variance(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> np.ndarray:
        """Variance of the extrapolated values (linear propagation through the weights)."""
        var = self._values(results, observables)[1]
        return np.tensordot(self.weights**2, var, axes=1)


def _with_isa(tc: Transpiled) -> Transpiled:
    """``tc`` whose full-device ``isa`` is its (folded) compact circuit placed back on the device.

    A provider that submits ``isa`` then runs the folded circuit; the layout (for observables)
    is the original one, since folding moves no qubit.
    """
    import dataclasses

    isa = tc.isa.copy_empty_like()
    isa.global_phase = tc.compact.global_phase
    for ci in tc.compact.data:
        isa.append(ci.operation, [tc.physical_qubits[tc.compact.find_bit(q).index] for q in ci.qubits])
    return dataclasses.replace(tc, isa=isa)


# ---------------------------------------------------------------------------- from a spec


def make_mitigation(setting: MitigationSpec | None, device: Device) -> ZNE | REM | None:
    """The mitigation object a spec asks for, built for one client's device (None for 'none')."""
    if setting is None or setting.method == "none":
        return None
    rem = REM(device.calibration) if "rem" in setting.method else None
    if setting.method == "rem":
        return rem
    return ZNE(
        device.calibration,
        scale_factors=setting.scale_factors,
        extrapolation=setting.extrapolation,
        folding=setting.folding,
        seed=setting.seed,
        readout=rem,
    )


class Overhead(NamedTuple):
    """What a mitigation setting costs relative to no mitigation.

    ``circuits``: executables run per unmitigated executable (at fixed shots per circuit, billed
    shots and per-shot fees grow by the same factor). ``shots``: total shots needed for the
    mitigated value to reach the unmitigated standard error (the sampling overhead).
    """

    circuits: float
    shots: float


def overhead(
    setting: MitigationSpec,
    *,
    calibration: Calibration | None = None,
    qubits: Sequence[int] = (),
    allocation: str = "uniform",
) -> Overhead:
    """(circuits multiplier, shots multiplier) of ``setting``, e.g. for ``qflhw estimate``.

    ZNE with weights w (see :func:`extrapolation_weights`) over K scale factors: K circuits;
    shots K * sum(w^2) with equal shots per variant, (sum |w|)^2 with ``variance-weighted``
    allocation (shots proportional to |w|). REM: 1 circuit; shots 1/(1 - p01 - p10)^2 of the worst
    of ``qubits`` (the measured physical qubits) in ``calibration``, the amplification of a
    single-qubit Z estimate; 1.0 when no calibration is given (a lower bound). Folding also makes
    circuits longer, which costs QPU time on IBM but is not counted here.
    """
    method = setting.method
    circuits, shots = 1.0, 1.0
    if "zne" in method:
        w = extrapolation_weights(setting.scale_factors, setting.extrapolation)
        circuits = float(len(w))
        shots = float(np.sum(np.abs(w)) ** 2) if allocation == "variance-weighted" else float(len(w) * np.sum(w**2))
    if "rem" in method and calibration is not None and qubits:
        gains = []
        for q in qubits:
            a = calibration.readout_matrix(q)
            gains.append(1.0 / (a[0, 0] + a[1, 1] - 1.0) ** 2)
        shots *= max(gains)
    return Overhead(circuits, shots)
