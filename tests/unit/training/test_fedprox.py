"""FedProx's proximal term: value and gradient by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qflhw.errors import ConfigError, InvalidUpdate
from qflhw.training.fedprox import proximal_term


def test_proximal_term_value_and_gradient():
    params = torch.tensor([1.0, 2.0], requires_grad=True)
    term = proximal_term(params, np.array([0.0, 4.0]), mu=0.5)
    assert term.item() == pytest.approx(0.25 * (1.0 + 4.0))
    term.backward()
    np.testing.assert_allclose(params.grad.numpy(), 0.5 * np.array([1.0, -2.0]))
    assert proximal_term(params, torch.zeros(2), mu=0.0).item() == 0.0


def test_proximal_term_errors():
    with pytest.raises(ConfigError, match="mu=-1"):
        proximal_term(torch.zeros(2), np.zeros(2), mu=-1)
    with pytest.raises(InvalidUpdate, match=r"params has shape \(2,\) but global_params \(1,\)"):
        proximal_term(torch.zeros(2), np.zeros(1), mu=0.1)
