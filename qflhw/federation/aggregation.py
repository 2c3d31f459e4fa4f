"""Server-side aggregation of client updates.

An update is a client's flat parameter vector plus what the server knows about it: sample count,
device quality (ESP, estimated success probability), an optional variance and noise estimate.
Weighted aggregators move the global model by the weighted mean of the deltas ``params - current``;
robust ones take coordinate-wise statistics. Every aggregator ignores clients that trained on zero
samples, and leaves ``current`` unchanged when no client carries weight. :meth:`Aggregator.decisions`
says what each client's update counted for in a round (its weight, and for SpoQFL its suppression
and whether it was skipped), for ``metrics.csv``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from qflhw.config.spec import AggregationSpec, SporadicMode
from qflhw.errors import ConfigError, InvalidUpdate


@dataclass(frozen=True, eq=False)
class ClientUpdate:
    """One client's trained parameters and the metadata aggregators weigh them by.

    ``esp`` is the device's estimated success probability in [0, 1]; ``variance`` an estimate of
    the update's variance (> 0, e.g. from shot noise); ``noise`` a noise level in [0, 1] that
    :class:`Sporadic` compares to its threshold (``1 - esp`` when not given); ``noise_estimate`` the
    client's own noise level this round (>= 0, see qflhw.training.noise), which :class:`SpoQFL`
    suppresses by (``noise_level`` when not given).
    """

    client: str
    params: np.ndarray
    num_samples: int
    esp: float = 1.0
    variance: float | None = None
    noise: float | None = None
    noise_estimate: float | None = None

    def __post_init__(self) -> None:
        if self.num_samples < 0:
            raise InvalidUpdate(f"client {self.client!r}: num_samples={self.num_samples} must be >= 0")
        if not 0 <= self.esp <= 1:
            raise InvalidUpdate(f"client {self.client!r}: esp={self.esp} must be a probability in [0, 1]")
        if self.variance is not None and not (self.variance > 0 and math.isfinite(self.variance)):
            raise InvalidUpdate(f"client {self.client!r}: variance={self.variance} must be finite and > 0, or None")
        if self.noise is not None and not 0 <= self.noise <= 1:
            raise InvalidUpdate(f"client {self.client!r}: noise={self.noise} must be in [0, 1], or None")
        if self.noise_estimate is not None and not (self.noise_estimate >= 0 and math.isfinite(self.noise_estimate)):
            raise InvalidUpdate(f"client {self.client!r}: noise_estimate={self.noise_estimate} must be finite and >= 0, or None")

    @property
    def noise_level(self) -> float:
        """``noise`` if the client reported it, else ``1 - esp``."""
        return 1.0 - self.esp if self.noise is None else self.noise


def validate_update(update: ClientUpdate, expected_len: int) -> None:
    """Reject an update whose params are not a finite vector of ``expected_len`` floats."""
    params = np.asarray(update.params)
    if params.shape != (expected_len,):
        raise InvalidUpdate(
            f"client {update.client!r}: params has shape {params.shape}, expected ({expected_len},); "
            "send the flat parameter vector of the global model"
        )
    if params.dtype.kind not in "fiu" or not np.isfinite(params).all():
        raise InvalidUpdate(f"client {update.client!r}: params has NaN, infinite or non-real values; drop this update")


def _stack(updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
    """Validated params as rows of a (clients, params) float array."""
    for u in updates:
        validate_update(u, current.shape[0])
    return np.array([u.params for u in updates], dtype=np.float64).reshape(len(updates), current.shape[0])


def _normalized(raw: np.ndarray) -> np.ndarray:
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


class Aggregator(ABC):
    """Combines client updates into the next global parameter vector."""

    @abstractmethod
    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        """The next global parameters; ``current`` is returned unchanged if no client carries weight."""

    def contributions(self, updates: Sequence[ClientUpdate]) -> np.ndarray | None:
        """Coefficient of each client's delta in the new global model (None: not a weighted mean)."""
        return None

    def decisions(self, updates: Sequence[ClientUpdate]) -> list[dict[str, object]]:
        """What each update counted for, in client order: ``weight`` (its delta's coefficient;
        empty for coordinate-wise statistics), plus whatever a rule decides per round."""
        coef = self.contributions(updates)
        if coef is None:
            return [{"weight": ""} for _ in updates]
        return [{"weight": float(c)} for c in coef]


