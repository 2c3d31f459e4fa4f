"""Parameter-shift gradients on a noiseless twin against PennyLane's exact backprop gradients."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from qiskit.circuit import Parameter, QuantumCircuit

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.factory import make_device
from qflhw.errors import ConfigError
from qflhw.execution.gradients import parameter_shift_plan, shift_rules, spsa_plan


def _pennylane_jacobian(x, w, n, layers):
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="autograd", diff_method="backprop")
    def circuit(weights):
        k = 0
        for _ in range(layers):
            if _ == 0:
                for q in range(n):
                    qml.RY(x[q], wires=q)
            for q in range(n):
                qml.RX(weights[k], wires=q)
                qml.RY(weights[k + 1], wires=q)
                qml.RZ(weights[k + 2], wires=q)
                k += 3
            for q in range(n):
                qml.CRX(weights[k], wires=[q, (q + 1) % n])
                k += 1
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    from pennylane import numpy as pnp

    wt = pnp.array(w, requires_grad=True)
    vals = np.array(circuit(wt))
    jac = np.array(qml.jacobian(lambda v: qml.math.stack(circuit(v)))(wt))
    return vals, jac


def test_parameter_shift_equals_pennylane_backprop():
    n, layers = 3, 2
    dev = make_device("fake_torino", noise_scale=1e-12)
    model = build("rot-crx", n, layers)
    tc = dev.transpile(model.circuit)
    rng = np.random.default_rng(11)
    x = rng.uniform(0, np.pi, (2, n))
    w = rng.uniform(-np.pi, np.pi, len(model.weights))
    base = np.hstack([x, np.tile(w, (2, 1))])
    cols = list(range(n, n + len(model.weights)))
    plan = parameter_shift_plan(base, cols, shift_rules(model.circuit, model.weights))
    res = dev.run(Batch((BatchItem(tc, model.parameters, plan.bindings, tuple(z_observables(n))),)), shots=None)
    values, jac = plan.combine(res.items[0].values)
    for i in range(2):
        ref_vals, ref_jac = _pennylane_jacobian(x[i], w, n, layers)
        np.testing.assert_allclose(values[i], ref_vals, atol=1e-6)
        np.testing.assert_allclose(jac[i], ref_jac, atol=1e-6)


def test_spsa_is_unbiased_on_average():
    """Averaged over many perturbations, SPSA's Jacobian approaches the exact one."""
    n = 2
    dev = make_device("fake_torino", noise_scale=1e-12)
    model = build("rot-crx", n, 1)
    tc = dev.transpile(model.circuit)
    rng = np.random.default_rng(2)
    base = rng.uniform(-1, 1, (1, len(model.parameters)))
    cols = list(range(n, len(model.parameters)))
    exact_plan = parameter_shift_plan(base, cols, shift_rules(model.circuit, model.weights))
    run = lambda b: dev.run(Batch((BatchItem(tc, model.parameters, b, tuple(z_observables(n))),)), None).items[0].values  # noqa: E731
    _, exact = exact_plan.combine(run(exact_plan.bindings))
    plans = [spsa_plan(base, cols, rng, epsilon=0.01) for _ in range(400)]
    values = run(np.concatenate([p.bindings for p in plans]))
    est = np.mean([p.combine(values[3 * i : 3 * i + 3])[1] for i, p in enumerate(plans)], axis=0)
    # each SPSA sample has error sum_{j != i} g_j delta_j; 400 samples shrink it by 20x
    assert np.abs(est - exact).max() < 4 * np.abs(exact).sum() / np.sqrt(400)


def test_weight_driving_two_gates_is_rejected():
    a = Parameter("a")
    qc = QuantumCircuit(1)
    qc.rx(a, 0)
    qc.ry(a, 0)
    with pytest.raises(ConfigError, match="drives 2 gates"):
        shift_rules(qc, [a])


def _shared_pennylane(x, w):
    """The circuit of ``tests.unit.federation.custom_models.shared_weights`` in PennyLane, backprop."""
    from pennylane import numpy as pnp

    @qml.qnode(qml.device("default.qubit", wires=2), diff_method="backprop")
    def circuit(v):
        qml.RY(x[0], 0)
        qml.RY(x[1], 1)
        qml.RX(v[0], 0)
        qml.RX(v[0], 1)
        qml.CRX(v[0], [0, 1])
        qml.RZ(2 * v[1] + 0.3, 1)
        qml.RY(x[0] * v[2], 0)
        qml.CNOT([0, 1])
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(1)), qml.expval(qml.PauliX(1))]

    wt = pnp.array(w, requires_grad=True)
    return np.array(circuit(wt)), np.array(qml.jacobian(lambda v: qml.math.stack(circuit(v)))(wt))


def test_product_and_chain_rule_for_weights_in_several_gates_and_expressions():
    """w[0] drives three gates, w[1] enters as 2 w + 0.3, w[2] as x[0] * w: shifted per angle, summed by the chain rule."""
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    from qflhw.circuits.custom import load_model
    from qflhw.config.spec import ModelSpec
    from qflhw.execution.gradients import shift_circuit

    model, _ = load_model(ModelSpec(circuit="tests.unit.federation.custom_models:shared_weights", qubits=2))
    sc = shift_circuit(model.circuit, model.inputs, model.weights)
    assert len(sc.shifted) == 5 and sc.angles is not None  # five weight-dependent angles
    rng = np.random.default_rng(4)
    x, w = rng.uniform(0, np.pi, (3, 2)), rng.uniform(-2, 2, 3)
    base = np.hstack([x, np.tile(w, (3, 1))])
    plan = sc.plan(base)
    obs = [SparsePauliOp("IZ"), SparsePauliOp("ZI"), SparsePauliOp("XI")]
    order = [sc.parameters.index(p) for p in sc.circuit.parameters]
    evs = StatevectorEstimator().run([(sc.circuit, [[o] for o in obs], plan.bindings[:, order])]).result()[0].data.evs
    values, jac = plan.combine(np.asarray(evs).T)
    for i in range(3):
        ref_vals, ref_jac = _shared_pennylane(x[i], w)
        np.testing.assert_allclose(values[i], ref_vals, atol=1e-10)
        np.testing.assert_allclose(jac[i], ref_jac, atol=1e-10)


def test_plain_circuits_keep_the_one_gate_per_weight_plan():
    from qflhw.execution.gradients import shift_circuit

    model = build("rot-crx", 3, 2)
    sc = shift_circuit(model.circuit, model.inputs, model.weights)
    assert sc.circuit is model.circuit and sc.angles is None
    assert sc.rules == tuple(shift_rules(model.circuit, model.weights))


def test_a_gate_without_a_shift_rule_is_named_and_spsa_suggested():
    from qflhw.execution.gradients import shift_circuit

    a, x = Parameter("w"), Parameter("x")
    qc = QuantumCircuit(1)
    qc.ry(x, 0)
    qc.u(a, 0.1, 0.2, 0)
    with pytest.raises(ConfigError, match=r"weight w \(instruction 1\) drives gate 'u'.*gradient = 'spsa'"):
        shift_circuit(qc, [x], [a])
