"""Models of one's own, loaded from entry points: the circuit qflhw runs computes what the user wrote."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from qiskit.primitives import StatevectorEstimator

from qflhw.circuits.custom import load_model
from qflhw.config.spec import ModelSpec
from qflhw.errors import ConfigError
from tests.unit.federation import custom_models

OWN = "tests.unit.federation.custom_models"


def _values(model, observables, x, w):  # noqa: ANN001, ANN202
    row = np.concatenate([x, w])
    order = [model.parameters.index(p) for p in model.circuit.parameters]
    return np.asarray(StatevectorEstimator().run([(model.circuit, [[o] for o in observables], row[order])]).result()[0].data.evs).ravel()


@pytest.mark.parametrize("name", ["pennylane_model", "strongly_entangling"])
def test_a_pennylane_circuit_becomes_the_same_qiskit_circuit(name):
    model, observables = load_model(ModelSpec(circuit=f"{OWN}:{name}", qubits=2))
    qfunc, shapes = getattr(custom_models, name)(2)
    ref = qml.QNode(qfunc, qml.device("default.qubit", wires=2))
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.uniform(0, np.pi, 2)
        ws = {k: rng.uniform(-2, 2, s) for k, s in shapes.items()}
        flat = np.concatenate([v.ravel() for v in ws.values()])
        np.testing.assert_allclose(_values(model, observables, x, flat), np.array(ref(x, **ws)), atol=1e-10)
    assert len(model.inputs) == 2 and len(model.weights) == sum(int(np.prod(s)) for s in shapes.values())


def test_a_qiskit_circuit_names_its_inputs_and_weights():
    model, observables = load_model(ModelSpec(circuit=f"{OWN}:shared_weights", qubits=2))
    assert [p.name for p in model.inputs] == ["x[0]", "x[1]"] and [p.name for p in model.weights] == ["w[0]", "w[1]", "w[2]"]
    assert observables is None  # [model] observables apply


@pytest.mark.parametrize(
    ("ref", "extra", "message"),
    [
        ("nowhere_pkg.models:circuit", {}, "no module named 'nowhere_pkg'"),
        (f"{OWN}:missing", {}, "has no 'missing'"),
        (f"{OWN}:returns_a_number", {}, "returned int"),
        (f"{OWN}:unnamed_parameters", {}, "neither inputs nor weights"),
        (f"{OWN}:pennylane_without_shapes", {}, "without its weight shapes"),
        (f"{OWN}:shared_weights", {"layers": 3}, "takes no 'layers' argument"),
        (f"{OWN}:no_shift_rule", {"qubits": 3}, "builds 2 qubits but model.qubits is 3"),
        (f"{OWN}:pennylane_model", {"observables": ["ZZ"]}, "remove model.observables"),
    ],
)
def test_bad_entry_points_are_one_line_naming_the_field(ref, extra, message):
    with pytest.raises(ConfigError, match="model.circuit") as err:
        load_model(ModelSpec(circuit=ref, **extra))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_non_affine_angles_are_refused(tmp_path, monkeypatch):
    (tmp_path / "sine_model.py").write_text(
        "import pennylane as qml, torch\n"
        "def make():\n"
        "    def f(inputs, weights):\n"
        "        qml.RX(torch.sin(weights[0]), 0)\n"
        "        qml.RY(inputs[0], 0)\n"
        "        return [qml.expval(qml.PauliZ(0))]\n"
        "    return f, {'weights': (1,), 'inputs': 1}\n"
    )
    monkeypatch.chdir(tmp_path)  # the current directory is on the import path
    with pytest.raises(ConfigError, match=r"gate 0 \(RX\) is not an affine function"):
        load_model(ModelSpec(circuit="sine_model:make"))
