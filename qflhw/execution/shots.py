"""Where shots go: split across the circuits of one step, and how many per step.

* :func:`allocate` splits a step's shots over its items (e.g. the scale factors of ZNE):
  ``uniform`` gives every circuit the same shots; ``variance-weighted`` gives item k shots in
  proportion to ``|c_k| * sigma_k`` (its weight in the combined value times its per-shot standard
  deviation), the split that minimizes the variance of ``sum_k c_k * value_k`` for a fixed total
  (Neyman allocation). Either way the step never uses more shots than ``shots`` per circuit would.
* :class:`AdaptiveShots` picks the shots per circuit of the next step from running estimates of
  the gradient and its variance, in the spirit of iCANS (Kuebler et al., Quantum 4, 263 (2020)):
  few shots while gradients are large, more as they shrink toward the noise floor.

The ledger (:mod:`qflhw.execution.budget`) still refuses any job that would cross a cap: these only decide
how to spend what it allows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from qflhw.config.spec import SHOT_ALLOCATIONS
from qflhw.errors import ConfigError
from qflhw.execution.gradients import ShiftPlan, SPSAPlan


def allocate(
    strategy: str,
    shots: int,
    circuits: Sequence[int],
    coefficients: Sequence[float] | None = None,
    variances: Sequence[float] | None = None,
    *,
    min_fraction: float = 0.1,
    max_shots: int | None = None,
) -> list[int]:
    """Shots per circuit for each item; ``sum(circuits[k] * out[k]) <= shots * sum(circuits)``.

    ``circuits[k]`` is item k's executables (bindings x bases), ``variances[k]`` its per-shot
    variance from an earlier step (None: not known yet, so uniform). Every item keeps at least
    ``min_fraction`` of the uniform shots (and one shot), so its variance stays measurable.
    """
    if strategy not in SHOT_ALLOCATIONS:
        raise ConfigError(f"training.shot_allocation must be one of {', '.join(SHOT_ALLOCATIONS)}, got {strategy!r}")
    if shots < 1:
        raise ConfigError(f"shots per circuit must be >= 1 to allocate, got {shots}")
    n = len(circuits)
    cap = max_shots or shots * max(1, n) * 1000
    uniform = [min(shots, cap)] * n
    if strategy == "uniform" or n < 2 or variances is None or coefficients is None:
        return uniform
    c = np.asarray(circuits, dtype=float)
    a = np.abs(np.asarray(coefficients, dtype=float)) * np.sqrt(np.maximum(np.asarray(variances, dtype=float), 0.0))
    if not np.all(np.isfinite(a)) or not np.any(a > 0):
        return uniform
    budget = shots * int(c.sum())
    floor = max(1, math.ceil(min_fraction * shots))
    spare = budget - floor * int(c.sum())
    if spare <= 0:
        return uniform
    extra = np.floor(spare * a / float(np.dot(c, a))).astype(int)  # per circuit of item k
    return [int(min(floor + e, cap)) for e in extra]


def jacobian_variance(plan: ShiftPlan | SPSAPlan, row_variance: np.ndarray) -> np.ndarray:
    """Variance of each Jacobian entry from the variance of each evaluated row.

    The Jacobian is a linear combination of rows, so its variance is the same combination of
    row variances with squared coefficients (rows are sampled independently).
    """
    if isinstance(plan, SPSAPlan):
        n = plan.n_points
        var = (row_variance[n : 2 * n] + row_variance[2 * n : 3 * n]) / (2 * plan.epsilon) ** 2
        return np.repeat(var[:, :, None], len(plan.weight_columns), axis=2)
    squared = tuple(tuple((s, c * c) for s, c in rule) for rule in plan.rules)
    chain = None if plan.chain is None else plan.chain**2  # angles' derivatives are independent too
    return dataclasses.replace(plan, rules=squared, chain=chain).combine(row_variance)[1]


class AdaptiveShots:
    """Shots per circuit for the next step, iCANS-style: ``kappa * noise / signal``.

    With learning rate alpha and L the Lipschitz constant of the gradient (for Pauli
    observables, at most the sum of |coefficients|), a gradient step gains the most per shot at
    ``s = 2 L alpha / (2 - L alpha) * tr(Var_1shot) / |g|^2``. Here ``|g|^2`` and the one-shot
    variance are exponential moving averages (bias-corrected, as in iCANS) of the mean squared
    Jacobian entry (minus its noise) and of its one-shot variance. The result is clipped to
    ``[min_shots, max_shots]``.
    """

    def __init__(
        self,
        start: int,
        *,
        learning_rate: float,
        lipschitz: float = 1.0,
        min_shots: int = 16,
        max_shots: int = 100_000,
        momentum: float = 0.9,
    ):
        if not lipschitz * learning_rate < 2:
            raise ConfigError(
                f"training.learning_rate = {learning_rate} is too large for adaptive shots with observables of "
                f"norm {lipschitz:g}: need learning_rate < {2 / lipschitz:g}; lower it or set adaptive_shots = false"
            )
        if not 1 <= min_shots <= max_shots:
            raise ConfigError(f"training.min_shots ({min_shots}) must be >= 1 and <= training.max_shots ({max_shots})")
        self.kappa = 2 * lipschitz * learning_rate / (2 - lipschitz * learning_rate)
        self.min_shots, self.max_shots = min_shots, max_shots
        self.momentum = momentum
        self.current = int(min(max(start, min_shots), max_shots))
        self._signal = 0.0
        self._noise = 0.0
        self._steps = 0
        self.history: list[int] = []

    def shots(self) -> int:
        return self.current

    def update(self, jacobian: np.ndarray, jacobian_var: np.ndarray, shots: int) -> int:
        """Record one step's Jacobian and its variance (at ``shots``); returns the next shots."""
        one_shot = float(np.mean(jacobian_var)) * shots
        signal = max(float(np.mean(np.square(jacobian))) - float(np.mean(jacobian_var)), 0.0)
        mu = self.momentum
        self._steps += 1
        self._signal = mu * self._signal + (1 - mu) * signal
        self._noise = mu * self._noise + (1 - mu) * one_shot
        correction = 1 - mu**self._steps
        g2, xi = self._signal / correction, self._noise / correction
        want = self.max_shots if g2 <= 0 else math.ceil(self.kappa * xi / g2)
        self.history.append(self.current)
        self.current = int(min(max(want, self.min_shots), self.max_shots))
        return self.current
