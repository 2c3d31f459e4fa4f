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
