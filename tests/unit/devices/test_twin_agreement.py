"""The scheduled twin against Aer's simulation of the same ALAP-scheduled circuit, on every IBM
fake backend qiskit-ibm-runtime ships, and each optional term against what it predicts.

Reference (``aer_reference``): the backend's own Target restricted to the circuit's qubits,
qiskit's ALAP scheduler, ``AerSimulator.from_backend`` (its gate noise and its relaxation on
delays), the backend's asymmetric readout. The twin is built from the snapshot the exporter
writes for the backend. Aer drops noise terms with probability below 1e-10 (its C++
``QuantumError`` threshold), so on Heron devices the two differ by up to ~1e-8.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, average_gate_fidelity

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.qiskit_import import from_qiskit_backend
from qflhw.calibration.snapshot import Calibration, CouplingZZ, PairReadout
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import DeviceProfile
from qflhw.config.spec import TwinSpec
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.fake import FakeDevice
from tests.fake_backends import sdk_backends, sdk_twin
from tests.unit.devices.aer_reference import parity_values, scheduled_probabilities

#: (ansatz, qubits, layers) cycled over the backends: two ansaetze at 4 and 6 qubits
#: (``benchmarks/twin_agreement.py`` runs every combination on every backend).
COMBOS = [("rot-crx", 4, 1), ("hardware-efficient", 6, 2), ("hardware-efficient", 4, 2), ("rot-crx", 6, 1)]


def twin(cal: Calibration, **options) -> FakeDevice:  # noqa: ANN003
    prof = DeviceProfile(name=f"twin-{cal.device}", provider="fake", device=cal.device, calibration="-", qubits=cal.num_qubits)
    return FakeDevice(prof, cal, threads=1, twin=TwinSpec(**options))


def _z_and_zz(n: int) -> tuple[list[SparsePauliOp], list[int]]:
    obs = z_observables(n)
    masks = [1 << q for q in range(n)]
    if n > 1:
        obs.append(SparsePauliOp.from_sparse_list([("ZZ", [0, 1], 1.0)], n))
        masks.append(3)
    return obs, masks


def test_every_ibm_fake_backend_agrees_with_aer_on_the_alap_circuit():
    """One circuit per backend (the combinations cycle), 2 random bindings, exact mode."""
    backends = sdk_backends()
    assert len(backends) >= 60
    worst = {}
    for k, backend in enumerate(backends):
        ansatz, n, layers = COMBOS[k % len(COMBOS)]
        n = min(n, backend.num_qubits)
        props = backend.properties()
        dev = sdk_twin(backend.name)
        model = build(ansatz, n, layers)
        tc = dev.transpile(model.circuit)
        rows = np.random.default_rng(k).uniform(-np.pi, np.pi, (2, len(model.parameters)))
        obs, masks = _z_and_zz(n)
        ours = dev.run(Batch((BatchItem(tc, model.parameters, rows, tuple(obs)),)), None).items[0].values
        readout = lambda q, p=props: (p.qubit_property(q, "prob_meas1_prep0")[0], p.qubit_property(q, "prob_meas0_prep1")[0])  # noqa: E731
        probs = scheduled_probabilities(tc.isa, tc.physical_qubits, tc.final_physical, backend, model.parameters, rows, readout=readout)
        worst[backend.name] = float(np.abs(ours - parity_values(probs, masks)).max())
    bad = {name: d for name, d in worst.items() if d > 1e-6}
    assert not bad, bad


@pytest.fixture(scope="module")
def brisbane():
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    backend = FakeBrisbane()
    return backend, from_qiskit_backend(backend)


def _idle_circuit(gates: int = 60) -> QuantumCircuit:
    """The issue's case: qubit 0 excited, then waiting (a barrier stands for a data dependency)
    while qubits 1 and 2 run ``gates`` CNOTs; then all three are measured."""
    qc = QuantumCircuit(3)
    qc.x(0)
    qc.barrier()
    for _ in range(gates):
        qc.cx(1, 2)
        qc.barrier(1, 2)
    qc.barrier()
    return qc


def test_idle_noise_is_what_relaxation_during_the_idle_window_predicts(brisbane):
    """An excited qubit idling ~40 us behind 60 CNOTs on Eagle: the twin equals Aer's ALAP run;
    without idle noise it equals Aer without delays; the two differ as relaxation for the idle
    time predicts (excited population times exp(-t_idle / T1))."""
    backend, cal = brisbane
    on, off = twin(cal), twin(cal, idle_noise=False)
    tc = on.transpile(_idle_circuit())
    obs = (SparsePauliOp("IIZ"),)
    item = BatchItem(tc, (), np.zeros((1, 0)), obs)
    z_on = on.run(Batch((item,)), None).items[0].values[0, 0]
    z_off = off.run(Batch((BatchItem(off.transpile(_idle_circuit()), (), np.zeros((1, 0)), obs),)), None).items[0].values[0, 0]
    ref = parity_values(scheduled_probabilities(tc.isa, tc.physical_qubits, tc.final_physical, backend, (), np.zeros((1, 0))), [1])
    assert z_on == pytest.approx(ref[0, 0], abs=1e-6)
    q = tc.final_physical[0]
    t_idle = on.simulator.schedule(tc, "ZZZ").idle_seconds()[tc.final_positions[0]]
    assert t_idle > 20e-6
    # readout maps <Z> -> (p01 - p10) + (1 - p01 - p10) <Z>; the excited part decays by exp(-t/T1)
    p10, p01 = cal.qubits[q].prob_meas1_prep0, cal.qubits[q].prob_meas0_prep1
    pre_on, pre_off = ((z - (p01 - p10)) / (1 - p01 - p10) for z in (z_on, z_off))
    excited_on, excited_off = (1 - pre_on) / 2, (1 - pre_off) / 2
    assert excited_on == pytest.approx(excited_off * math.exp(-t_idle / cal.qubits[q].t1), rel=1e-9)
    assert z_on - z_off > 0.1  # the size of effect: about 0.2 on Eagle
    no_delays = _without_delays_reference(tc, backend)
    assert z_off == pytest.approx(no_delays, abs=1e-6)


def _pinned(qc: QuantumCircuit, cal: Calibration, qubits: tuple[int, ...]):  # noqa: ANN202
    """``qc`` compiled onto exactly ``qubits`` (no noise-aware layout), as a Transpiled."""
    from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

    from qflhw.calibration.target import to_target
    from qflhw.circuits.transpile import Transpiled, compact_circuit

    isa = generate_preset_pass_manager(optimization_level=1, target=to_target(cal), initial_layout=list(qubits)).run(qc)
    return Transpiled(qc, isa, compact_circuit(isa, qubits), qubits, tuple(range(len(qubits))), cal.id, 0, 0, 1.0)


def _without_delays_reference(tc, backend) -> float:  # noqa: ANN001
    """Aer's gate noise only: the circuit run back to back on the restricted backend, no delays."""
    from qiskit_aer import AerSimulator

    from tests.unit.devices.aer_reference import backend_readout, confusion, restricted_backend

    rb = restricted_backend(backend, tc.physical_qubits)
    where = {p: i for i, p in enumerate(tc.physical_qubits)}
    circ = QuantumCircuit(len(tc.physical_qubits))
    for ci in tc.isa.data:
        circ.append(ci.operation, [where[tc.isa.find_bit(q).index] for q in ci.qubits])
    circ.save_probabilities(qubits=[where[p] for p in tc.final_physical], label="p")
    exact = AerSimulator.from_backend(rb, method="density_matrix").run(circ).result().data(0)["p"]
    p = confusion(backend_readout(backend), tc.final_physical) @ exact
    return float(parity_values(np.asarray(p)[None], [1])[0, 0])


