"""The classical part of your own model: ``[model] head`` and ``[model] loss``.

``head = "package.module:factory"`` is called as ``factory(n_observables, n_classes)`` under the
spec's seed and returns a ``torch.nn.Module`` mapping the circuit's expectation values
(batch, n_observables) to outputs (batch, n_classes); its parameters are trained, aggregated and
checkpointed with the circuit weights. ``loss`` is ``cross-entropy`` (the default), ``mse``
(mean squared error of the outputs against one-hot labels) or ``"package.module:function"``
taking (outputs, integer labels) and returning a scalar tensor. The predicted class is the
output's argmax either way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qflhw._util import load_entry_point, one_line
from qflhw.config.spec import ModelSpec
from qflhw.errors import ConfigError
from qflhw.training.model import HybridModel

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HeadFactory = Callable[[int, int], nn.Module]


def mse_one_hot(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``outputs`` (batch, classes) against one-hot ``labels``."""
    target = nn.functional.one_hot(labels.long(), outputs.shape[-1]).to(outputs.dtype)
    return nn.functional.mse_loss(outputs, target)


def make_loss(spec: ModelSpec) -> Loss:
    """The loss ``model.loss`` names, checked on a small batch."""
    if spec.loss == "cross-entropy":
        return nn.functional.cross_entropy
    if spec.loss == "mse":
        return mse_one_hot
    fn = load_entry_point(spec.loss, "model.loss")
    where = f"model.loss = {spec.loss!r}"
    try:
        value = fn(torch.zeros((2, 2), dtype=torch.float64, requires_grad=True), torch.tensor([0, 1]))
    except Exception as err:  # noqa: BLE001 - user code
        raise ConfigError(f"{where} raised {one_line(err)} on outputs (2, 2) and labels [0, 1]; it takes (outputs, labels)") from err
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ConfigError(f"{where} returned {type(value).__name__}; return a scalar torch tensor (e.g. loss.mean())")
    return fn


def head_factory(spec: ModelSpec) -> HeadFactory | None:
    """The factory ``model.head`` names (None: the built-in linear head)."""
    return load_entry_point(spec.head, "model.head") if spec.head else None


def make_model(spec: ModelSpec, n_weights: int, n_observables: int, n_classes: int, seed: int) -> HybridModel:
    """The hybrid model a spec describes: circuit weights and its head (default linear), seeded."""
    factory = head_factory(spec)
    head = make_head(factory, n_observables, n_classes, seed) if factory else None
    return HybridModel(n_weights, n_observables, n_classes, seed, head=head)


def make_head(factory: HeadFactory, n_observables: int, n_classes: int, seed: int, where: str = "model.head") -> nn.Module:
    """``factory(n_observables, n_classes)`` under ``seed``, in float64, checked on one input row."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            head = factory(n_observables, n_classes)
        except Exception as err:  # noqa: BLE001 - user code
            raise ConfigError(f"{where} raised {one_line(err)} when called as factory({n_observables}, {n_classes})") from err
    if not isinstance(head, nn.Module):
        raise ConfigError(f"{where} returned {type(head).__name__}; return a torch.nn.Module")
    head = head.double()
    try:
        out = head(torch.zeros((1, n_observables), dtype=torch.float64))
    except Exception as err:  # noqa: BLE001 - user code
        raise ConfigError(f"{where}: the head fails on one row of {n_observables} expectation values ({one_line(err)})") from err
    if tuple(out.shape) != (1, n_classes):
        raise ConfigError(
            f"{where}: the head maps (1, {n_observables}) to {tuple(out.shape)}; it must give (1, {n_classes}), one output per class"
        )
    return head
