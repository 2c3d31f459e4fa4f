"""Money and shots: what a job costs, and a ledger that refuses to cross its caps.

Prices come from the device profile (never downloaded at run time). Braket bills a fee per task
plus a fee per shot; IBM bills QPU time, estimated with a simple documented model:

    seconds = 2.0 per job  +  executions x (circuit duration + 250 us repetition delay)

(a step the device splits into several Runtime jobs -- one per shot value, or past the
execution limit -- pays the per-job overhead for each; a Braket step pays one task fee per task).

Shots are what the provider will *run*, not what was asked for: with Runtime twirling every
binding runs whole randomizations (``ceil(shots / spr) x spr``; 10 asked run 64), ZNE runs one
copy per noise factor and TREX adds its calibration circuits (see
:meth:`qflhw.config.profiles.IBMRuntimeOptions.executed_shots`). :func:`job_cost` is the one cost
model: the ledger charges with it before a job is sent, ``qflhw estimate`` prices a spec with it,
and :func:`actual_cost` prices what the provider reported afterwards with it.

Every job is charged *before* it is submitted (a retry is another charge), so the cap holds
whatever happens after submission; the provider-reported cost of each job is recorded next to
the estimate (``Ledger.actual``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qflhw.calibration.snapshot import Calibration
from qflhw.circuits.measure import measurement_bases
from qflhw.circuits.transpile import Transpiled
from qflhw.config.profiles import DeviceProfile
from qflhw.devices.base import Batch, Device
from qflhw.errors import BudgetExceeded, ConfigError

IBM_JOB_OVERHEAD_S = 2.0
IBM_REPETITION_DELAY_S = 250e-6


@dataclass(frozen=True)
class Cost:
    usd: Decimal = Decimal(0)
    tasks: int = 0
    shots: int = 0  # total shots billed: circuits x shots per circuit
    seconds: float = 0.0  # estimated QPU time (the IBM billing unit)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.usd + other.usd, self.tasks + other.tasks, self.shots + other.shots, self.seconds + other.seconds)


def job_cost(
    profile: DeviceProfile,
    circuits: int,
    shots: int | None,
    circuit_seconds: float = 0.0,
    *,
    total_shots: int | None = None,
    groups: Sequence[tuple[int, int]] | None = None,
    tasks: int | None = None,
    qpu_seconds: float | None = None,
) -> Cost:
    """Price of one job of ``circuits`` executables at ``shots`` each on ``profile``.

    ``groups`` lists ``(executables, shots each)`` when items have their own shots
    (``Batch.shot_groups``); ``total_shots`` is a shot count already executed (a provider's
    report: then nothing is scaled). ``tasks`` and ``qpu_seconds`` replace the estimated task
    count and QPU time with reported ones.
    """
    rt = profile.runtime
    if total_shots is None:
        parts = list(groups) if groups is not None else [(circuits, shots or 0)]
        if rt is not None:  # IBM Runtime: twirling rounds up, ZNE copies, TREX calibration
            total_shots = sum(n * rt.executed_shots(s) for n, s in parts if s) * rt.shots_factor
            total_shots += rt.calibration_executions(max((s for _, s in parts), default=0)) if total_shots else 0
        else:
            total_shots = sum(n * s for n, s in parts)
    # Braket: a program set holds at most limits.max_circuits executables (1: no program sets,
    # every executable is its own task); IBM: one job
    if tasks is None:
        tasks = max(1, -(-circuits // profile.limits.max_circuits)) if profile.provider == "braket" else 1
    p = profile.price
    seconds = 0.0
    usd = p.per_task * tasks + p.per_shot * total_shots
    if p.per_second:
        seconds = qpu_seconds if qpu_seconds is not None else (
            IBM_JOB_OVERHEAD_S * tasks + total_shots * (circuit_seconds + IBM_REPETITION_DELAY_S)
        )
        usd += p.per_second * Decimal(str(round(seconds, 6)))
    return Cost(usd=usd.quantize(Decimal("0.000001")), tasks=tasks, shots=total_shots, seconds=seconds)


def circuit_seconds(calibration: Calibration, tc: Transpiled) -> float:
    """Duration of one run of a transpiled circuit: the sum of its gates' calibrated durations."""
    durations = {(g.gate, g.qubits): g.duration for g in calibration.gates}
    return float(
        sum(durations.get((ci.operation.name, tuple(tc.isa.find_bit(q).index for q in ci.qubits)), 0.0) for ci in tc.isa.data)
    )


