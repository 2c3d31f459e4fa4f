"""Money and shots: what a job costs, and a ledger that refuses to cross its caps.

Prices come from the device profile (never downloaded at run time). Braket bills a fee per task
plus a fee per shot; IBM bills QPU time, estimated with a simple documented model:

    seconds = 2.0 per job  +  circuits x shots x (circuit duration + 250 us repetition delay)

Every job is charged *before* it is submitted (a retry is another charge), so the cap holds
whatever happens after submission.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal

from qflhw.config.profiles import DeviceProfile
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
) -> Cost:
    """Estimated price of one job of ``circuits`` executables at ``shots`` each on ``profile``.

    ``total_shots`` replaces ``circuits x shots`` when items have their own shots
    (``Batch.total_shots``).
    """
    if total_shots is None:
        total_shots = circuits * (shots or 0)
    # Braket: a program set holds at most limits.max_circuits executables (1: no program sets,
    # every executable is its own task); IBM: Runtime mitigation (ZNE) multiplies the shots run.
    tasks = max(1, -(-circuits // profile.limits.max_circuits)) if profile.provider == "braket" else 1
    if profile.runtime is not None:
        total_shots *= profile.runtime.shots_factor
    p = profile.price
    seconds = 0.0
    usd = p.per_task * tasks + p.per_shot * total_shots
    if p.per_second:
        seconds = IBM_JOB_OVERHEAD_S + total_shots * (circuit_seconds + IBM_REPETITION_DELAY_S)
        usd += p.per_second * Decimal(str(round(seconds, 6)))
    return Cost(usd=usd.quantize(Decimal("0.000001")), tasks=tasks, shots=total_shots, seconds=seconds)


@dataclass
class Ledger:
    """Run-wide USD cap and per-client, per-round shot caps; thread-safe."""

    max_usd: Decimal = Decimal(0)
    shots_per_round: int | None = None
    spent: Cost = field(default_factory=Cost)
    by_client: dict[str, Cost] = field(default_factory=dict)
    round_shots: dict[tuple[str, int], int] = field(default_factory=dict)
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
            return {"spent": self.spent, "by_client": dict(self.by_client), "round_shots": dict(self.round_shots)}

    def restore(self, state: dict) -> None:
        with self._lock:
            self.spent = state["spent"]
            self.by_client = dict(state["by_client"])
            self.round_shots = dict(state["round_shots"])

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
