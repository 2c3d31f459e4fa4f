"""The RMSE of each mitigation method at equal total shots: does mitigation pay at the shots you can afford.

Mitigation trades bias for shot noise: readout correction (REM) divides each parity by
``P(0|0) + P(1|1) - 1`` and so amplifies its variance; zero-noise extrapolation (ZNE) spends the
shots of one estimate on K folded copies and adds them with weights of both signs. At a fixed
number of shots per binding S the error of a method is

    RMSE(S)^2 = mean over bindings and observables of ( bias^2 + K * v1 / S ),

where ``bias`` is the method's error in exact mode (no shot noise) against the ideal value, K
the number of circuits it runs per estimate (ZNE: one per scale factor; none/REM: 1), each with
S / K shots, and ``v1`` the variance of the mitigated value with one shot per circuit, computed
by the technique itself (:meth:`Prepared.combine` on per-shot variances). One exact job per
method on the twin gives both. ``benchmarks/mitigation_error.py`` checks the model against the
RMSE measured over repeated sampled jobs, and ``qflhw plan`` turns mitigation on only where the
model says it lowers the RMSE at the planned shots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.quantum_info import SparsePauliOp, Statevector

from qflhw.circuits.ansatz import ModelCircuit
from qflhw.circuits.measure import expectations
from qflhw.config.spec import MitigationSpec
from qflhw.devices.base import Batch, BatchItem, Device, ItemResult
from qflhw.execution.mitigation import make_mitigation

#: Bindings per error profile: enough for a stable mean, one small exact job per method.
DEFAULT_BINDINGS = 24


@dataclass(frozen=True)
class ErrorModel:
    """One mitigation method on one device and circuit: exact-mode bias and per-shot variance."""

    method: str
    bias: np.ndarray  # (bindings, observables): exact value - ideal
    unit_variance: np.ndarray  # (bindings, observables): variance with one shot per circuit
    circuits: int  # circuits run per estimate (K)

    def rmse(self, shots_per_binding: float) -> float:
        """Predicted RMSE when ``shots_per_binding`` shots are split evenly over the K circuits."""
        s = max(float(shots_per_binding), 1.0)
        return float(np.sqrt(np.mean(self.bias**2 + self.unit_variance * self.circuits / s)))

    @property
    def abs_bias(self) -> float:
        """Median |bias| (exact mode)."""
        return float(np.median(np.abs(self.bias)))


def ideal_values(model: ModelCircuit, rows: np.ndarray, observables: Sequence[SparsePauliOp]) -> np.ndarray:
    """Noiseless expectations of the logical circuit (qiskit Statevector), per row and observable."""
    out = np.empty((len(rows), len(observables)))
    for i, row in enumerate(rows):
        sv = Statevector(model.circuit.assign_parameters(dict(zip(model.parameters, row))))
        out[i] = [sv.expectation_value(o).real for o in observables]
    return out


def random_bindings(model: ModelCircuit, n: int = DEFAULT_BINDINGS, seed: int = 0) -> np.ndarray:
    """Inputs and weights uniform in [-pi, pi]: the bindings the model is judged on."""
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (n, len(model.parameters)))


def error_models(
    device: Device,
    model: ModelCircuit,
    observables: Sequence[SparsePauliOp],
    methods: Sequence[str] = ("none", "rem", "zne", "zne+rem"),
    *,
    rows: np.ndarray | None = None,
    setting: MitigationSpec | None = None,
    ideal: np.ndarray | None = None,
) -> dict[str, ErrorModel]:
    """The :class:`ErrorModel` of each method on ``device`` (a twin that runs exact jobs).

    ``setting`` gives the ZNE scale factors, extrapolation and folding (default ``[mitigation]``);
    ``rows`` the bindings (default :func:`random_bindings`), ``ideal`` their noiseless values.
    """
    obs = tuple(observables)
    rows = random_bindings(model) if rows is None else np.asarray(rows, dtype=float)
    ideal = ideal_values(model, rows, obs) if ideal is None else ideal
    tc = device.transpile(model.circuit)
    base = setting or MitigationSpec()
    out: dict[str, ErrorModel] = {}
    for method in methods:
        technique = make_mitigation(base.model_copy(update={"method": method}), device.calibration)
        prepared = technique.prepare(tc) if technique else None
        variants = list(prepared.variants) if prepared else [tc]
        result = device.run(Batch(tuple(BatchItem(v, model.parameters, rows, obs) for v in variants)), None)
        one_shot = [_one_shot(r, obs) for r in result.items]  # stderr = per-shot std, as if 1 shot each
        if prepared is None:
            values, unit = result.items[0].values, one_shot[0].stderr ** 2
        else:
            values = prepared.combine(result.items, obs).values
            unit = prepared.combine(one_shot, obs).variance
        out[method] = ErrorModel(method, values - ideal, np.asarray(unit), len(variants))
    return out


def _one_shot(result: ItemResult, observables: Sequence[SparsePauliOp]) -> ItemResult:
    """An exact result re-labelled as a one-shot estimate: stderr is the per-shot standard deviation."""
    values, var = expectations(result.distributions, result.bases, observables)
    return ItemResult(values, np.sqrt(var), result.bases, result.distributions)


def best_method(models: dict[str, ErrorModel], shots_per_binding: float) -> str:
    """The method with the lowest predicted RMSE at ``shots_per_binding`` (ties: fewer circuits)."""
    return min(models.values(), key=lambda m: (round(m.rmse(shots_per_binding), 12), m.circuits, m.method)).method
