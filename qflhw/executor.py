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
from typing import Protocol

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw.budget import Cost, Ledger, job_cost
from qflhw.circuits import ModelCircuit
from qflhw.devices import Batch, BatchItem, BatchResult, Device, ItemResult
from qflhw.devices.measure import measurement_bases
from qflhw.gradients import parameter_shift_plan, shift_rules, spsa_plan
from qflhw.transpile import Transpiled

Runner = Callable[[Device, Batch, "int | None", Callable[[], None]], BatchResult]
"""``runner(device, batch, shots, charge)`` submits ``batch`` and returns its result; it calls
``charge()`` before every submission attempt (retries included), which raises BudgetExceeded when
the budget cannot pay for it."""


class Mitigation(Protocol):
    """Expand one transpiled circuit into variants, and combine their results into one."""

    name: str

    def variants(self, tc: Transpiled) -> list[Transpiled]: ...

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> np.ndarray: ...


def direct_runner(device: Device, batch: Batch, shots: int | None, charge: Callable[[], None]) -> BatchResult:
    """Charge, submit and wait, nothing else: the runner used when no journal is kept."""
    charge()
    return device.run(batch, shots)


@dataclass
class StepInfo:
    """What one evaluation cost and produced, for metrics and aggregation weights."""

    job_ids: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    variance: float = 0.0  # mean squared standard error of the returned values


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
        mitigation: Mitigation | None = None,
        ledger: Ledger | None = None,
        runner: Runner = direct_runner,
    ):
        self.device = device
        self.model = model
        self.observables = tuple(observables)
        self.client = client
        self.shots = shots
        self.gradient = gradient
        self.spsa_epsilon = spsa_epsilon
        self.rng = np.random.default_rng(seed)
        self.mitigation = mitigation
        self.ledger = ledger or Ledger()
        self.runner = runner
        self.transpiled = device.transpile(model.circuit)
        self.variants = mitigation.variants(self.transpiled) if mitigation else [self.transpiled]
        n_in = len(model.inputs)
        self.weight_columns = list(range(n_in, n_in + len(model.weights)))
        self.rules = shift_rules(model.circuit, model.weights)

    def _circuit_seconds(self) -> float:
        durations = {(g.gate, g.qubits): g.duration for g in self.device.calibration.gates}
        tc = self.transpiled
        return float(
            sum(
                durations.get((ci.operation.name, tuple(tc.isa.find_bit(q).index for q in ci.qubits)), 0.0)
                for ci in tc.isa.data
            )
        )

    def estimate(self, n_points: int, grad: bool = True) -> Cost:
        """Cost of one evaluation of ``n_points`` data points (used by `qflhw estimate`)."""
        rows = n_points * (self.rows_per_point() if grad else 1)
        circuits = rows * len(self.variants) * len(measurement_bases(self.observables))
        return job_cost(self.device.profile, circuits, self.shots, self._circuit_seconds())

    def rows_per_point(self) -> int:
        if self.gradient == "spsa":
            return 3
        return 1 + sum(len(r) for r in self.rules)

    def __call__(
        self, x: np.ndarray, w: np.ndarray, *, key: str, round_: int, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, StepInfo]:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        base = np.hstack([x, np.tile(np.asarray(w, dtype=float), (x.shape[0], 1))])
        if not grad:
            plan = None
            bindings = base
        elif self.gradient == "spsa":
            plan = spsa_plan(base, self.weight_columns, self.rng, self.spsa_epsilon)
            bindings = plan.bindings
        else:
            plan = parameter_shift_plan(base, self.weight_columns, self.rules)
            bindings = plan.bindings
        items = tuple(
            BatchItem(v, self.model.parameters, bindings, self.observables, tag=v.meta.get("tag", ""))
            for v in self.variants
        )
        batch = Batch(items, key=key)
        cost = job_cost(self.device.profile, batch.num_circuits, self.shots, self._circuit_seconds())
        result = self.runner(self.device, batch, self.shots, lambda: self.ledger.charge(self.client, round_, cost))
        if self.mitigation:
            values = self.mitigation.combine(result.items, self.observables)
        else:
            values = result.items[0].values
        variance = float(np.mean([np.mean(r.stderr**2) for r in result.items]))
        info = StepInfo([result.job_id], cost, variance)
        if plan is None:
            return values, None, info
        vals, jac = plan.combine(values)
        return vals, jac, info
