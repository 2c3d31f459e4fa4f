"""From PennyLane tapes to qiskit circuits with symbolic parameters, and back to PennyLane results.

A tape's *structure* (gate names and wires) decides its circuit; its numbers are bindings. Every
numeric gate parameter becomes its own qiskit ``Parameter`` (``p[0]``, ``p[1]``, ... in tape
order), so one structure is transpiled once and every tape of that structure in a batch (the
shifted tapes of a gradient, the rows of a broadcast) is one more binding row of the same circuit.

Gate names map one to one onto qiskit gates with the same matrix and phase (checked in
``tests/unit/circuits/test_tapes.py``); PennyLane decomposes everything else into them first
(:data:`GATES` is the device's stopping condition). Wire ``wire_order[i]`` is qubit ``i``; Pauli
labels are written qiskit's way (qubit 0 rightmost), and outcome distributions come back with bit
``i`` of the index for qubit ``i`` (see :mod:`qflhw.circuits.measure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.errors import ConfigError

#: PennyLane operation name -> qiskit ``QuantumCircuit`` method (same matrix, same phase, same wire order).
GATES: dict[str, str] = {
    "PauliX": "x", "PauliY": "y", "PauliZ": "z", "Hadamard": "h", "S": "s", "T": "t", "SX": "sx",
    "Adjoint(S)": "sdg", "Adjoint(T)": "tdg", "Adjoint(SX)": "sxdg",
    "CNOT": "cx", "CZ": "cz", "CY": "cy", "CH": "ch", "SWAP": "swap", "ISWAP": "iswap", "ECR": "ecr",
    "Toffoli": "ccx", "CSWAP": "cswap", "CCZ": "ccz",
    "RX": "rx", "RY": "ry", "RZ": "rz", "PhaseShift": "p", "U1": "p", "U3": "u",
    "CRX": "crx", "CRY": "cry", "CRZ": "crz", "ControlledPhaseShift": "cp",
    "IsingXX": "rxx", "IsingYY": "ryy", "IsingZZ": "rzz",
}  # fmt: skip
#: Operations with no effect on measured statistics: dropped from the circuit.
DROPPED: frozenset[str] = frozenset({"Identity", "GlobalPhase", "Barrier", "Snapshot"})

Structure = tuple[tuple[str, tuple[int, ...], int], ...]


def supported(op: Any) -> bool:
    """Whether the device runs ``op`` as is (PennyLane's decomposition stops there)."""
    return op.name in GATES or op.name in DROPPED


def structure(operations: Sequence[Any], wire_order: Sequence[Any]) -> Structure:
    """(name, qubits, number of parameters) per gate: tapes with equal structure share a circuit."""
    index = {w: i for i, w in enumerate(wire_order)}
    out = []
    for op in operations:
        name = op.name
        if name in DROPPED:
            continue
        if name not in GATES:
            raise ConfigError(f"operation {name} is not one the qflhw device runs; decompose it first")
        out.append((name, tuple(index[w] for w in op.wires), len(op.data)))
    return tuple(out)


def circuit_of(key: Structure, num_qubits: int, name: str = "pennylane") -> tuple[QuantumCircuit, tuple]:
    """The symbolic circuit of a structure and its parameters ``p[k]``, in tape order."""
    p = ParameterVector("p", sum(n for _, _, n in key))
    qc = QuantumCircuit(num_qubits, name=name)
    k = 0
    for gate, qubits, n in key:
        getattr(qc, GATES[gate])(*p[k : k + n], *qubits)
        k += n
    return qc, tuple(p)


def parameter_rows(operations: Sequence[Any], batch_size: int | None) -> np.ndarray:
    """The numeric gate parameters as binding rows: (batch size or 1, number of parameters)."""
    rows = batch_size or 1
    cols = []
    for op in operations:
        if op.name in DROPPED:
            continue
        for value in op.parameters:
            a = np.real(np.asarray(_numpy(value), dtype=complex))
            cols.append(np.broadcast_to(a, (rows,)) if a.ndim else np.full(rows, float(a)))
    return np.stack(cols, axis=1) if cols else np.zeros((rows, 0))


def _numpy(value: Any) -> Any:
    """A plain array of a parameter that may still be a tensor of an ML framework."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def pauli_label(word: Any, wire_order: Sequence[Any]) -> str:
    """The qiskit label (qubit 0 rightmost) of a PennyLane ``PauliWord`` over ``wire_order``."""
    index = {w: i for i, w in enumerate(wire_order)}
    letters = ["I"] * len(wire_order)
    for wire, letter in word.items():
        letters[len(wire_order) - 1 - index[wire]] = letter
    return "".join(letters)


def to_sparse_pauli(obs: Any, wire_order: Sequence[Any]) -> SparsePauliOp:
    """A PennyLane observable with a Pauli representation as a qiskit ``SparsePauliOp``."""
    rep = obs.pauli_rep if obs is not None else None
    if rep is None:
        raise ConfigError(f"observable {obs} has no Pauli decomposition; measure Pauli words or sums of them")
    n = len(wire_order)
    if not rep:
        return SparsePauliOp("I" * n, coeffs=[0.0])
    labels, coeffs = [], []
    for word, coeff in rep.items():
        c = complex(_numpy(coeff))
        if abs(c.imag) > 1e-12:
            raise ConfigError(f"observable {obs} has a complex coefficient {c}; it is not Hermitian")
        labels.append(pauli_label(word, wire_order))
        coeffs.append(c.real)
    return SparsePauliOp(labels, coeffs=np.asarray(coeffs, dtype=complex)).simplify(atol=0)


def marginal(dist: np.ndarray, wires: Sequence[Any], wire_order: Sequence[Any]) -> np.ndarray:
    """PennyLane ``probs(wires)`` (first wire most significant) from qubit-indexed distributions.

    ``dist`` has shape (..., 2**n) with bit ``i`` of the index for qubit ``i`` = ``wire_order[i]``.
    """
    n, lead = len(wire_order), dist.shape[:-1]
    order = list(wire_order)
    t = dist.reshape(lead + (2,) * n)  # axis len(lead) + j holds qubit n - 1 - j
    want = [len(lead) + n - 1 - order.index(w) for w in wires]
    rest = [len(lead) + j for j in range(n) if len(lead) + j not in want]
    t = np.transpose(t, list(range(len(lead))) + want + rest)
    t = t.sum(axis=tuple(range(len(lead) + len(want), len(lead) + n))) if rest else t
    return t.reshape(lead + (2 ** len(wires),))


def samples_from_counts(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A shot record (shots, n) of 0/1, column ``i`` for qubit ``i``, holding ``counts`` per outcome, in random order."""
    outcomes = np.repeat(np.arange(counts.shape[-1]), counts.astype(np.int64))
    rng.shuffle(outcomes)
    return ((outcomes[:, None] >> np.arange(n)[None, :]) & 1).astype(np.int64)
