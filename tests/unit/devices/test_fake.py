"""Fake devices against independent references: Aer on the twins' own Targets, statevectors.

The agreement with Aer's simulation of every IBM fake backend, each optional physics term and
the sampled mode are in ``test_twin_agreement.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp, Statevector

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from tests.unit.devices.aer_reference import scheduled_probabilities


@pytest.mark.parametrize("name", ["fake_iqm_garnet", "fake_rigetti_ankaa-3", "fake_ionq_forte-1"])
def test_braket_twins_equal_aer_from_backend_on_their_own_target(name):
    """Twins without a qiskit fake backend: Aer's ``from_backend`` on a BackendV2 around the
    snapshot's Target (Aer builds the channels, qiskit schedules) gives the same probabilities.
    Covers noisy parameterized gates (IQM ``r`` with virtual ``rz``, IonQ ``rxx``) and a gate Aer
    lacks (Rigetti ``iswap``, run as a unitary that keeps its name for the noise model)."""
    from qiskit.circuit.library import UnitaryGate

    from qflhw.calibration.target import TargetBackend, to_target

    dev = make_device(name)
    model = build("rot-crx", 3, 2)
    tc = dev.transpile(model.circuit)
    bindings = np.random.default_rng(11).uniform(-np.pi, np.pi, (3, len(model.parameters)))
    item = BatchItem(tc, model.parameters, bindings, tuple(z_observables(3)))
    _, (ours,) = dev.simulator.probabilities(item)
    as_unitary = lambda op: UnitaryGate(op.to_matrix(), label="iswap") if op.name == "iswap" else op  # noqa: E731 - Aer finds its noise by label
    cal = dev.calibration
    readout = lambda q: (cal.qubits[q].prob_meas1_prep0, cal.qubits[q].prob_meas0_prep1)  # noqa: E731
    backend = TargetBackend(to_target(cal), name)
    expected = scheduled_probabilities(
        tc.isa, tc.physical_qubits, tc.final_physical, backend, model.parameters, bindings, readout=readout, unknown_to_aer=as_unitary
    )
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    assert np.abs(ours - np.full_like(ours, 1 / 8)).max() > 1e-3  # not trivially uniform


def test_noise_moves_values_away_from_ideal():
    """The twin is noisy: its exact values differ from the noiseless statevector, but not wildly."""
    dev = make_device("fake_torino")
    model = build("rot-crx", 4, 2)
    tc = dev.transpile(model.circuit)
    row = np.random.default_rng(3).uniform(-np.pi, np.pi, len(model.parameters))
    res = dev.run(Batch((BatchItem(tc, model.parameters, row[None, :], tuple(z_observables(4))),)), shots=None)
    sv = Statevector(model.circuit.assign_parameters(dict(zip(model.parameters, row))))
    ideal = np.array([sv.expectation_value(o).real for o in z_observables(4)])
    diff = np.abs(res.items[0].values[0] - ideal)
    assert diff.max() > 1e-3 and diff.max() < 0.5


def test_pauli_bases_and_noiseless_limit():
    """X/Y observables on a device with zero noise equal the statevector (checks basis changes)."""
    dev = make_device("fake_torino", noise_scale=1e-9)
    model = build("rot-crx", 3, 1)
    tc = dev.transpile(model.circuit)
    rows = np.random.default_rng(5).uniform(-np.pi, np.pi, (4, len(model.parameters)))
    obs = [SparsePauliOp("XII"), SparsePauliOp("IYZ"), SparsePauliOp(["XXI", "ZIY"], [0.3, 0.7])]
    res = dev.run(Batch((BatchItem(tc, model.parameters, rows, tuple(obs)),)), shots=None)
    for r, row in enumerate(rows):
        sv = Statevector(model.circuit.assign_parameters(dict(zip(model.parameters, row))))
        ideal = [sv.expectation_value(o).real for o in obs]
        np.testing.assert_allclose(res.items[0].values[r], ideal, atol=1e-6)


def test_same_key_same_numbers_and_stderr_is_reported():
    dev = make_device("fake_fez", seed=9)
    model = build("hardware-efficient", 2, 1)
    tc = dev.transpile(model.circuit)
    rows = np.random.default_rng(0).uniform(-1, 1, (3, len(model.parameters)))
    batch = Batch((BatchItem(tc, model.parameters, rows, tuple(z_observables(2))),), key=JobKey.parse("run/r0/c0/s0"))
    a, b = dev.run(batch, 500), dev.run(batch, 500)
    np.testing.assert_array_equal(a.items[0].values, b.items[0].values)
    assert np.all(a.items[0].stderr > 0)
    other = make_device("fake_fez", seed=10).run(batch, 500)
    assert not np.array_equal(a.items[0].values, other.items[0].values)


def test_a_rebuilt_model_uses_the_cached_circuit_with_its_own_parameters():
    """The transpile cache keys circuits by content (parameter names, gates): a second build of
    the same model gets the first one's compiled circuit, and its own Parameter objects bind it."""
    dev = make_device("fake_fez")
    first, second = build("rot-crx", 2, 1), build("rot-crx", 2, 1)
    tc = dev.transpile(first.circuit)
    assert dev.transpile(second.circuit) is tc and second.parameters[0] != first.parameters[0]
    rows = np.random.default_rng(4).uniform(-1, 1, (2, len(first.parameters)))
    a = dev.run(Batch((BatchItem(tc, first.parameters, rows, tuple(z_observables(2))),)), None).items[0].values
    b = dev.run(Batch((BatchItem(tc, second.parameters, rows, tuple(z_observables(2))),)), None).items[0].values
    np.testing.assert_array_equal(a, b)
