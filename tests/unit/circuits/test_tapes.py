"""PennyLane -> qiskit conversion: the same matrices, Pauli labels and distributions as PennyLane's."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from qiskit.quantum_info import Operator

from qflhw.circuits.tapes import GATES, circuit_of, marginal, parameter_rows, structure, to_sparse_pauli

ADJOINTS = {"Adjoint(S)": qml.S, "Adjoint(T)": qml.T, "Adjoint(SX)": qml.SX}


def _op(name: str, rng: np.random.Generator):
    if name in ADJOINTS:
        return qml.adjoint(ADJOINTS[name](0))
    cls = getattr(qml, name)
    wires = list(range(cls.num_wires if isinstance(cls.num_wires, int) else 1))
    return cls(*rng.uniform(-3, 3, cls.num_params), wires=wires)


@pytest.mark.parametrize("name", sorted(GATES))
def test_every_gate_has_pennylanes_matrix_and_phase(name):
    op = _op(name, np.random.default_rng(len(name)))
    wires = list(op.wires)
    qc, params = circuit_of(structure([op], wires), len(wires))
    bound = qc.assign_parameters(dict(zip(params, parameter_rows([op], None)[0])))
    # qiskit orders qubits little-endian; reverse to PennyLane's wire order (first wire most significant)
    np.testing.assert_allclose(Operator(bound).reverse_qargs().data, qml.matrix(op, wire_order=wires), atol=1e-12)


def test_pauli_sums_become_sparse_pauli_ops_on_the_wire_order():
    obs = 0.5 * qml.PauliZ("a") @ qml.PauliX("c") - 0.2 * qml.PauliY("b") + 0.1 * qml.Identity("a")
    order = ["a", "b", "c"]
    op = to_sparse_pauli(obs, order)
    np.testing.assert_allclose(op.to_operator().reverse_qargs().data, qml.matrix(obs, wire_order=order), atol=1e-12)


def test_broadcast_tapes_give_one_binding_row_per_element():
    ops = [qml.RX(np.array([0.1, 0.2, 0.3]), 0), qml.RY(0.5, 1), qml.CNOT([0, 1])]
    rows = parameter_rows(ops, 3)
    np.testing.assert_allclose(rows, [[0.1, 0.5], [0.2, 0.5], [0.3, 0.5]])
    assert structure(ops, [0, 1]) == (("RX", (0,), 1), ("RY", (1,), 1), ("CNOT", (0, 1), 0))


def test_marginal_is_pennylanes_probs_ordering():
    """A product state with known bits: qubit i of the distribution is wire_order[i]."""
    order = ["q0", "q1", "q2"]
    p = np.zeros(8)
    p[0b011] = 1.0  # bit i set for qubit i: q0 = 1, q1 = 1, q2 = 0
    assert marginal(p[None], ["q2", "q0"], order)[0].tolist() == [0, 1, 0, 0]  # |q2 q0> = |01>
    assert marginal(p[None], ["q1"], order)[0].tolist() == [0, 1]
    rng = np.random.default_rng(1)
    d = rng.dirichlet(np.ones(8), size=4)
    np.testing.assert_allclose(marginal(d, order, order).sum(axis=1), 1.0)
    np.testing.assert_allclose(marginal(d, ["q2", "q1", "q0"], order), d)  # reversed order: qiskit's index
