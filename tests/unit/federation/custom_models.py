"""Models of one's own, named by specs in the tests as ``tests.unit.federation.custom_models:<name>``."""

from __future__ import annotations

import pennylane as qml
import torch
from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit


def shared_weights(qubits: int = 2) -> QuantumCircuit:
    """w[0] drives three gates, w[1] an angle 2*w[1] + 0.3, and x[0]*w[2] mixes data and weight."""
    x, w = ParameterVector("x", qubits), ParameterVector("w", 3)
    qc = QuantumCircuit(qubits, name="shared")
    for q in range(qubits):
        qc.ry(x[q], q)
    for q in range(qubits):
        qc.rx(w[0], q)
    qc.crx(w[0], 0, 1)
    qc.rz(2 * w[1] + 0.3, 1)
    qc.ry(x[0] * w[2], 0)
    qc.cx(0, 1)
    return qc


def pennylane_model(qubits: int = 2):  # noqa: ANN201 - (qfunc, weight shapes)
    """Flower's quickstart-pennylane circuit: AngleEmbedding + BasicEntanglerLayers, <Z> per wire."""

    def circuit(inputs, weights):  # noqa: ANN001, ANN202
        qml.AngleEmbedding(inputs, wires=range(qubits))
        qml.BasicEntanglerLayers(weights, wires=range(qubits))
        return [qml.expval(qml.PauliZ(i)) for i in range(qubits)]

    return circuit, {"weights": (2, qubits)}


def strongly_entangling(qubits: int = 2):  # noqa: ANN201
    """Rot gates (three angles each) and a CRX driven by a scaled weight: every angle its own gate after decomposition."""

    def circuit(inputs, weights, extra):  # noqa: ANN001, ANN202
        qml.AngleEmbedding(inputs, wires=range(qubits), rotation="Y")
        qml.StronglyEntanglingLayers(weights, wires=range(qubits))
        qml.CRX(2 * extra[0], wires=[0, 1])
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliX(1) @ qml.PauliZ(0))]

    return circuit, {"weights": (1, qubits, 3), "extra": (1,)}


def mlp_head(n_observables: int, n_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_observables, 6), torch.nn.Tanh(), torch.nn.Linear(6, n_classes))


def margin_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.multi_margin_loss(outputs, labels)


# ---------------------------------------------------------------- bad entry points
def returns_a_number() -> int:
    return 3


def unnamed_parameters() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.ry(Parameter("x0"), 0)
    qc.rx(Parameter("theta"), 1)
    return qc


def no_shift_rule() -> QuantumCircuit:
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.u(w[0], w[1], w[2], 0)
    return qc


def pennylane_without_shapes():  # noqa: ANN201
    return pennylane_model()[0]


def head_with_wrong_width(n_observables: int, n_classes: int) -> torch.nn.Module:
    return torch.nn.Linear(n_observables, n_classes + 1)
