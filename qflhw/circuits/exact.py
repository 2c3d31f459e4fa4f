"""Noiseless expectation values of a model circuit, for evaluation without a device.

The server has no QPU and a client may be asked to score a model exactly (``[evaluation]
on_device = false``); both use qiskit's ``StatevectorEstimator`` on the logical circuit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.ansatz import ModelCircuit


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