class WeightedAggregator(Aggregator):
    """Moves ``current`` by the weighted mean of the client deltas ``params - current``."""

    @abstractmethod
    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """Non-negative weights in client order, summing to one (all zero if no client counts)."""

    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        current = np.asarray(current, dtype=np.float64)
        params = _stack(updates, current)
        return current + self.weights(updates) @ (params - current)

    def contributions(self, updates: Sequence[ClientUpdate]) -> np.ndarray | None:
        return self.weights(updates)


@dataclass(frozen=True)
class FedAvg(WeightedAggregator):
    """Weights proportional to each client's number of training samples."""

    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return _normalized(np.array([u.num_samples for u in updates], dtype=np.float64))


@dataclass(frozen=True)
class NoiseAwareESP(WeightedAggregator):
    """Weights proportional to num_samples * esp, so clients on noisier devices count less."""

    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return _normalized(np.array([u.num_samples * u.esp for u in updates], dtype=np.float64))


@dataclass(frozen=True)
class InverseVariance(WeightedAggregator):
    """Weights proportional to 1/variance; a client without one gets the mean of the others' weights.

    If no client reports a variance this is :class:`FedAvg`. Clients with zero samples get zero.
    """

    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        active = [u for u in updates if u.num_samples > 0]
        known = [1.0 / u.variance for u in active if u.variance is not None]
        if not known:
            return FedAvg().weights(updates)
        fallback = float(np.mean(known))
        raw = [
            0.0 if u.num_samples == 0 else fallback if u.variance is None else 1.0 / u.variance for u in updates
        ]
        return _normalized(np.array(raw, dtype=np.float64))


@dataclass(frozen=True)
class Median(Aggregator):
    """Coordinate-wise median of the params of clients with samples (every such client counts once)."""

    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        current = np.asarray(current, dtype=np.float64)
        params = _stack(updates, current)[[u.num_samples > 0 for u in updates]]
        return np.median(params, axis=0) if len(params) else current


@dataclass(frozen=True)
class TrimmedMean(Aggregator):
    """Coordinate-wise mean after dropping the floor(trim_fraction * n) lowest and highest values.

    Every client with samples counts once; ``trim_fraction`` is in [0, 0.5).
    """

    trim_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.trim_fraction < 0.5:
            raise ConfigError(f"trim_fraction={self.trim_fraction}: must be in [0, 0.5), e.g. 0.1")

    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        current = np.asarray(current, dtype=np.float64)
        params = np.sort(_stack(updates, current)[[u.num_samples > 0 for u in updates]], axis=0)
        if not len(params):
            return current
        cut = int(self.trim_fraction * len(params))
        return params[cut : len(params) - cut].mean(axis=0)