def test_channel_correction_relaxes_a_flagged_gate_for_the_time_that_reproduces_its_calibration(brisbane):
    """A flagged x (relaxation alone worse than calibrated): uncorrected the twin is Aer's channel;
    corrected, the excited population after the gate is exp(-tau/T1) with tau solved here from
    1 - F(relaxation(tau)) = e, using Aer's thermal_relaxation_error and qiskit's fidelity."""
    from qiskit_aer.noise import thermal_relaxation_error
    from scipy.optimize import brentq

    from qflhw.calibration.channels import flagged_gates

    backend, cal = brisbane
    gate = next(g for g in flagged_gates(cal) if g.name == "x")
    q = gate.qubits[0]
    t1, t2 = cal.qubits[q].t1, min(cal.qubits[q].t2, 2 * cal.qubits[q].t1)
    qc = QuantumCircuit(1)
    qc.x(0)
    tc = _pinned(qc, cal, (q,))
    assert dict(tc.compact.count_ops()) == {"x": 1}
    item = BatchItem(tc, (), np.zeros((1, 0)), (SparsePauliOp("Z"),))
    z_aer = twin(cal).run(Batch((item,)), None).items[0].values[0, 0]
    ref = parity_values(scheduled_probabilities(tc.isa, (q,), (q,), backend, (), np.zeros((1, 0))), [1])[0, 0]
    assert z_aer == pytest.approx(ref, abs=1e-9)
    z_fix = twin(cal, channel_correction=True).run(Batch((item,)), None).items[0].values[0, 0]
    e = gate.calibrated_error
    tau = brentq(lambda t: 1 - average_gate_fidelity(thermal_relaxation_error(t1, t2, t)) - e, 0, gate.duration, xtol=1e-18)
    assert 0 < tau < gate.duration
    p10, p01 = cal.qubits[q].prob_meas1_prep0, cal.qubits[q].prob_meas0_prep1
    for z, t in ((z_fix, tau), (z_aer, gate.duration)):
        expected = (p01 - p10) + (1 - p01 - p10) * (1 - 2 * math.exp(-t / t1))
        assert z == pytest.approx(expected, abs=1e-9)


