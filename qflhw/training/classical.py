"""The classical federated baseline: a small torch MLP with about the quantum model's parameter count.

``[model] kind = "classical"`` swaps each client's hybrid model for this network and changes
nothing else: the same encoded features (one angle per qubit), data split, rounds, optimizer,
learning rate and aggregator, so "QFL versus FL" is one study over ``model.kind``. It runs on the
client's CPU; no device job is sent and no shot is charged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from qflhw.config.spec import JobSpec
from qflhw.training.heads import make_model as make_hybrid
from qflhw.training.model import HybridModel, copy_flat


def quantum_parameter_count(n_weights: int, n_observables: int, n_classes: int) -> int:
    """Trainable parameters of the hybrid model: circuit weights and the linear head."""
    return n_weights + n_observables * n_classes + n_classes


def mlp_parameter_count(n_features: int, hidden: int, n_classes: int) -> int:
    return n_features * hidden + hidden + hidden * n_classes + n_classes


def matching_hidden(target: int, n_features: int, n_classes: int) -> int:
    """The hidden width whose MLP parameter count is closest to ``target`` (at least 1)."""
    return max(1, round((target - n_classes) / (n_features + 1 + n_classes)))


class ClassicalModel(nn.Module):
    """features -> tanh hidden layer -> class logits; flat vector [fc.weight, fc.bias, head.weight, head.bias]."""

    def __init__(self, n_features: int, hidden: int, n_classes: int, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(n_features, hidden, dtype=torch.float64)
        self.head = nn.Linear(hidden, n_classes, dtype=torch.float64)
        with torch.no_grad():  # PyTorch's default uniform init, drawn from the seeded generator
            for layer in (self.fc, self.head):
                bound = 1 / np.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    p.copy_((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor, evaluate: object = None) -> torch.Tensor:
        """Logits; ``evaluate`` (the quantum model's device callback) is not used."""
        return self.head(torch.tanh(self.fc(x)))

    def get_flat(self) -> np.ndarray:
        return parameters_to_vector(self.parameters()).detach().numpy().copy()

    def set_flat(self, flat: np.ndarray) -> None:
        copy_flat(self, flat)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


Model = HybridModel | ClassicalModel


def make_model(job: JobSpec, n_weights: int, n_observables: int, n_classes: int) -> Model:
    """The model ``job`` trains: the hybrid model, or the classical MLP of about its size."""
    if job.model.kind == "quantum":
        return make_hybrid(job.model, n_weights, n_observables, n_classes, job.seed)
    n_features = job.model.qubits  # the encoded features: one angle per qubit
    target = quantum_parameter_count(n_weights, n_observables, n_classes)
    hidden = job.model.hidden or matching_hidden(target, n_features, n_classes)
    return ClassicalModel(n_features, hidden, n_classes, seed=job.seed)


def parameter_groups(net: Model, layers: int) -> list[tuple[str, int]]:
    """The model's parameter vector in order, as named groups of sizes: ``layer<k>`` (circuit
    weights of ansatz layer k) and ``head`` for the hybrid model; ``hidden`` and ``head`` for the MLP."""
    if isinstance(net, ClassicalModel):
        return [("hidden", net.fc.weight.numel() + net.fc.bias.numel()), ("head", _size(net.head))]
    n_w = net.weights.numel()
    per = n_w // layers if layers and n_w % layers == 0 else n_w
    groups = [(f"layer{k}", per) for k in range(n_w // per)] if per else []
    return [*groups, ("head", _size(net.head))]


def _size(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
