"""Server-side evaluation of the global model on held-out data.

The server has no QPU of its own: it evaluates the global model with exact noiseless expectations
(qiskit's ``StatevectorEstimator``), which shows what the federation learned independent of any one
client's noise. Clients report their own noisy training loss each round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.ansatz import ModelCircuit
from qflhw.training.model import HybridModel


def ideal_expectations(
    model: ModelCircuit, observables: Sequence[SparsePauliOp], x: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Noiseless <O_j> at each row of ``x`` (shape (n, n_observables))."""
    x = np.atleast_2d(x)
    bindings = np.hstack([x, np.tile(weights, (x.shape[0], 1))])
    order = [model.parameters.index(p) for p in model.circuit.parameters]
    pub = (model.circuit, [[o] for o in observables], bindings[:, order])
    evs = StatevectorEstimator().run([pub]).result()[0].data.evs  # (n_obs, n)
    return np.asarray(evs).T


def evaluate(
    net: HybridModel,
    model: ModelCircuit,
    observables: Sequence[SparsePauliOp],
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.nn.functional.cross_entropy,
) -> tuple[float, float]:
    """(accuracy, mean loss; cross-entropy unless the spec names another) with ideal circuit evaluation."""
    n_w = len(model.weights)
    flat = net.get_flat()
    q = torch.as_tensor(ideal_expectations(model, observables, x, flat[:n_w]))
    with torch.no_grad():
        logits = net.logits_from_expectations(q)
        loss = loss_fn(logits, torch.as_tensor(np.asarray(y, dtype=int)))
        acc = (logits.argmax(dim=1).numpy() == np.asarray(y)).mean()
    return float(acc), float(loss)
