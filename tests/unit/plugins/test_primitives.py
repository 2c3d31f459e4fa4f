"""qflhw.primitives against qiskit's reference primitives, and qiskit-machine-learning on top of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp

from qflhw.errors import ConfigError
from qflhw.primitives import Estimator, Sampler


def _circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    x, w = ParameterVector("x", 2), ParameterVector("w", 4)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.rx(w[0], 0)
    qc.rx(w[1], 1)
    qc.cx(0, 1)
    qc.ry(w[2], 0)
    qc.rz(w[3], 1)
    qc.crx(w[0], 1, 0)
    return qc, x, w


OBSERVABLES = [SparsePauliOp("IZ"), SparsePauliOp("ZI"), SparsePauliOp.from_list([("XX", 0.5), ("YZ", -0.3)])]


@pytest.fixture(scope="module")
def ideal_estimator():
    est = Estimator("fake_torino", noise_scale=0, default_precision=0.0)
    yield est
    est.close()


def test_estimator_qnn_forward_and_backward_equal_statevector(ideal_estimator):
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    qc, x, w = _circuit()

    def qnn(estimator):  # noqa: ANN001, ANN202
        return EstimatorQNN(
            circuit=qc, estimator=estimator, observables=OBSERVABLES, input_params=list(x), weight_params=list(w),
            input_gradients=True, default_precision=0.0,
        )

    rng = np.random.default_rng(1)
    inputs, weights = rng.uniform(0, 3, (6, 2)), rng.uniform(-1, 1, 4)
    mine, ref = qnn(ideal_estimator), qnn(StatevectorEstimator())
    before = len(ideal_estimator.jobs)
    np.testing.assert_allclose(mine.forward(inputs, weights), ref.forward(inputs, weights), atol=1e-8)
    for a, b in zip(mine.backward(inputs, weights), ref.backward(inputs, weights)):
        np.testing.assert_allclose(a, b, atol=1e-8)
    assert len(ideal_estimator.jobs) == before + 2  # forward: one run, one job; backward: one run, one job


def test_torch_connector_step_is_one_job_per_run(ideal_estimator):
    from qiskit_machine_learning.connectors import TorchConnector
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    qc, x, w = _circuit()
    qnn = EstimatorQNN(circuit=qc, estimator=ideal_estimator, observables=OBSERVABLES[:2], input_params=list(x),
                       weight_params=list(w), input_gradients=True, default_precision=0.0)
    model = TorchConnector(qnn, initial_weights=np.array([0.1, -0.2, 0.3, 0.4]))
    inputs = torch.tensor(np.random.default_rng(2).uniform(0, 3, (4, 2)), requires_grad=True)
    before = len(ideal_estimator.jobs)
    model(inputs).pow(2).sum().backward()
    assert len(ideal_estimator.jobs) == before + 2 and inputs.grad is not None and model.weight.grad is not None
    # the backward run's scalar pubs (one per sample, observable and shift) were merged: 4 x 7 x 2 rows at most
    assert ideal_estimator.jobs[-1].circuits <= 4 * 7 * 2 * 2


def test_noisy_estimates_scatter_by_their_standard_errors():
    qc, x, w = _circuit()
    rng = np.random.default_rng(3)
    rows = np.hstack([rng.uniform(0, 3, (150, 2)), rng.uniform(-1, 1, (150, 4))])
    exact = Estimator("fake_iqm_garnet", seed=4, default_precision=0.0)
    sampled = Estimator("fake_iqm_garnet", seed=4)
    pub = (qc, OBSERVABLES[0], rows)
    want = exact.run([pub]).result()[0].data.evs
    got = sampled.run([pub], precision=0.02).result()[0]
    assert got.metadata["shots"] == 2500  # ceil(1 / 0.02**2)
    z = (got.data.evs - want) / got.data.stds
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and 0.55 < np.mean(z**2) < 1.45  # 150 dof: 1 +- 4 sigma
    np.testing.assert_allclose(got.data.stds, np.sqrt((1 - got.data.evs**2) / 2500), atol=1e-12)


def test_estimator_pub_shapes_follow_broadcasting(ideal_estimator):
    qc, _, _ = _circuit()
    vals = np.random.default_rng(5).uniform(-1, 1, (5, 6))
    pub = (qc, [[o] for o in OBSERVABLES], vals)  # observables (3, 1) x values (5,) -> (3, 5)
    got = ideal_estimator.run([pub, (qc, OBSERVABLES[1], vals[0])]).result()
    ref = StatevectorEstimator().run([pub, (qc, OBSERVABLES[1], vals[0])]).result()
    assert got[0].data.evs.shape == (3, 5) and got[1].data.evs.shape == ()
    np.testing.assert_allclose(got[0].data.evs, ref[0].data.evs, atol=1e-10)
    np.testing.assert_allclose(got[1].data.evs, ref[1].data.evs, atol=1e-10)
    assert ideal_estimator.jobs[-1].job_id == got.metadata["job_id"]


def test_sampler_counts_match_the_statevector_distribution():
    qc, _, _ = _circuit()
    qc.measure_all()
    vals = np.random.default_rng(6).uniform(-1, 1, (3, 6))
    sampler = Sampler("fake_torino", noise_scale=0, seed=8)
    res = sampler.run([(qc, vals)], shots=4000).result()[0]
    assert res.data.meas.shape == (3,) and res.data.meas.num_shots == 4000 and res.data.meas.num_bits == 2
    for i in range(3):
        counts = res.data.meas[i].get_counts()
        bound = qc.remove_final_measurements(inplace=False).assign_parameters(vals[i])
        from qiskit.quantum_info import Statevector

        p = Statevector(bound).probabilities_dict()
        chi2 = sum((counts.get(k, 0) - 4000 * p.get(k, 0.0)) ** 2 / (4000 * p[k]) for k in p if p[k] > 1e-9)
        assert chi2 < 16.3  # chi-square, 3 dof, p = 0.001
    ref = StatevectorSampler(seed=1).run([(qc, vals)], shots=10).result()[0]
    assert set(ref.data.keys()) == set(res.data.keys())  # the same register names


def test_sampler_keeps_classical_registers_apart():
    from qiskit import ClassicalRegister, QuantumRegister

    q, a, b = QuantumRegister(2), ClassicalRegister(1, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b)
    qc.x(1)
    qc.measure(1, a[0])
    qc.measure(0, b[0])
    res = Sampler("fake_iqm_garnet", noise_scale=0).run([qc], shots=50).result()[0]
    assert res.data.a.get_counts() == {"1": 50} and res.data.b.get_counts() == {"0": 50}


def test_primitive_errors_are_one_line():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    qc.x(0)
    with pytest.raises(ConfigError, match="measurements come last"):
        Sampler("fake_iqm_garnet").run([qc]).result()
    with pytest.raises(ConfigError, match="precision must be"):
        Estimator("fake_iqm_garnet", default_precision=-0.1)
    with pytest.raises(ConfigError, match="mitigation cannot correct"):
        Sampler("fake_iqm_garnet", mitigation="rem")
