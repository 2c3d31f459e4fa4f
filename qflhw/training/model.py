"""The hybrid model: a quantum layer run on a client's device, then a small classical head.

The quantum layer is a ``torch.autograd.Function``: its forward pass runs one job on the device
that returns both the expectation values and their Jacobian (parameter shift or SPSA), and its
backward pass contracts the stored Jacobian with the incoming gradient. Gradients flow to the
circuit weights only; inputs are data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

Evaluate = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]


class QuantumFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights: torch.Tensor, x: torch.Tensor, evaluate: Evaluate) -> torch.Tensor:  # noqa: ANN001
        values, jac = evaluate(x.detach().numpy(), weights.detach().numpy())
        ctx.save_for_backward(torch.from_numpy(np.asarray(jac if jac is not None else np.zeros((0,)))))
        return torch.from_numpy(np.asarray(values, dtype=np.float64))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN001, ANN205
        (jac,) = ctx.saved_tensors
        if jac.numel() == 0:
            raise RuntimeError("the quantum layer was evaluated without gradients; call it with grad=True")
        return torch.einsum("bo,bow->w", grad_out, jac), None, None


class HybridModel(nn.Module):
    """Circuit weights + a classical head; the parameter vector is [weights, head parameters...].

    The default head is linear (parameters [head.weight, head.bias]); ``head`` is a module built
    by the spec's own factory (see :mod:`qflhw.training.heads`).
    """

    def __init__(self, n_weights: int, n_observables: int, n_classes: int, seed: int, head: nn.Module | None = None):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.Parameter(
            (torch.rand(n_weights, generator=gen, dtype=torch.float64) * 2 - 1) * np.pi / 4
        )
        if head is not None:
            self.head: nn.Module = head
            return
        self.head = linear = nn.Linear(n_observables, n_classes, dtype=torch.float64)
        with torch.no_grad():
            bound = 1 / np.sqrt(n_observables)
            linear.weight.copy_((torch.rand(linear.weight.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
            linear.bias.zero_()

    def forward(self, x: torch.Tensor, evaluate: Evaluate) -> torch.Tensor:
        return self.head(QuantumFunction.apply(self.weights, x, evaluate))

    def logits_from_expectations(self, expectations: torch.Tensor) -> torch.Tensor:
        return self.head(expectations)

    def get_flat(self) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()]).numpy().copy()

    def set_flat(self, flat: np.ndarray) -> None:
        copy_flat(self, flat)


def copy_flat(module: nn.Module, flat: np.ndarray) -> None:
    """Copy the flat vector ``flat`` into ``module``'s parameters, in ``parameters()`` order.

    A copy, never a view: clients that start from one global array train at the same time, and
    parameters sharing its memory (as ``torch.nn.utils.vector_to_parameters`` makes them) would
    write each client's steps into the others' starting point."""
    values = torch.as_tensor(np.asarray(flat, dtype=np.float64))
    k = 0
    with torch.no_grad():
        for p in module.parameters():
            n = p.numel()
            p.copy_(values[k : k + n].reshape(p.shape))
            k += n
