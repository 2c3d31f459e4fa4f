"""What a job spec will cost before it runs: jobs/tasks, shots and USD per client, round and run.

Nothing here connects anywhere or needs credentials: each client's circuit is transpiled against
its profile's calibration snapshot (for a real QPU: its newest saved live snapshot, else the
profile's stand-in), clients are built exactly as a run builds them (same data split, mitigation
and shots), and every optimizer step is priced with the same ``job_cost`` the ledger charges:

    steps per round = ceil(training rows / batch size) x local epochs, each step one job;
    IBM:    USD = per_second x (2 s per job + shots x (circuit duration + 250 us));
    Braket: USD = per_task x tasks + per_shot x shots.

Not included: retries of failed jobs (each is charged again when it happens), adaptive shot
changes during training, and price changes since the profile's ``price.read`` date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from qflhw import calibration as _calibration
from qflhw.budget import Cost, Ledger
from qflhw.calibration import Calibration
from qflhw.devices.base import Batch, Device, JobHandle
from qflhw.errors import ConfigError
from qflhw.profiles import DeviceProfile, load_profile
from qflhw.spec import JobSpec


class PricingDevice(Device):
    """A device on paper: it transpiles like the real one but never runs anything."""

    def submit(self, batch: Batch, shots: int | None) -> JobHandle:
        raise ConfigError(f"device {self.name}: a pricing device cannot run jobs")

    def job(self, job_id: str) -> JobHandle:
        raise ConfigError(f"device {self.name}: a pricing device has no jobs")


def estimate_calibration(profile: DeviceProfile, override: str | None = None) -> Calibration:
    """The snapshot a client's circuit is priced with (no network).

    A real QPU uses its newest live snapshot when one was saved (IBM under the backend name,
    Braket under the profile name), else the profile's ``calibration``.
    """
    if override:
        return _calibration.load(override)
    refs = []
    if profile.provider == "braket":
        refs.append(f"{profile.name}/latest")
    refs.append(profile.calibration or f"{profile.device}/latest")
    for ref in refs[:-1]:
        try:
            return _calibration.load(ref)
        except ConfigError:
            continue
    return _calibration.load(refs[-1])


@dataclass
class ClientEstimate:
    client: str
    profile: str
    provider: str
    train_rows: int
    steps_per_round: int
    rounds: int  # rounds the client is selected in
    per_round: Cost
    total: Cost
    calibration_id: str

    def to_dict(self) -> dict:
        return {
            "client": self.client,
            "profile": self.profile,
            "provider": self.provider,
            "train_rows": self.train_rows,
            "steps_per_round": self.steps_per_round,
            "rounds": self.rounds,
            "per_round": _cost_dict(self.per_round),
            "total": _cost_dict(self.total),
            "calibration_id": self.calibration_id,
        }


@dataclass
class RunEstimate:
    name: str
    rounds: int
    max_usd: Decimal
    clients: list[ClientEstimate] = field(default_factory=list)

    @property
    def total(self) -> Cost:
        out = Cost()
        for c in self.clients:
            out = out + c.total
        return out

    @property
    def over_budget(self) -> bool:
        return self.total.usd > self.max_usd

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "budget_max_usd": str(self.max_usd),
            "over_budget": self.over_budget,
            "total": _cost_dict(self.total),
            "clients": [c.to_dict() for c in self.clients],
        }


def _cost_dict(c: Cost) -> dict:
    return {"usd": str(c.usd), "jobs": c.tasks, "shots": c.shots, "qpu_seconds": round(c.seconds, 3)}


def selected_rounds(spec: JobSpec) -> list[int]:
    """How many rounds each client (in spec order) is selected in; mirrors ``Federation.select``."""
    from qflhw.client import _seed

    n = len(spec.clients)
    k = max(1, int(round(spec.client_fraction * n)))
    counts = [0] * n
    for r in range(spec.rounds):
        if k == n:
            chosen = range(n)
        else:
            chosen = np.random.default_rng(_seed(spec.seed, "select", str(r))).choice(n, size=k, replace=False)
        for i in chosen:
            counts[int(i)] += 1
    return counts


def batch_sizes(rows: int, batch_size: int) -> list[int]:
    """Minibatch sizes of one epoch (the last one may be short), as the client iterates them."""
    return [min(batch_size, rows - lo) for lo in range(0, rows, batch_size)]


def estimate_spec(spec: JobSpec) -> RunEstimate:
    """Price every client of ``spec`` for one round and for the run (see the module docstring)."""
    from qflhw.circuits import build, observables
    from qflhw.client import Client, _seed
    from qflhw.executor import direct_runner
    from qflhw.federation import federated_data, training_rows

    model = build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)
    obs = observables(spec.model.observables, spec.model.qubits)
    data, n_classes = federated_data(spec)
    rounds = selected_rounds(spec)
    out = RunEstimate(spec.name, spec.rounds, Decimal(str(spec.budget.max_usd)))
    for k, cs in enumerate(spec.clients):
        profile = load_profile(cs.device)
        cal = estimate_calibration(profile, cs.calibration)
        device = PricingDevice(profile, cal, seed=_seed(spec.seed, cs.name, "device"))
        x_tr, y_tr = training_rows(spec, data, k)
        client = Client(
            cs, spec, device, x_tr, y_tr, model, obs, n_classes,
            run_id="estimate", ledger=Ledger(), runner=direct_runner,
        )
        sizes = batch_sizes(len(y_tr), client.batch_size) * client.local_epochs
        per_round = Cost()
        for n in sizes:
            per_round = per_round + client.evaluator.estimate(n)
        total = Cost(per_round.usd * rounds[k], per_round.tasks * rounds[k], per_round.shots * rounds[k],
                     per_round.seconds * rounds[k])
        out.clients.append(
            ClientEstimate(cs.name, profile.name, profile.provider, len(y_tr), len(sizes), rounds[k], per_round, total,
                           cal.id)
        )
    return out


def needs_estimate(spec: JobSpec) -> bool:
    """True when some client uses a paid (non-fake) device: only then can a run cost money."""
    return any(load_profile(c.device).provider != "fake" for c in spec.clients)


def format_estimate(est: RunEstimate) -> str:
    """A table: one row per client, then the total and the budget verdict."""
    head = f"{'client':<14} {'profile':<24} {'steps/rd':>8} {'rounds':>6} {'jobs/rd':>7} {'shots/rd':>10} {'USD/rd':>11} {'USD run':>11}"
    lines = [f"estimate for {est.name}: {est.rounds} rounds", head, "-" * len(head)]
    for c in est.clients:
        lines.append(
            f"{c.client:<14} {c.profile:<24} {c.steps_per_round:>8} {c.rounds:>6} {c.per_round.tasks:>7} "
            f"{c.per_round.shots:>10} {_usd(c.per_round.usd):>11} {_usd(c.total.usd):>11}"
        )
    t = est.total
    lines.append("-" * len(head))
    lines.append(f"{'total':<14} {'':<24} {'':>8} {'':>6} {t.tasks:>7} {t.shots:>10} {'':>11} {_usd(t.usd):>11}  (jobs/shots: whole run)")
    verdict = "OVER" if est.over_budget else "within"
    lines.append(f"budget.max_usd = {_usd(est.max_usd)}: the estimate is {verdict} budget (retries not included)")
    return "\n".join(lines)


def _usd(x: Decimal) -> str:
    return f"${x.quantize(Decimal('0.01'))}"


def load_and_estimate(path: str | Path) -> RunEstimate:
    from qflhw.spec import load_spec

    return estimate_spec(load_spec(path))
