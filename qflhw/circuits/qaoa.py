"""QAOA circuits for one-hot assignment QUBOs: the cost Hamiltonian, an XY mixer and the ansatz.

A QUBO ``min_x x^T Q x + c`` over bits ``x_i`` becomes a diagonal Ising Hamiltonian by
``x_i = (1 - Z_i) / 2`` (qubit ``i`` is bit ``i``, little-endian as qiskit counts). For assignment
problems (each item takes exactly one of its options) the ansatz uses an XY mixer on each item's
group of qubits: the XY terms preserve each group's Hamming weight, so every state the circuit
reaches is a valid assignment and no penalty terms are needed. It starts from a W state on each
group (the equal superposition of its one-hot states), so no assignment is favoured before the
cost layers act (Hadfield et al., "From the Quantum Approximate Optimization Algorithm to a
Quantum Alternating Operator Ansatz", arXiv:1709.03489; Wang, Rubin, Dominy, Rieffel, "XY mixers
for the quantum approximate optimization algorithm", arXiv:1904.09314). The ansatz itself is
qiskit's :func:`~qiskit.circuit.library.qaoa_ansatz` (Farhi, Goldstone, Gutmann, arXiv:1411.4028).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import qaoa_ansatz
from qiskit.quantum_info import SparsePauliOp

from qflhw.errors import ConfigError


def qubo_to_ising(Q: np.ndarray, constant: float = 0.0) -> tuple[SparsePauliOp, float]:
    """``(H, offset)`` with ``<x|H|x> + offset = x^T Q x + constant`` for every bitstring ``x``.

    ``Q`` is square; ``Q[i, j] + Q[j, i]`` (i != j) multiplies ``x_i x_j`` and ``Q[i, i]`` multiplies ``x_i``.
    """
    Q = np.asarray(Q, dtype=float)
    n = Q.shape[0]
    if Q.shape != (n, n) or n < 1:
        raise ConfigError(f"QUBO matrix must be square and non-empty, got shape {Q.shape}")
    terms: list[tuple[str, list[int], float]] = []
    offset = float(constant)
    for i in range(n):
        q = Q[i, i]
        if q:
            offset += q / 2
            terms.append(("Z", [i], -q / 2))
        for j in range(i + 1, n):
            q = Q[i, j] + Q[j, i]
            if q:
                offset += q / 4
                terms += [("Z", [i], -q / 4), ("Z", [j], -q / 4), ("ZZ", [i, j], q / 4)]
    if not terms:
        terms = [("Z", [0], 0.0)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n).simplify(atol=0.0), offset


def qubo_values(Q: np.ndarray, constant: float = 0.0) -> np.ndarray:
    """``x^T Q x + constant`` for all ``2^n`` bitstrings, indexed as qiskit counts them (bit i = qubit i)."""
    Q = np.asarray(Q, dtype=float)
    n = Q.shape[0]
    idx = np.arange(2**n)
    bits = ((idx[:, None] >> np.arange(n)[None, :]) & 1).astype(float)
    return np.einsum("si,ij,sj->s", bits, Q, bits) + constant


def xy_mixer(groups: Sequence[Sequence[int]], num_qubits: int) -> SparsePauliOp:
    """Sum over each group of ``(XX + YY) / 2`` on neighbouring qubits of a ring (one pair for two).

    Terms of one pair stay adjacent, so a first-order product formula applies each pair's XX and
    YY (which commute) together and every factor preserves the group's Hamming weight.
    """
    terms: list[tuple[str, list[int], float]] = []
    for g in groups:
        g = list(g)
        if len(g) < 2:
            continue
        pairs = [(g[0], g[1])] if len(g) == 2 else [(g[i], g[(i + 1) % len(g)]) for i in range(len(g))]
        for a, b in pairs:
            terms += [("XX", [a, b], 0.5), ("YY", [a, b], 0.5)]
    if not terms:
        raise ConfigError("an XY mixer needs at least one group of two or more options")
    return SparsePauliOp.from_sparse_list(terms, num_qubits=num_qubits)


def w_states(num_qubits: int, groups: Sequence[Sequence[int]]) -> QuantumCircuit:
    """A W state on each group (equal superposition of its one-hot states), via qiskit's StatePreparation."""
    from qiskit.circuit.library import StatePreparation

    qc = QuantumCircuit(num_qubits, name="start")
    for g in groups:
        g = list(g)
        if len(g) == 1:
            qc.x(g[0])
            continue
        amplitudes = np.zeros(2 ** len(g))
        amplitudes[[1 << j for j in range(len(g))]] = 1 / np.sqrt(len(g))
        qc.append(StatePreparation(amplitudes), g)
    return qc


def assignment_ansatz(cost: SparsePauliOp, groups: Sequence[Sequence[int]], reps: int) -> QuantumCircuit:
    """The QAOA circuit of ``cost`` with an XY mixer on ``groups``, started from W states on them."""
    n = cost.num_qubits
    return qaoa_ansatz(cost, reps=reps, initial_state=w_states(n, groups), mixer_operator=xy_mixer(groups, n), name="qaoa")
