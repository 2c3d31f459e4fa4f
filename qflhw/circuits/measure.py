"""Measuring Pauli observables: bases, readout error and expectation values from probabilities.

Observables are grouped into qubit-wise commuting measurement bases (qiskit's grouping), so
``Z`` on every qubit costs one circuit. Probabilities are indexed little-endian over the logical
qubits: bit i of the index is logical qubit i.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp
from qiskit.transpiler import Target
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager


def _terms(observables: Sequence[SparsePauliOp]) -> PauliList:
    labels = sorted({p.to_label() for op in observables for p in op.paulis})
    return PauliList(labels)


def measurement_bases(observables: Sequence[SparsePauliOp]) -> list[str]:
    """One label per basis (qiskit order, qubit 0 rightmost) with X/Y/Z where a term needs it."""
    return sorted(_basis_label(g) for g in _terms(observables).group_qubit_wise_commuting())


def _basis_label(group: PauliList) -> str:
    n = group.num_qubits
    letters = ["Z"] * n
    for p in group:
        lab = p.to_label()
        for pos, ch in enumerate(lab):
            if ch != "I":
                letters[pos] = ch
    return "".join(letters)


def basis_rotation(basis: str, target: Target, num_qubits: int | None = None, positions: Sequence[int] | None = None) -> QuantumCircuit:
    """Native gates of ``target`` that turn a measurement in ``basis`` into a Z measurement.

    Letter ``i`` from the right of ``basis`` is logical qubit ``i``, which sits on circuit qubit
    ``positions[i]`` (default ``i``) of a ``num_qubits``-qubit circuit (default ``len(basis)``):
    H for X, S^dagger H for Y. The gates are translated for ``target`` without moving qubits, so
    the rotation can be appended to a circuit already laid out on the device. Empty for all-Z.
    """
    n = len(basis)
    positions = list(range(n)) if positions is None else list(positions)
    rot = QuantumCircuit(n if num_qubits is None else num_qubits)
    for pos, ch in enumerate(basis):
        q = positions[n - 1 - pos]
        if ch == "X":
            rot.h(q)
        elif ch == "Y":
            rot.sdg(q)
            rot.h(q)
    if not rot.size():
        return rot
    pm = generate_preset_pass_manager(optimization_level=0, target=target, layout_method="trivial", routing_method="none")
    return pm.run(rot)


def apply_readout(probs: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Push probabilities (..., 2**n) through per-qubit assignment matrices A[measured, prepared].

    ``matrices[i]`` belongs to logical qubit i (bit i of the index).
    """
    n = len(matrices)
    lead = probs.shape[:-1]
    t = probs.reshape(lead + (2,) * n)
    for i, a in enumerate(matrices):
        axis = len(lead) + (n - 1 - i)  # bit i is the i-th axis from the right
        t = np.moveaxis(np.tensordot(t, a, axes=([axis], [1])), -1, axis)
    return t.reshape(probs.shape)


def parity_signs(label: str) -> np.ndarray:
    """(+1/-1) of the Pauli term ``label`` on each computational-basis outcome of its basis."""
    n = len(label)
    idx = np.arange(2**n)
    mask = sum(1 << (n - 1 - pos) for pos, ch in enumerate(label) if ch != "I")
    bits = np.bitwise_count(idx & mask)
    return 1.0 - 2.0 * (bits % 2)


def term_basis(label: str, bases: Sequence[str]) -> int:
    """Index of the first basis that measures every non-identity letter of ``label``."""
    for k, b in enumerate(bases):
        if all(ch == "I" or ch == bch for ch, bch in zip(label, b)):
            return k
    raise ValueError(f"no measurement basis covers Pauli term {label}")  # cannot happen by construction


def expectations(
    basis_probs: Sequence[np.ndarray], bases: Sequence[str], observables: Sequence[SparsePauliOp]
) -> tuple[np.ndarray, np.ndarray]:
    """Expectations and per-shot variances of each observable, from probabilities per basis.

    ``basis_probs[k]`` has shape (n_bindings, 2**n) in basis ``bases[k]``. The variance is that of
    one shot's estimate, summed over terms measured in different bases (terms in one basis are
    correlated; the sum of their signs is one random variable).
    """
    nb = basis_probs[0].shape[0]
    values = np.zeros((nb, len(observables)))
    var = np.zeros((nb, len(observables)))
    for j, op in enumerate(observables):
        per_basis: dict[int, np.ndarray] = {}
        for pauli, coeff in zip(op.paulis, op.coeffs):
            lab = pauli.to_label()
            k = term_basis(lab, bases)
            per_basis[k] = per_basis.get(k, 0.0) + float(np.real(coeff)) * parity_signs(lab)
        for k, signs in per_basis.items():
            p = basis_probs[k]
            mean = p @ signs
            values[:, j] += mean
            var[:, j] += np.maximum(p @ (signs**2) - mean**2, 0.0)
    return values, var
