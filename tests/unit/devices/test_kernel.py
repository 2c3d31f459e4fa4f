"""The batched kernel's pieces against qiskit: rotations, trigonometric PTMs, pruning, fusion."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import RXGate, RXXGate, RYGate, RZGate, RZZGate
from qiskit.quantum_info import PTM, Operator

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.channels import ChannelTable
from qflhw.calibration.target import to_target
from qflhw.circuits.schedule import schedule_alap
from qflhw.devices.kernel import Program, _rot_ptm, _TrigPTM


@pytest.mark.parametrize("gate, axis", [(RXGate, "x"), (RYGate, "y"), (RZGate, "z")])
def test_axis_rotations_are_qiskit_s_ptms(gate, axis):
    for theta in (0.3, -2.1, 3.0):
        np.testing.assert_allclose(_rot_ptm(axis, theta), PTM(Operator(gate(theta))).data.real, atol=1e-14)


@pytest.mark.parametrize("gate", [RZZGate, RXXGate])
def test_two_qubit_rotations_have_a_trigonometric_ptm(gate):
    trig = _TrigPTM.of(gate(Parameter("t")))
    assert trig is not None
    thetas = np.array([0.2, -1.3, 2.9])
    for m, t in zip(trig.batched(thetas), thetas):
        np.testing.assert_allclose(m, PTM(Operator(gate(t))).data.real, atol=1e-13)


def _program(circuit, cal, params, *, prune=True):  # noqa: ANN001, ANN202
    target = to_target(cal, list(range(circuit.num_qubits)))
    return Program.compile(schedule_alap(circuit, target), ChannelTable(cal), params, tuple(range(circuit.num_qubits)), prune=prune)


def test_pruning_drops_only_rotations_the_readout_cannot_see():
    """rz on |0> before any other gate, and rz followed only by diagonal gates, are dropped; the
    probabilities do not change (pruned vs unpruned), and the kept rotations matter."""
    cal = cal_mod.load("ibm_fez")
    p = [Parameter(f"p{i}") for i in range(9)]
    qc = QuantumCircuit(3, 3)
    for q in range(3):
        qc.rz(p[q], q)  # on |0>: invisible
        qc.sx(q)
        qc.rz(p[3 + q], q)  # matters
        qc.sx(q)
    qc.cz(0, 1)
    qc.cz(1, 2)
    for q in range(3):
        qc.rz(p[6 + q], q)  # only diagonal gates and the measurement follow: invisible
    qc.cz(0, 1)
    qc.measure(range(3), range(3))
    full, pruned = _program(qc, cal, p, prune=False), _program(qc, cal, p)
    assert full.stats["parameterized"] == 9 and pruned.stats["parameterized"] == 3
    rows = np.random.default_rng(0).uniform(-np.pi, np.pi, (5, 9))
    np.testing.assert_allclose(pruned.probabilities(rows), full.probabilities(rows), atol=1e-14)
    moved = rows.copy()
    moved[:, 3] += 0.5
    assert np.abs(pruned.probabilities(moved) - pruned.probabilities(rows)).max() > 1e-3


def test_chunks_and_threads_give_the_same_numbers():
    cal = cal_mod.load("ibm_torino")
    w = [Parameter(f"w{i}") for i in range(4)]
    qc = QuantumCircuit(2, 2)
    qc.rx(w[0], 0)
    qc.ry(w[1], 1)
    qc.cz(0, 1)
    qc.rz(w[2], 0)
    qc.rx(w[3], 1)
    qc.measure([0, 1], [0, 1])
    from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

    isa = generate_preset_pass_manager(optimization_level=1, target=to_target(cal, [0, 1]), layout_method="trivial").run(qc)
    program = Program.compile(schedule_alap(isa, to_target(cal, [0, 1])), ChannelTable(cal), tuple(isa.parameters), (0, 1))
    rows = np.random.default_rng(1).uniform(-np.pi, np.pi, (700, 4))
    one = program.probabilities(rows)
    np.testing.assert_array_equal(program.probabilities(rows, chunk=64, threads=2), one)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, atol=1e-13)
