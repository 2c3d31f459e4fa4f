"""QAOA circuits: the Ising form of a QUBO against brute force, and an XY-mixer ansatz that never
leaves the one-hot subspace (checked on qiskit's statevector)."""

from __future__ import annotations

import itertools

import numpy as np
from qiskit.quantum_info import Operator, Statevector

from qflhw.circuits.qaoa import assignment_ansatz, qubo_to_ising, qubo_values


def _brute(Q: np.ndarray, c: float) -> np.ndarray:
    n = Q.shape[0]
    out = np.zeros(2**n)
    for i in range(2**n):
        x = [(i >> b) & 1 for b in range(n)]
        out[i] = c + sum(Q[a, b] * x[a] * x[b] for a in range(n) for b in range(n))
    return out


def test_ising_diagonal_equals_the_qubo_on_every_bitstring():
    rng = np.random.default_rng(0)
    for n in (1, 3, 5):
        Q = rng.normal(size=(n, n))
        H, offset = qubo_to_ising(Q, 0.7)
        diag = np.real(np.diag(Operator(H).data)) + offset
        np.testing.assert_allclose(diag, _brute(Q, 0.7), atol=1e-12)
        np.testing.assert_allclose(qubo_values(Q, 0.7), _brute(Q, 0.7), atol=1e-12)
        assert np.allclose(Operator(H).data, np.diag(np.diag(Operator(H).data)))  # diagonal: only Z terms


def _feasible(groups, n):
    return {sum(1 << g[j] for g, j in zip(groups, choice)) for choice in itertools.product(*[range(len(g)) for g in groups])}


def test_xy_mixer_ansatz_stays_in_the_one_hot_subspace():
    groups = [[0, 1, 2], [3, 4], [5, 6, 7]]
    n = 8
    rng = np.random.default_rng(1)
    Q = np.triu(rng.normal(size=(n, n)))
    H, _ = qubo_to_ising(Q)
    ansatz = assignment_ansatz(H, groups, reps=2)
    ok = sorted(_feasible(groups, n))
    for _ in range(3):
        p = Statevector(ansatz.assign_parameters(rng.uniform(0, 3, ansatz.num_parameters))).probabilities()
        assert p[ok].sum() > 1 - 1e-12
    # at zero angles it is the product of W states: uniform over the 3 x 2 x 3 valid assignments
    p0 = Statevector(ansatz.assign_parameters(np.zeros(ansatz.num_parameters))).probabilities()
    np.testing.assert_allclose(p0[ok], 1 / 18, atol=1e-12)