@dataclass(frozen=True)
class Sporadic(WeightedAggregator):
    """Weights proportional to num_samples over clients kept; noisy clients are skipped or damped.

    In the spirit of SpoQFL: a client whose noise level (``noise``, else ``1 - esp``) exceeds
    ``threshold`` is dropped (``mode="skip"``), or its delta is scaled by
    (1 - noise) / (1 - threshold) clipped to [0, 1] (``mode="scale"``; quiet clients keep scale 1).
    """

    threshold: float = AggregationSpec.model_fields["threshold"].default
    mode: SporadicMode = AggregationSpec.model_fields["mode"].default

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold={self.threshold}: must be in [0, 1), e.g. 0.3")
        if self.mode not in ("skip", "scale"):
            raise ConfigError(f"mode={self.mode!r}: choose 'skip' or 'scale'")

    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        keep = [self.mode == "scale" or u.noise_level <= self.threshold for u in updates]
        return _normalized(np.array([u.num_samples * k for u, k in zip(updates, keep)], dtype=np.float64))

    def scales(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """Factor on each client's delta: 1 in skip mode, (1 - noise)/(1 - threshold) in [0, 1] in scale mode."""
        if self.mode == "skip":
            return np.ones(len(updates))
        raw = np.array([(1.0 - u.noise_level) / (1.0 - self.threshold) for u in updates], dtype=np.float64)
        return np.clip(raw, 0.0, 1.0)

    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        current = np.asarray(current, dtype=np.float64)
        params = _stack(updates, current)
        return current + (self.weights(updates) * self.scales(updates)) @ (params - current)

    def contributions(self, updates: Sequence[ClientUpdate]) -> np.ndarray | None:
        return self.weights(updates) * self.scales(updates)


@dataclass(frozen=True)
class SpoQFL(WeightedAggregator):
    """SpoQFL's sporadic rule, per round (Rahman, Pokharel, Nguyen, arXiv:2507.12492).

    Each client reports its own noise level ``xi`` this round (``noise_estimate``, see
    qflhw.training.noise; ``1 - esp`` when absent). Its update is suppressed by
    ``s = exp(-gamma * xi)``, and a client with ``s < skip_below`` sits the round out. The new
    global model moves by ``sum_k w_k s_k delta_k``, with FedAvg weights ``w_k`` over the clients
    kept (so quiet clients are damped a little, noisy ones a lot, and nobody's weight is handed to
    the others). The paper scales each local gradient step; qflhw scales the round's update, which
    is the same for one local SGD step and keeps the rule on the server where it is recorded.
    """

    gamma: float = AggregationSpec.model_fields["gamma"].default
    skip_below: float = AggregationSpec.model_fields["skip_below"].default

    def __post_init__(self) -> None:
        if not (self.gamma > 0 and math.isfinite(self.gamma)):
            raise ConfigError(f"gamma={self.gamma}: must be a positive number, e.g. 1")
        if not 0 <= self.skip_below < 1:
            raise ConfigError(f"skip_below={self.skip_below}: must be in [0, 1), e.g. 0.3")

    def suppression(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """``exp(-gamma * xi)`` of each client."""
        xi = [u.noise_level if u.noise_estimate is None else u.noise_estimate for u in updates]
        return np.exp(-self.gamma * np.array(xi, dtype=np.float64))

    def weights(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        keep = self.suppression(updates) >= self.skip_below
        return _normalized(np.array([u.num_samples * k for u, k in zip(updates, keep)], dtype=np.float64))

    def contributions(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        return self.weights(updates) * self.suppression(updates)

    def aggregate(self, updates: Sequence[ClientUpdate], current: np.ndarray) -> np.ndarray:
        current = np.asarray(current, dtype=np.float64)
        params = _stack(updates, current)
        return current + self.contributions(updates) @ (params - current)

    def decisions(self, updates: Sequence[ClientUpdate]) -> list[dict[str, object]]:
        out = super().decisions(updates)
        for row, s in zip(out, self.suppression(updates)):
            row["suppression"] = float(s)
            row["decision"] = "skipped" if s < self.skip_below else "scaled"
        return out


AGGREGATORS: dict[str, type[Aggregator]] = {
    "fedavg": FedAvg,
    "noise-aware": NoiseAwareESP,
    "inverse-variance": InverseVariance,
    "median": Median,
    "trimmed-mean": TrimmedMean,
    "sporadic": Sporadic,
    "spoqfl": SpoQFL,
}


def from_spec(setting: AggregationSpec) -> Aggregator:
    """The aggregator an ``[aggregation]`` table asks for, with the options its method takes."""
    options: dict[str, dict[str, object]] = {
        "trimmed-mean": {"trim_fraction": setting.trim_fraction},
        "sporadic": {"threshold": setting.threshold, "mode": setting.mode},
        "spoqfl": {"gamma": setting.gamma, "skip_below": setting.skip_below},
    }
    return make_aggregator(setting.method, **options.get(setting.method, {}))


def make_aggregator(name: str, **options: object) -> Aggregator:
    """Build an aggregator by its config name, e.g. ``make_aggregator("sporadic", threshold=0.3)``."""
    if name not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator {name!r}; choose one of {', '.join(AGGREGATORS)}")
    cls = AGGREGATORS[name]
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]  # every aggregator is a dataclass
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"aggregator {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(allowed) or 'none'}"
        )
    try:
        return cls(**options)
    except TypeError as err:  # a required option left out
        raise ConfigError(f"aggregator {name!r}: {err}; its options are: {', '.join(allowed)}") from err