def batch_cost(device: Device, batch: Batch, shots: int | None) -> Cost:
    """What ``batch`` costs on ``device`` when sent with ``shots``: items' own shots, their circuit
    durations and the jobs or tasks the device splits it into included (the ledger's charge)."""
    total = batch.total_shots(shots)
    seconds = [circuit_seconds(device.calibration, i.circuit) for i in batch.items]
    mean = float(sum(seconds) / len(seconds)) if seconds else 0.0
    if total and shots is not None:
        mean = sum(
            i.num_bindings * len(measurement_bases(i.observables)) * (i.shots or shots) * s for i, s in zip(batch.items, seconds)
        ) / total
    return job_cost(
        device.profile, batch.num_circuits, shots, mean, groups=batch.shot_groups(shots), tasks=device.jobs_needed(batch, shots)
    )


def actual_cost(profile: DeviceProfile, metadata: dict[str, Any]) -> Cost | None:
    """What one finished job cost by the provider's own report (``BatchResult.metadata["usage"]``),
    priced with :func:`job_cost`; None when the provider reported nothing billable (fake devices,
    Runtime local mode, which reports no QPU time)."""
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if not usage:
        return None
    if metadata.get("provider") == "braket":
        return job_cost(profile, int(usage.get("executables") or 0), None, total_shots=int(usage.get("shots") or 0),
                        tasks=int(usage.get("tasks") or 0))
    seconds = usage.get("quantum_seconds")
    if seconds is None:
        return None
    return job_cost(profile, 0, None, total_shots=int(usage.get("executed_shots") or 0), tasks=int(metadata.get("jobs") or 1),
                    qpu_seconds=float(seconds))


@dataclass
class Ledger:
    """Run-wide USD cap and per-client, per-round shot caps; thread-safe."""

    max_usd: Decimal = Decimal(0)
    shots_per_round: int | None = None
    spent: Cost = field(default_factory=Cost)
    by_client: dict[str, Cost] = field(default_factory=dict)
    round_shots: dict[tuple[str, int], int] = field(default_factory=dict)
    actual: dict[str, Cost] = field(default_factory=dict)  # provider-reported cost of finished jobs, by client
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.max_usd = Decimal(str(self.max_usd))
        if self.max_usd < 0:
            raise ConfigError(f"budget.max_usd must be >= 0, got {self.max_usd}")
        if self.shots_per_round is not None and self.shots_per_round <= 0:
            raise ConfigError(f"budget.shots_per_round must be > 0, got {self.shots_per_round}")

    def state(self) -> dict:
        """What a checkpoint keeps of the ledger."""
        with self._lock:
            return {"spent": self.spent, "by_client": dict(self.by_client), "round_shots": dict(self.round_shots),
                    "actual": dict(self.actual)}

    def restore(self, state: dict) -> None:
        with self._lock:
            self.spent = state["spent"]
            self.by_client = dict(state["by_client"])
            self.round_shots = dict(state["round_shots"])
            self.actual = dict(state.get("actual", {}))

    def record_actual(self, client: str, cost: Cost | None) -> None:
        """Add the provider-reported cost of one finished job (None: nothing was reported)."""
        if cost is None:
            return
        with self._lock:
            self.actual[client] = self.actual.get(client, Cost()) + cost

    def charge(self, client: str, round_: int, cost: Cost) -> Cost:
        """Record a job's cost before it is sent and return it, or raise BudgetExceeded and record nothing."""
        with self._lock:
            if cost.usd > 0 and self.spent.usd + cost.usd > self.max_usd:
                raise BudgetExceeded(
                    f"client {client}: next job costs ${cost.usd} but only ${self.max_usd - self.spent.usd} "
                    f"of budget.max_usd=${self.max_usd} is left; raise the cap or use fewer shots"
                )
            used = self.round_shots.get((client, round_), 0)
            if self.shots_per_round is not None and used + cost.shots > self.shots_per_round:
                raise BudgetExceeded(
                    f"client {client}: round {round_} would use {used + cost.shots} shots, over "
                    f"budget.shots_per_round={self.shots_per_round}; raise it or use fewer shots per circuit"
                )
            self.spent = self.spent + cost
            self.by_client[client] = self.by_client.get(client, Cost()) + cost
            self.round_shots[(client, round_)] = used + cost.shots
        return cost
