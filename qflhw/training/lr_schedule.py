"""Learning-rate schedules with negative phases, against barren plateaus, for any torch optimizer.

``[training.lr_schedule] kind = "sign-switch"`` alternates ``positive_steps`` optimizer steps at
the learning rate with ``negative_steps`` steps at ``-negative_scale`` times it: short phases of
gradient *ascent* that move the parameters out of flat regions, after which descent resumes. With
``trigger = "grad-norm"`` a negative phase starts only once at least ``positive_steps`` positive
steps were taken *and* the gradient norm of the last step fell below ``grad_norm_below`` (the
landscape looks flat), so a model that still learns is left alone.

The idea is from Rahman and Nguyen, "Escaping barren plateaus ... negative learning rates"
(arXiv:2511.22861): switch between positive and negative learning phases. The paper's exact
schedule (when to switch, for how long, how large) is not given in what we could read, so the
parameters above, their defaults and the gradient-norm trigger are **qflhw's own**.

The schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` whose factor is a callable object
(:class:`SignSwitch`): LambdaLR multiplies each parameter group's base rate by the factor, which
works for SGD, Adam or any optimizer that reads ``param_group["lr"]``, and its ``state_dict`` keeps
the callable's state, so a checkpointed client resumes bit for bit.
"""

from __future__ import annotations

import math

import torch

from qflhw.config.spec import LRScheduleSpec
from qflhw.errors import ConfigError


class SignSwitch:
    """The LambdaLR factor of a sign-switch schedule: 1 in positive phases, ``-scale`` in negative ones.

    ``observe(grad_norm)`` reports the gradient norm of the step just taken (needed only by the
    ``grad-norm`` trigger). The phase advances once per LambdaLR step, i.e. once per optimizer step.
    """

    def __init__(self, positive_steps: int, negative_steps: int, scale: float, *, trigger: str = "steps", threshold: float = 1e-3):
        if positive_steps < 1 or negative_steps < 1 or not (scale > 0 and math.isfinite(scale)):
            raise ConfigError(
                f"sign-switch schedule needs positive_steps >= 1, negative_steps >= 1 and negative_scale > 0, got "
                f"{positive_steps}, {negative_steps}, {scale}"
            )
        if trigger not in ("steps", "grad-norm"):
            raise ConfigError(f"lr_schedule.trigger must be 'steps' or 'grad-norm', got {trigger!r}")
        self.positive_steps = positive_steps
        self.negative_steps = negative_steps
        self.scale = float(scale)
        self.trigger = trigger
        self.threshold = float(threshold)
        # state (kept by LambdaLR.state_dict, which saves a callable object's __dict__)
        self.negative = False
        self.in_phase = 0  # steps taken in the current phase
        self.seen = 0  # the last LambdaLR epoch this object advanced to
        self.grad_norm = math.inf
        self.switches = 0  # negative phases started so far

    def observe(self, grad_norm: float) -> None:
        self.grad_norm = float(grad_norm)

    def __call__(self, epoch: int) -> float:
        while self.seen < epoch:  # one phase step per optimizer step since the last call
            self.seen += 1
            self.in_phase += 1
            if self.negative and self.in_phase >= self.negative_steps:
                self.negative, self.in_phase = False, 0
            elif not self.negative and self.in_phase >= self.positive_steps:
                if self.trigger == "steps" or self.grad_norm < self.threshold:
                    self.negative, self.in_phase = True, 0
                    self.switches += 1
        return -self.scale if self.negative else 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, spec: LRScheduleSpec) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The scheduler ``spec`` asks for on ``optimizer`` (None for ``constant``: the optimizer is left alone)."""
    if spec.kind == "constant":
        return None
    factor = SignSwitch(
        spec.positive_steps, spec.negative_steps, spec.negative_scale, trigger=spec.trigger, threshold=spec.grad_norm_below
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def grad_norm(parameters) -> float:  # noqa: ANN001 - an iterable of tensors
    """The L2 norm of all gradients of ``parameters`` (those without a gradient count as zero)."""
    total = 0.0
    for p in parameters:
        if p.grad is not None:
            total += float(torch.sum(p.grad.detach().double() ** 2))
    return math.sqrt(total)


def step(scheduler: torch.optim.lr_scheduler.LambdaLR | None, parameters) -> None:  # noqa: ANN001
    """After ``optimizer.step()``: report the gradient norm to the schedule and advance it."""
    if scheduler is None:
        return
    for fn in scheduler.lr_lambdas:
        if isinstance(fn, SignSwitch):
            fn.observe(grad_norm(parameters))
    scheduler.step()
