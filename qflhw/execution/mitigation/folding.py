"""Unitary folding of parameterized, transpiled circuits with Mitiq, without moving a qubit.

Mitiq converts Qiskit circuits through OpenQASM 2, which cannot hold unbound parameters, so
``fold_gates_at_random(compact)`` fails on our circuits. We hand Mitiq only the circuit's
*structure*: one opaque placeholder gate per instruction, on the same qubits, whose inverse is a
marked placeholder. Mitiq chooses and applies the folds on that Cirq circuit; each placeholder
is then replaced by its original Qiskit instruction (or that instruction's ``inverse()``).
Parameters stay symbolic; qflhw never decides where a fold goes. A two-qubit gate whose inverse
is not native (Rigetti's iswap) is inverted in a Pauli frame, so a fold adds exactly two of the
same native gate.
"""

from __future__ import annotations

from qiskit.circuit import QuantumCircuit

from qflhw.config.spec import FOLDINGS
from qflhw.errors import ConfigError


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
    frames: dict[int, tuple | None] = {}
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


