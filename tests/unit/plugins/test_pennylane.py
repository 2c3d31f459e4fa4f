"""The qflhw.qpu PennyLane device against PennyLane's default.qubit and qflhw's own native path."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch
from pennylane import numpy as pnp
from qiskit.quantum_info import SparsePauliOp

from qflhw.devices.base import Batch, BatchItem
from qflhw.errors import BudgetExceeded, ConfigError
from qflhw.plugins.pennylane import QflhwQPU

N = 3


def templates(inputs, weights, strong, c):  # noqa: ANN001, ANN201
    qml.AngleEmbedding(inputs, wires=range(N))
    qml.BasicEntanglerLayers(weights, wires=range(N))
    qml.StronglyEntanglingLayers(strong, wires=range(N))
    qml.CRX(c, wires=[0, 2])
    return [qml.expval(qml.PauliZ(i)) for i in range(N)] + [qml.expval(qml.PauliX(0) @ qml.PauliY(2) - 0.5 * qml.PauliZ(1))]


def _args(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    raw = (rng.uniform(0, np.pi, N), rng.uniform(-1, 1, (2, N)), rng.uniform(-1, 1, (1, N, 3)), 0.7)
    return [pnp.array(a, requires_grad=True) for a in raw]


@pytest.fixture(scope="module")
def ideal():
    dev = qml.device("qflhw.qpu", wires=N, profile="fake_torino", noise_scale=0)
    yield dev
    dev.close()


def test_the_entry_point_gives_the_device(ideal):
    assert isinstance(ideal, QflhwQPU) and ideal.name == "qflhw.qpu"
    assert ideal.qflhw_device.calibration.provenance.notes.startswith("ideal")


@pytest.mark.parametrize("diff_method", ["parameter-shift", "best"])
def test_noiseless_twin_equals_default_qubit(ideal, diff_method):
    """Values and parameter-shift Jacobians (PennyLane's transform, and the device's one-job path)."""
    ref = qml.QNode(templates, qml.device("default.qubit", wires=N), diff_method="backprop")
    mine = qml.QNode(templates, ideal, diff_method=diff_method)
    args = _args()
    np.testing.assert_allclose(np.array(mine(*args)), np.array(ref(*args)), atol=1e-8)
    jac = qml.jacobian(lambda *a: qml.math.stack(mine(*a)))(*args)
    jac_ref = qml.jacobian(lambda *a: qml.math.stack(ref(*a)))(*args)
    for a, b in zip(jac, jac_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-8)


def test_measurements_match_default_qubit(ideal):
    def circuit(a):  # noqa: ANN001, ANN202
        qml.RY(a, 0)
        qml.CNOT([0, 1])
        qml.Hadamard(2)
        return qml.var(qml.PauliZ(0) + 0.5 * qml.PauliX(2)), qml.probs(wires=[1, 0]), qml.probs(op=qml.PauliX(2)), qml.var(qml.PauliY(1))

    ref = qml.QNode(circuit, qml.device("default.qubit", wires=N))
    got, want = qml.QNode(circuit, ideal)(0.4), ref(0.4)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)
    broadcast = qml.QNode(circuit, ideal)(np.array([0.1, 0.9, 2.0]))
    for a, b in zip(broadcast, ref(np.array([0.1, 0.9, 2.0]))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)


@pytest.fixture(scope="module")
def garnet():
    """A noisy twin (IQM Garnet: square lattice, prx + cz natives), exact mode."""
    dev = qml.device("qflhw.qpu", wires=2, profile="fake_iqm_garnet", seed=5)
    yield dev
    dev.close()


def _native_circuit(a, b, c):  # noqa: ANN001, ANN202
    qml.RX(a, 0)
    qml.RY(b, 1)
    qml.CNOT([0, 1])
    qml.CRX(c, [1, 0])
    return qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(0) @ qml.PauliX(1))


def test_noisy_twin_equals_native_path_on_the_same_transpiled_circuit(garnet):
    values = qml.QNode(_native_circuit, garnet)(0.3, -1.1, 0.8)
    (tc,) = garnet.transpiled()
    # the native path by hand: the transpiled circuit's own parameters are p[0..2] = RX, RY, CRX angles
    params = tuple(sorted(tc.logical.parameters, key=lambda p: p.index))
    obs = (SparsePauliOp("IZ"), SparsePauliOp("XZ"))  # qubit 0 rightmost
    native = garnet.qflhw_device.run(Batch((BatchItem(tc, params, np.array([[0.3, -1.1, 0.8]]), obs),)), None)
    np.testing.assert_allclose(np.array(values), native.items[0].values[0], atol=1e-10)
    ideal = qml.QNode(_native_circuit, qml.device("default.qubit", wires=2))(0.3, -1.1, 0.8)
    assert np.abs(np.array(values) - np.array(ideal)).max() > 1e-3  # the twin is noisy


def test_sampled_values_agree_with_exact_ones_within_shot_noise(garnet):
    """z-scores of 200 sampled <Z0> (independent rows) against the exact noisy values: mean 0, variance 1."""
    angles = np.linspace(-3, 3, 200)
    exact = np.array(qml.QNode(_native_circuit, garnet)(angles, 0.5, 1.2))[0]
    shots = 2000
    sampled = np.array(qml.set_shots(qml.QNode(_native_circuit, garnet), shots=shots)(angles, 0.5, 1.2))[0]
    z = (sampled - exact) / np.sqrt((1 - exact**2) / shots)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert 0.6 < np.mean(z**2) < 1.4  # chi-square with 200 degrees of freedom / 200: 1 +- 4 sigma
    assert garnet.jobs[-1].shots == shots * 200  # one measurement basis (X on qubit 1, Z on qubit 0) per row


def test_samples_and_counts_follow_the_probabilities(garnet):
    def prepare():  # noqa: ANN202
        qml.Hadamard(0)
        qml.RY(1.0, 1)

    def sampled():  # noqa: ANN202
        prepare()
        return qml.counts(wires=[0, 1]), qml.sample(qml.PauliZ(1)), qml.probs(wires=[0, 1])

    def exact():  # noqa: ANN202
        prepare()
        return qml.probs(wires=[0, 1])

    shots = 4000
    counts, samples, probs = qml.set_shots(qml.QNode(sampled, garnet), shots=shots)()
    p = np.asarray(qml.QNode(exact, garnet)())  # the twin's exact noisy distribution
    observed = np.array([counts.get(k, 0) for k in ("00", "01", "10", "11")])
    assert observed.sum() == shots and samples.shape == (shots,) and set(np.unique(samples)) <= {-1, 1}
    np.testing.assert_allclose(observed / shots, probs, atol=1e-12)  # counts and probs: the same shots
    assert np.sum((observed - shots * p) ** 2 / (shots * p)) < 16.3  # chi-square, 3 dof, p = 0.001
    wire1_zero = observed[0] + observed[2]  # keys read wire 0 then wire 1; one tape, so the same shots
    assert samples.mean() == pytest.approx((2 * wire1_zero - shots) / shots)


def test_torch_layer_step_is_one_job_and_evaluation_is_cheap(garnet):
    @qml.qnode(garnet, interface="torch")
    def circuit(inputs, weights):  # noqa: ANN001, ANN202
        qml.AngleEmbedding(inputs, wires=range(2))
        qml.BasicEntanglerLayers(weights, wires=range(2))
        return [qml.expval(qml.PauliZ(i)) for i in range(2)]

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), qml.qnn.TorchLayer(circuit, {"weights": (2, 2)}), torch.nn.Linear(2, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    before = len(garnet.jobs)
    with qml.Tracker(garnet) as tracker:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert len(garnet.jobs) == before + 1
    # 5 rows + 5 x (2 inputs + 4 weights) x 2 shifts, one Z basis each
    assert garnet.jobs[-1].circuits == 5 + 5 * 6 * 2 == tracker.totals["executions"]
    assert tracker.totals["jobs"] == 1 and len(tracker.history["results"]) == 5 + 5 * 6 * 2  # one per tape
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with torch.no_grad():
        net(x)
    assert garnet.jobs[-1].circuits == 5  # no shifted circuits when no gradient is wanted


def test_spsa_through_the_device(ideal):
    @qml.qnode(ideal, diff_method="spsa", gradient_kwargs={"num_directions": 40, "h": 1e-3, "sampler_rng": 7})
    def circuit(w):  # noqa: ANN001, ANN202
        qml.RX(w[0], 0)
        qml.RY(w[1], 1)
        qml.CNOT([0, 1])
        return qml.expval(qml.PauliZ(1))

    w = pnp.array([0.4, -0.9], requires_grad=True)
    grad = qml.grad(circuit)(w)
    exact = [-np.sin(0.4) * np.cos(-0.9), -np.cos(0.4) * np.sin(-0.9)]  # <Z1> = cos(w0) cos(w1)
    np.testing.assert_allclose(grad, exact, atol=0.15)
    opt = qml.SPSAOptimizer(maxiter=10)
    w2 = opt.step(circuit, w)
    assert w2.shape == (2,)


def test_tracker_and_report_count_jobs_shots_and_cost(tmp_path):
    profile = tmp_path / "paid_twin.toml"
    profile.write_text(
        'name = "paid_twin"\nprovider = "fake"\ndevice = "ibm_fez"\ncalibration = "ibm_fez/latest"\nqubits = 156\n'
        '[price]\nper_task = 0.5\nper_shot = 0.001\nread = 2026-01-01\n'
    )
    dev = qml.device("qflhw.qpu", wires=1, profile=str(profile), shots=100, budget_usd=1.0, label="paid")

    @qml.qnode(dev)
    def circuit(a):  # noqa: ANN001, ANN202
        qml.RX(a, 0)
        return qml.expval(qml.PauliZ(0))

    with qml.Tracker(dev) as tracker:
        circuit(0.1)
    assert tracker.totals["shots"] == 100 and tracker.totals["jobs"] == 1
    assert tracker.totals["cost_usd"] == pytest.approx(0.5 + 100 * 0.001)
    assert tracker.latest["calibration_id"] == dev.qflhw_device.calibration.id
    report = dev.report()
    assert report["jobs"] == 1 and report["cost_usd"] == pytest.approx(0.6) and 0 < report["esp"] < 1
    with pytest.raises(BudgetExceeded, match="budget_usd"):
        circuit(0.2)  # 0.6 + 0.6 > 1.0: refused before it is sent
    assert dev.report()["jobs"] == 1 and dev.qflhw_device.submissions == 1


def test_journal_replays_a_rerun_without_sending_again(tmp_path):
    def session(values):  # noqa: ANN001, ANN202
        dev = qml.device("qflhw.qpu", wires=1, profile="fake_iqm_garnet", seed=9, journal=tmp_path / "j")

        @qml.qnode(dev)
        def circuit(a):  # noqa: ANN001, ANN202
            qml.RX(a, 0)
            return qml.expval(qml.PauliZ(0))

        out = [float(qml.set_shots(circuit, shots=500)(v)) for v in values]
        dev.close()
        return out, dev

    first, _ = session([0.1, 0.2])
    again, dev = session([0.1, 0.2, 0.3])  # the script ran further this time
    assert again[:2] == first
    assert [j.from_journal for j in dev.jobs] == [True, True, False]
    log = (tmp_path / "j" / "fake-provider" / "fake_iqm_garnet" / "submissions.log").read_text().splitlines()
    assert len(log) == 3  # the provider saw each job once


def test_mitigation_moves_values_towards_ideal():
    def circuit(a):  # noqa: ANN001, ANN202
        qml.RY(a, 0)
        for _ in range(3):
            qml.CNOT([0, 1])
        return qml.expval(qml.PauliZ(0) @ qml.PauliZ(1))

    ideal = qml.QNode(circuit, qml.device("default.qubit", wires=2))(0.5)
    raw = qml.QNode(circuit, qml.device("qflhw.qpu", wires=2, profile="fake_iqm_garnet", seed=2))(0.5)
    zne = qml.QNode(circuit, qml.device("qflhw.qpu", wires=2, profile="fake_iqm_garnet", seed=2, mitigation="zne+rem"))(0.5)
    assert abs(zne - ideal) < 0.5 * abs(raw - ideal)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="noise scale must be a number >= 0"):
        qml.device("qflhw.qpu", wires=1, noise_scale=-1)
    with pytest.raises(ConfigError, match="unknown device profile 'fake_nowhere'"):
        qml.device("qflhw.qpu", wires=1, profile="fake_nowhere")
    with pytest.raises(ConfigError, match="mitigation"):
        qml.device("qflhw.qpu", wires=1, mitigation="zne+magic")


def test_shot_vectors_give_one_result_per_entry(garnet):
    @qml.qnode(garnet)
    def circuit(a):  # noqa: ANN001, ANN202
        qml.RX(a, 0)
        return qml.expval(qml.PauliZ(0)), qml.counts(wires=[0])

    before = len(garnet.jobs)
    out = qml.set_shots(circuit, shots=[100, 100, 300])(0.4)
    assert len(out) == 3 and [sum(c.values()) for _, c in out] == [100, 100, 300]
    assert len(garnet.jobs) == before + 1 and garnet.jobs[-1].shots == 500  # one job, the entries sampled apart
