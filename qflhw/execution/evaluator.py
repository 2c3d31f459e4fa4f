"""One client's circuit evaluations: values and Jacobians for a minibatch, as one provider job.

An optimizer step needs the circuit at every data point, at every parameter-shift (or SPSA)
binding, and for every mitigation variant. :class:`CircuitEvaluator` puts all of them into one
:class:`~qflhw.devices.Batch`, charges its cost to the ledger *before* submitting, runs it through
the run's job runner (which journals and retries), then combines mitigation variants and gradient
terms back into values and a Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.ansatz import ModelCircuit
from qflhw.circuits.measure import measurement_bases
from qflhw.circuits.transpile import Transpiled
from qflhw.devices.base import Batch, BatchItem, BatchResult, Device, JobKey
from qflhw.execution.budget import Cost, Ledger, actual_cost, batch_cost, circuit_seconds, job_cost
from qflhw.execution.gradients import ShiftPlan, SPSAPlan, shift_circuit, spsa_plan
from qflhw.execution.mitigation.base import Technique
from qflhw.execution.shots import AdaptiveShots, allocate, jacobian_variance

Runner = Callable[[Device, Batch, "int | None", Callable[[], object]], BatchResult]
"""``runner(device, batch, shots, charge)`` submits ``batch`` and returns its result; it calls
``charge()`` before every submission attempt (retries included), which raises BudgetExceeded when
the budget cannot pay for it and otherwise returns the :class:`Cost` charged (for the event log)."""


def direct_runner(device: Device, batch: Batch, shots: int | None, charge: Callable[[], object]) -> BatchResult:
    """Charge, submit and wait, nothing else: the runner used when no journal is kept."""
    charge()
    return device.run(batch, shots)


@dataclass
class StepInfo:
    """What one evaluation cost and produced, for metrics and aggregation weights."""

    job_ids: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    variance: float = 0.0  # mean squared standard error of the returned values
    fallbacks: int = 0  # mitigated values whose fit fell back to a simpler one (ZNE)


class CircuitEvaluator:
    """Evaluates a client's model circuit on its device."""

    def __init__(
        self,
        device: Device,
        model: ModelCircuit,
        observables: Sequence[SparsePauliOp],
        *,
        client: str,
        shots: int | None,
        gradient: str = "parameter-shift",
        spsa_epsilon: float = 0.1,
        seed: int = 0,
        mitigation: Technique | None = None,
        ledger: Ledger | None = None,
        runner: Runner = direct_runner,
        shot_allocation: str = "uniform",
        adaptive: AdaptiveShots | None = None,
    ):
        self.device = device
        self.model = model
        self.observables = tuple(observables)
        self.client = client
        self.shots = shots
        self.gradient = gradient
        self.spsa_epsilon = spsa_epsilon
        self.rng = np.random.default_rng(seed)
        self.ledger = ledger or Ledger()
        self.runner = runner
        # parameter shift may run a copy with one parameter per weight-dependent angle; SPSA the model itself
        self.shift = shift_circuit(model.circuit, model.inputs, model.weights) if gradient != "spsa" else None
        self.parameters = self.shift.parameters if self.shift else model.parameters  # columns of a binding row
        self.retarget(mitigation)
        self.shot_allocation = shot_allocation  # see qflhw.execution.shots
        self.adaptive = adaptive
        self.item_variance: list[float] | None = None  # per-shot variance of each variant, last step
        n_in = len(model.inputs)
        self.weight_columns = list(range(n_in, n_in + len(model.weights)))
        self.rules = list(self.shift.rules) if self.shift else []

    def retarget(self, mitigation: Technique | None) -> None:
        """Compile the model circuit for the device's current calibration, with ``mitigation``.

        Called once when built and again after ``device.set_calibration`` (a drifting device):
        the layout, ESP, mitigation variants and circuit durations follow the new snapshot.
        """
        self.mitigation = mitigation
        self.transpiled = self.device.transpile(self.shift.circuit if self.shift else self.model.circuit)
        self.prepared = mitigation.prepare(self.transpiled) if mitigation else None
        self.variants = list(self.prepared.variants) if self.prepared else [self.transpiled]
        self._variant_seconds = [self._circuit_seconds(v) for v in self.variants]

    def _circuit_seconds(self, tc: Transpiled | None = None) -> float:
        return circuit_seconds(self.device.calibration, tc or self.transpiled)

    def estimate(self, n_points: int, grad: bool = True, shots: int | None | str = "spec") -> Cost:
        """Cost of one evaluation of ``n_points`` data points (used by `qflhw estimate` and
        `qflhw plan`); ``shots`` prices other shots per circuit than the client's own."""
        rows = n_points * (self.rows_per_point() if grad else 1)
        circuits = rows * len(self.variants) * len(measurement_bases(self.observables))
        seconds = float(np.mean(self._variant_seconds))  # equal shots per variant
        return job_cost(self.device.profile, circuits, self.shots if shots == "spec" else shots, seconds)  # type: ignore[arg-type]

    def _allocate(self, shots: int | None, n_rows: int) -> list[int | None]:
        """Shots per circuit of each variant this step (None: the batch's shots)."""
        if shots is None or self.shot_allocation == "uniform" or len(self.variants) < 2:
            return [None] * len(self.variants)
        coefficients = list(self.prepared.coefficients if self.prepared else np.ones(len(self.variants)))
        circuits = [n_rows * len(measurement_bases(self.observables))] * len(self.variants)
        return list(
            allocate(
                self.shot_allocation, shots, circuits, coefficients, self.item_variance,
                max_shots=self.device.profile.limits.max_shots,
            )
        )

    def shot_state(self) -> dict:
        """What a checkpoint keeps of the shot policy (so a resumed run allocates the same)."""
        return {"item_variance": self.item_variance, "adaptive": self.adaptive.__dict__.copy() if self.adaptive else None}

    def restore_shot_state(self, state: dict | None) -> None:
        if not state:
            return
        self.item_variance = state.get("item_variance")
        if self.adaptive and state.get("adaptive"):
            self.adaptive.__dict__.update(state["adaptive"])

    def rows_per_point(self) -> int:
        if self.gradient == "spsa":
            return 3
        return 1 + sum(len(r) for r in self.rules)

    def __call__(
        self, x: np.ndarray, w: np.ndarray, *, key: JobKey | None, round_: int, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, StepInfo]:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        base = np.hstack([x, np.tile(np.asarray(w, dtype=float), (x.shape[0], 1))])
        plan: ShiftPlan | SPSAPlan | None = None
        if not grad:
            bindings = self.shift.rows(base) if self.shift else base
        elif self.shift is None:
            plan = spsa_plan(base, self.weight_columns, self.rng, self.spsa_epsilon)
            bindings = plan.bindings
        else:
            plan = self.shift.plan(base)
            bindings = plan.bindings
        shots = self.adaptive.shots() if self.adaptive and self.shots else self.shots
        per_item = self._allocate(shots, len(bindings))
        items = tuple(
            BatchItem(v, self.parameters, bindings, self.observables, tag=v.meta.get("tag", ""), shots=n)
            for v, n in zip(self.variants, per_item)
        )
        batch = Batch(items, key=key)
        cost = batch_cost(self.device, batch, shots)
        result = self.runner(self.device, batch, shots, lambda: self.ledger.charge(self.client, round_, cost))
        self.ledger.record_actual(self.client, actual_cost(self.device.profile, result.metadata))
        fallbacks = 0
        if self.prepared:
            combined = self.prepared.combine(result.items, self.observables)
            values, row_var, fallbacks = combined.values, combined.variance, combined.fallbacks
        else:
            values = result.items[0].values
            row_var = result.items[0].stderr ** 2
        if shots is not None:
            self.item_variance = [float(np.mean(r.stderr**2)) * (n or shots) for r, n in zip(result.items, per_item)]
        info = StepInfo([result.job_id], cost, float(np.mean(row_var)), fallbacks)
        if plan is None:
            return values, None, info
        vals, jac = plan.combine(values)
        if self.adaptive and shots:
            self.adaptive.update(jac, jacobian_variance(plan, row_var), shots)
        return vals, jac, info
