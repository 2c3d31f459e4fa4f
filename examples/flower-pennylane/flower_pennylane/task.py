"""The model, data and training loop of Flower's quickstart-pennylane, on qflhw devices.

Flower's original (examples/quickstart-pennylane/quickstart_pennylane/task.py, Apache-2.0) runs the
TorchLayer on ``default.qubit`` and trains on CIFAR-10 downloaded from the Hugging Face hub. Here:

* the device line is ``qml.device("qflhw.qpu", wires=n_qubits, profile=profile, shots=shots, ...)``:
  the circuit is transpiled for that client's device and every optimizer step is one provider job;
* the data is scikit-learn's 8x8 digits (shipped with scikit-learn, no download), split IID;
* so the network before the quantum layer is two dense layers on 64 pixels instead of the CNN.

The QNode, the TorchLayer and the train/test loops are the original's.
"""

from __future__ import annotations

import numpy as np
import pennylane as qml
import torch
import torch.nn.functional as F  # noqa: N812 - the original's name
from torch import nn
from torch.utils.data import DataLoader


def create_quantum_circuit(n_qubits: int, profile: str | None = None, *, shots: int = 1000, seed: int = 0, journal: str = ""):
    """The quickstart's QNode; on ``profile``'s qflhw device, or on default.qubit when profile is None."""
    if profile is None:  # the server's evaluation: a noiseless simulator, free
        dev = qml.device("default.qubit", wires=n_qubits)
    else:
        dev = qml.device("qflhw.qpu", wires=n_qubits, profile=profile, shots=shots, seed=seed, journal=journal or None)

    @qml.qnode(dev, interface="torch")
    def quantum_circuit(inputs, weights):  # noqa: ANN001, ANN202
        qml.AngleEmbedding(inputs, wires=range(n_qubits))
        qml.BasicEntanglerLayers(weights, wires=range(n_qubits))
        return [qml.expval(qml.PauliZ(i)) for i in range(n_qubits)]

    return quantum_circuit


class QuantumNet(nn.Module):
    """Dense layers on the 64 pixels, the quantum layer, then the output layer (10 digits)."""

    def __init__(self, num_classes: int = 10, n_qubits: int = 4, n_layers: int = 3, profile: str | None = None, **device):  # noqa: ANN003
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, n_qubits)
        circuit = create_quantum_circuit(n_qubits, profile, **device)
        self.qnn = qml.qnn.TorchLayer(circuit, {"weights": (n_layers, n_qubits)})
        self.fc_out = nn.Linear(n_qubits, num_classes)
        self.dropout = nn.Dropout(0.2)
        self.qpu = circuit.device  # the qflhw.qpu device: jobs, shots, cost (qpu.report())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.view(-1, 64)))
        x = self.dropout(x)
        x = torch.relu(self.fc2(x))
        x = self.qnn(x)
        return self.fc_out(x)


class _Digits(torch.utils.data.Dataset):
    """Rows as the original's dict batches: ``{"img": tensor, "label": int}``."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"img": self.x[i], "label": self.y[i]}


def load_data(partition_id: int, num_partitions: int, batch_size: int = 16, max_train: int | None = None, eval_batch_size: int = 128):  # noqa: ANN201, E501
    """Client ``partition_id``'s IID share of the digits: 80% train (at most ``max_train`` rows), 20% validation.

    Validation needs no gradients, so its batches are large: one provider job per ``eval_batch_size`` rows.
    """
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # pixels in [0, 1]
    order = np.random.default_rng(42).permutation(len(y))
    part = np.array_split(order, num_partitions)[partition_id]
    cut = int(0.8 * len(part))
    train, val = part[:cut][:max_train], part[cut:]
    gen = torch.Generator().manual_seed(partition_id)
    trainloader = DataLoader(_Digits(x[train], y[train]), batch_size=batch_size, shuffle=True, generator=gen)
    valloader = DataLoader(_Digits(x[val], y[val]), batch_size=eval_batch_size)
    return trainloader, valloader


def train(net: nn.Module, trainloader: DataLoader, valloader: DataLoader, epochs: int, learning_rate: float, device: torch.device) -> dict:
    """The original's training loop: Adam, cross-entropy, then validation."""
    net.to(device)
    net.train()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    running_loss = 0.0
    for _ in range(epochs):
        for batch in trainloader:
            data = batch["img"].to(device)
            target = torch.as_tensor(batch["label"], dtype=torch.long, device=device)
            optimizer.zero_grad()
            loss = criterion(net(data), target)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    val_loss, val_accuracy = test(net, valloader, device)
    return {"train_loss": running_loss / (epochs * len(trainloader)), "val_loss": val_loss, "val_accuracy": val_accuracy}


def test(net: nn.Module, testloader: DataLoader, device: torch.device) -> tuple[float, float]:
    """The original's evaluation: mean loss and accuracy in percent."""
    net.to(device)
    net.eval()
    criterion = nn.CrossEntropyLoss()
    test_loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for batch in testloader:
            data = batch["img"].to(device)
            target = torch.as_tensor(batch["label"], dtype=torch.long, device=device)
            output = net(data)
            test_loss += criterion(output, target).item()
            correct += (output.argmax(dim=1) == target).sum().item()
            total += target.size(0)
    return test_loss / len(testloader), 100.0 * correct / total
