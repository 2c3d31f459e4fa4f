"""What a job spec will cost before it runs: jobs/tasks, shots and USD per client, round and run.

Nothing here connects anywhere or needs credentials: each client's circuit is transpiled on the
offline stand-in of its device (:func:`qflhw.devices.factory.offline_calibration`: for a real QPU
its newest saved live snapshot, else the profile's stand-in), clients are built exactly as a run
builds them (:class:`~qflhw.federation.assembly.Assembly`: same data split, mitigation and shots),
and every optimizer step is priced with the same ``job_cost`` the ledger charges:

    steps per round = ceil(training rows / batch size) x local epochs, each step one job;
    plus, when the spec asks for them: PQFL's ``adapt_steps`` fine-tuning jobs, the evaluation
    job(s) on the client's test rows (``[evaluation] on_device``) and the measured private
    release of the update (``[privacy]`` shot-noise / depolarizing), one job each;
    IBM:    USD = per_second x (2 s per job + shots x (circuit duration + 250 us));
    Braket: USD = per_task x tasks + per_shot x shots.

Not included: retries of failed jobs (each is charged again when it happens), adaptive shot
changes during training, and price changes since the profile's ``price.read`` date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from qflhw.config.profiles import load_profile
from qflhw.config.spec import JobSpec
from qflhw.execution.budget import Cost, Ledger
from qflhw.execution.evaluator import direct_runner
from qflhw.federation.assembly import Assembly, selected_indices
from qflhw.training import local_eval
from qflhw.training.client import Client
from qflhw.training.privacy import MeasuredRelease


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
    """How many rounds each client (in spec order) is selected in."""
    counts = [0] * len(spec.clients)
    for r in range(spec.rounds):
        for i in selected_indices(spec, r):
            counts[i] += 1
    return counts


def batch_sizes(rows: int, batch_size: int) -> list[int]:
    """Minibatch sizes of one epoch (the last one may be short), as the client iterates them."""
    return [min(batch_size, rows - lo) for lo in range(0, rows, batch_size)]


def estimate_spec(spec: JobSpec) -> RunEstimate:
    """Price every client of ``spec`` for one round and for the run (see the module docstring)."""
    assembly = Assembly(spec)
    rounds = selected_rounds(spec)
    out = RunEstimate(spec.name, spec.rounds, Decimal(str(spec.budget.max_usd)))
    for k, cs in enumerate(spec.clients):
        device = assembly.offline_device(k)
        client = assembly.client(k, device, ledger=Ledger(), runner=direct_runner)
        sizes = batch_sizes(len(client.y), client.batch_size) * client.local_epochs
        per_round = Cost()
        for n in sizes if spec.model.kind == "quantum" else []:  # the classical baseline sends no job
            per_round = per_round + client.evaluator.estimate(n)
        per_round = per_round + extra_round_cost(client)
        total = Cost(per_round.usd * rounds[k], per_round.tasks * rounds[k], per_round.shots * rounds[k],
                     per_round.seconds * rounds[k])
        out.clients.append(
            ClientEstimate(cs.name, device.profile.name, device.profile.provider, len(client.y), len(sizes), rounds[k],
                           per_round, total, device.calibration.id)
        )
    return out


def extra_round_cost(client: Client) -> Cost:
    """A round's jobs beyond local training: PQFL fine-tuning, on-device evaluation, the private release."""
    job = client.job
    out = local_eval.estimate_cost(client)
    if job.personalization.method == "pqfl" and job.model.kind == "quantum":
        for _ in range(job.personalization.adapt_steps):
            out = out + client.evaluator.estimate(min(client.batch_size, len(client.y)))
    if isinstance(client.release, MeasuredRelease):
        out = out + client.release.estimate_cost()
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