def test_zz_crosstalk_is_the_conditional_phase_of_the_time_two_neighbours_idle_together():
    """Two coupled qubits in |+> idle together while a third runs 30 x gates, with everything else
    made noiseless: <X> of each is (1 + cos(2 pi zz t)) / 2 with t = 30 x-gate durations."""
    cal = cal_mod.load("ibm_torino").scaled(1e-9)
    a, b, c = 0, 1, 2  # Torino's qubits 0-1-2 are a line
    assert {(0, 1), (1, 2)} <= set(cal.coupling_map)
    zz = 150e3
    cal = cal.model_copy(update={"schema_": cal_mod.SCHEMA, "zz": (CouplingZZ(qubits=(a, b), zz=zz),)})
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.h(1)
    qc.barrier()
    for _ in range(30):
        qc.x(2)
        qc.barrier(2)
    qc.barrier()
    obs = (SparsePauliOp("IIX"), SparsePauliOp("IXI"))
    values = {}
    tc = _pinned(qc, cal, (a, b, c))
    for on in (False, True):
        dev = twin(cal, zz_crosstalk=on)
        values[on] = dev.run(Batch((BatchItem(tc, (), np.zeros((1, 0)), obs),)), None).items[0].values[0]
    x_duration = next(g.duration for g in cal.gates if g.gate == "x" and g.qubits == (c,))
    phase = 2 * math.pi * zz * 30 * x_duration
    np.testing.assert_allclose(values[False], [1, 1], atol=1e-6)
    np.testing.assert_allclose(values[True], [(1 + math.cos(phase)) / 2] * 2, atol=1e-6)
    assert values[True][0] < 0.99  # the term does something


