"""Fake devices against independent references: Aer full-device simulation and statevectors."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp, Statevector

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device

IBM = ["fake_torino", "fake_brisbane", "fake_fez"]


def _reference_probabilities(device_name: str, tc, bindings, parameters):
    """Aer's own full-device density-matrix run with ``AerSimulator.from_backend`` gate noise,
    then the fake backend's asymmetric readout, as Kronecker products built here."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel
    from qiskit_ibm_runtime import fake_provider

    backend = getattr(fake_provider, "Fake" + device_name.removeprefix("fake_").capitalize())()
    sim = AerSimulator.from_backend(backend, method="density_matrix")
    sim.set_options(noise_model=NoiseModel.from_backend(backend, readout_error=False))
    final = list(tc.isa.layout.final_index_layout())
    circ = tc.isa.copy()
    circ.save_probabilities(qubits=final, label="p")
    bound = [circ.assign_parameters(dict(zip(parameters, row)), strict=False) for row in bindings]
    res = sim.run(bound).result()
    props = backend.properties()
    conf = np.array([[1.0]])
    for q in reversed(final):  # bit i = logical qubit i, so the last logical qubit is leftmost
        p10 = props.qubit_property(q, "prob_meas1_prep0")[0]
        p01 = props.qubit_property(q, "prob_meas0_prep1")[0]
        conf = np.kron(conf, np.array([[1 - p10, p01], [p10, 1 - p01]]))
    return np.array([conf @ res.data(i)["p"] for i in range(len(bound))])


@pytest.mark.parametrize("name", IBM)
def test_exact_expectations_match_full_device_aer(name):
    dev = make_device(name)
    model = build("rot-crx", 4, 2)
    tc = dev.transpile(model.circuit)
    rng = np.random.default_rng(7)
    bindings = rng.uniform(-np.pi, np.pi, (6, len(model.parameters)))
    obs = z_observables(4) + [SparsePauliOp(["ZZII", "IIZZ"], [0.5, -1.0])]
    res = dev.run(Batch((BatchItem(tc, model.parameters, bindings, tuple(obs)),)), shots=None)
    probs = _reference_probabilities(name, tc, bindings, model.parameters)
    idx = np.arange(16)
    bit = lambda i: 1 - 2 * ((idx >> i) & 1)  # noqa: E731
    expected = np.stack(
        [probs @ bit(i) for i in range(4)] + [probs @ (0.5 * bit(3) * bit(2) - 1.0 * bit(1) * bit(0))], axis=1
    )
    np.testing.assert_allclose(res.items[0].values, expected, atol=1e-6)
    assert np.all(res.items[0].stderr == 0)


@pytest.mark.parametrize("name", ["fake_iqm_garnet", "fake_rigetti_ankaa-3", "fake_ionq_forte-1", "fake_brisbane"])
def test_fused_superoperators_equal_aer_with_its_noise_model(name):
    """The compact path folds gates, noise and fixed runs into superoperators; Aer running the
    plain transpiled circuit with ``NoiseModel.from_backend`` (per-binding noise insertion, no
    folding) must give the same probabilities. Covers noisy parameterized gates (IQM ``r``,
    IonQ ``rxx``), gates Aer lacks (Rigetti ``iswap``) and a directed 2-qubit gate (Eagle ``ecr``)."""
    from qiskit.circuit.library import UnitaryGate
    from qiskit_aer import AerSimulator

    from qflhw.calibration.target import noise_model, to_target

    dev = make_device(name)
    model = build("rot-crx", 3, 2)
    tc = dev.transpile(model.circuit)
    bindings = np.random.default_rng(11).uniform(-np.pi, np.pi, (4, len(model.parameters)))
    item = BatchItem(tc, model.parameters, bindings, tuple(z_observables(3)))
    _, (ours,) = dev.simulator.probabilities(item)

    noise = noise_model(to_target(dev.calibration, tc.physical_qubits))  # NoiseModel.from_backend
    circ = tc.compact.copy_empty_like()
    for ci in tc.compact.data:  # Aer's noise model finds a unitary by its label
        op = UnitaryGate(ci.operation.to_matrix(), label="iswap") if ci.operation.name == "iswap" else ci.operation
        circ.append(op, ci.qubits, ci.clbits)
    circ.save_probabilities(qubits=list(tc.final_positions), label="p")
    bound = [circ.assign_parameters(dict(zip(model.parameters, row)), strict=False) for row in bindings]
    res = AerSimulator(method="density_matrix", noise_model=noise).run(bound).result()
    readout = np.array([[1.0]])
    for q in reversed(tc.final_physical):
        readout = np.kron(readout, dev.calibration.readout_matrix(q))
    expected = np.array([readout @ res.data(i)["p"] for i in range(len(bound))])
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


def test_finite_shots_agree_with_aer_sampling_within_shot_noise():
    """Our sampled estimates and Aer's own sampled full-device counts (asymmetric readout error in
    its noise model) both scatter around our exact values as shot noise says they should."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, ReadoutError
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    shots = 4000
    dev = make_device("fake_brisbane")
    model = build("rot-crx", 4, 1)
    tc = dev.transpile(model.circuit)
    rows = np.random.default_rng(1).uniform(-np.pi, np.pi, (10, len(model.parameters)))
    item = BatchItem(tc, model.parameters, rows, tuple(z_observables(4)))
    exact = dev.run(Batch((item,)), None).items[0].values
    ours = dev.run(Batch((item,), key=JobKey("run", 0, "a", 1)), shots).items[0]
    z_ours = (ours.values - exact) / np.sqrt((1 - exact**2) / shots)

    backend = FakeBrisbane()
    nm = NoiseModel.from_backend(backend, readout_error=False)
    props = backend.properties()
    final = list(tc.isa.layout.final_index_layout())
    for q in final:
        p10 = props.qubit_property(q, "prob_meas1_prep0")[0]
        p01 = props.qubit_property(q, "prob_meas0_prep1")[0]
        nm.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [q])
    sim = AerSimulator.from_backend(backend, method="density_matrix", noise_model=nm, seed_simulator=5)
    circ = tc.isa.copy()
    from qiskit import ClassicalRegister

    circ.add_register(ClassicalRegister(4))
    for i, q in enumerate(final):
        circ.measure(q, i)
    bound = [circ.assign_parameters(dict(zip(model.parameters, r)), strict=False) for r in rows]
    counts = sim.run(bound, shots=shots).result().get_counts()
    aer = np.array([[sum(c * (1 - 2 * int(k[::-1][i])) for k, c in cnt.items()) / shots for i in range(4)] for cnt in counts])
    z_aer = (aer - exact) / np.sqrt((1 - exact**2) / shots)
    for z in (z_ours, z_aer):
        assert np.abs(z).max() < 4.5  # 40 values; a 4.5-sigma outlier has odds ~1e-4
        assert 0.4 < np.mean(z**2) < 1.9  # chi-square/40 stays in this range with >99% probability


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
