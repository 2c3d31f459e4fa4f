"""FedProx's client-side proximal term (Li et al., arXiv:1812.06127).

The server side of FedProx is plain FedAvg; the server only sends ``proximal_mu`` (here: the
spec's ``training.proximal_mu``) and the client adds the term to its loss.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from qflhw.errors import ConfigError, InvalidUpdate


def proximal_term(params: torch.Tensor, global_params: torch.Tensor | np.ndarray, mu: float) -> torch.Tensor:
    """FedProx's mu/2 * ||params - global_params||^2, for the client loop to add to its loss.

    It pulls local training towards the global model on heterogeneous clients; the server side of
    FedProx is plain FedAvg. ``global_params`` is a constant: no gradient flows into it.
    """
    if not (mu >= 0 and math.isfinite(mu)):
        raise ConfigError(f"mu={mu}: the proximal coefficient must be finite and >= 0 (0 turns FedProx off)")
    anchor = torch.as_tensor(global_params, dtype=params.dtype, device=params.device).detach()
    if anchor.shape != params.shape:
        raise InvalidUpdate(
            f"proximal_term: params has shape {tuple(params.shape)} but global_params {tuple(anchor.shape)}; "
            "pass the flat parameter vector the server sent"
        )
    return 0.5 * mu * torch.sum((params - anchor) ** 2)