def test_correlated_readout_replaces_the_product_of_the_two_qubits_matrices(brisbane):
    """With a joint assignment matrix for the measured pair, the twin's probabilities are that
    matrix applied to Aer's exact pre-readout probabilities; switched off, the product of the
    qubits' own matrices is."""
    backend, cal = brisbane
    model = build("hardware-efficient", 2, 1)
    tc = twin(cal).transpile(model.circuit)
    a, b = tc.final_physical
    rng = np.random.default_rng(2)
    joint = rng.uniform(0, 1, (4, 4)) + 8 * np.eye(4)
    joint /= joint.sum(axis=0)
    cal2 = cal.model_copy(update={"readout_pairs": (PairReadout(qubits=(b, a), matrix=tuple(map(tuple, joint))),)})
    rows = rng.uniform(-np.pi, np.pi, (3, len(model.parameters)))
    exact = scheduled_probabilities(tc.isa, tc.physical_qubits, (a, b), backend, model.parameters, rows, readout=lambda q: (0.0, 0.0))
    swap = [0, 2, 1, 3]  # the matrix's index is b0 + 2 b1 with b0 the bit of its first qubit (b = clbit 1)
    expected_on = exact @ joint[np.ix_(swap, swap)].T
    own = np.kron(cal.readout_matrix(b), cal.readout_matrix(a))
    for on, expected in ((True, expected_on), (False, exact @ own.T)):
        dev = twin(cal2, correlated_readout=on)
        tc2 = dev.transpile(model.circuit)
        assert tc2.final_physical == (a, b)
        _, (probs,) = dev.simulator.probabilities(BatchItem(tc2, model.parameters, rows, tuple(z_observables(2))))
        np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_x_and_y_observables_are_measured_in_rotated_bases_scheduled_with_the_rotation():
    """Non-Z Pauli terms: the basis rotation is appended in native gates before scheduling; the
    reference schedules and simulates the rotated circuit with Aer."""
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    from qflhw.calibration.target import to_target
    from qflhw.circuits.measure import basis_rotation, term_basis

    backend = FakeTorino()
    cal = from_qiskit_backend(backend)
    dev = twin(cal)
    model = build("rot-crx", 3, 1)
    tc = dev.transpile(model.circuit)
    rows = np.random.default_rng(8).uniform(-np.pi, np.pi, (2, len(model.parameters)))
    obs = (SparsePauliOp("XYZ"), SparsePauliOp("IXI"), SparsePauliOp(["YYI", "ZIZ"], [0.4, 0.6]))
    res = dev.run(Batch((BatchItem(tc, model.parameters, rows, obs),)), None).items[0]
    per_basis = {}
    for basis in res.bases:
        rot = basis_rotation(basis, to_target(cal), cal.num_qubits, tc.final_physical)
        circ = tc.isa.compose(rot)
        per_basis[basis] = scheduled_probabilities(circ, tc.physical_qubits, tc.final_physical, backend, model.parameters, rows)
    expected = np.zeros_like(res.values)
    for j, op in enumerate(obs):
        for pauli, coeff in zip(op.paulis, op.coeffs):
            label = pauli.to_label()
            basis = res.bases[term_basis(label, res.bases)]  # the twin's grouping: it measures this term there
            mask = sum(1 << (len(label) - 1 - i) for i, ch in enumerate(label) if ch != "I")
            expected[:, j] += coeff.real * parity_values(per_basis[basis], [mask])[:, 0]
    np.testing.assert_allclose(res.values, expected, atol=1e-6)


def test_sampled_estimates_scatter_around_the_exact_values_like_aer_counts(brisbane):
    """Our finite-shot estimates and Aer's own sampled counts (the scheduled circuit with its
    measurements and the backend's asymmetric readout as ReadoutErrors) both scatter around the
    twin's exact values as shot noise says they should."""
    from qiskit.transpiler import PassManager
    from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, ReadoutError

    from qflhw.devices.base import JobKey
    from tests.unit.devices.aer_reference import backend_readout, restricted_backend

    backend, cal = brisbane
    shots = 4000
    dev = twin(cal)
    model = build("rot-crx", 4, 1)
    tc = dev.transpile(model.circuit)
    rows = np.random.default_rng(1).uniform(-np.pi, np.pi, (10, len(model.parameters)))
    item = BatchItem(tc, model.parameters, rows, tuple(z_observables(4)))
    exact = dev.run(Batch((item,)), None).items[0].values
    ours = dev.run(Batch((item,), key=JobKey("run", 0, "a", 1)), shots).items[0]
    z_ours = (ours.values - exact) / np.sqrt((1 - exact**2) / shots)

    rb = restricted_backend(backend, tc.physical_qubits)
    where = {p: i for i, p in enumerate(tc.physical_qubits)}
    nm = NoiseModel.from_backend(rb, readout_error=False)
    readout = backend_readout(backend)
    for p in tc.final_physical:
        p10, p01 = readout(p)
        nm.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [where[p]])
    circ = QuantumCircuit(len(tc.physical_qubits), 4)
    for ci in tc.isa.data:
        circ.append(ci.operation, [where[tc.isa.find_bit(q).index] for q in ci.qubits])
    for i, p in enumerate(tc.final_physical):
        circ.measure(where[p], i)
    circ = PassManager([ALAPScheduleAnalysis(target=rb.target), PadDelay(target=rb.target)]).run(circ)
    sim = AerSimulator(method="density_matrix", noise_model=nm, seed_simulator=5)
    bound = [circ.assign_parameters(dict(zip(model.parameters, r)), strict=False) for r in rows]
    counts = sim.run(bound, shots=shots).result().get_counts()
    aer = np.array([[sum(c * (1 - 2 * int(k[::-1][i])) for k, c in cnt.items()) / shots for i in range(4)] for cnt in counts])
    z_aer = (aer - exact) / np.sqrt((1 - exact**2) / shots)
    for z in (z_ours, z_aer):
        assert np.abs(z).max() < 4.5  # 40 values; a 4.5-sigma outlier has odds ~1e-4
        assert 0.4 < np.mean(z**2) < 1.9  # chi-square/40 stays in this range with >99% probability
