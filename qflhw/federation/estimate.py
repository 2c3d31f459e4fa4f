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

Expected wall time (:func:`job_seconds`): every job waits in its device's queue (the profile's
dated ``[queue] wait_s``, or a wait measured in earlier runs) and then runs (IBM: the QPU time
of the cost model; Braket: ``seconds_per_task`` per task plus ``seconds_per_shot`` per shot). A
client's steps run one after the other, clients in parallel, rounds one after the other:

    wall = sum over rounds of max over the selected clients of sum over steps of (wait + run).

Fake twins have no queue (0 s: their simulation time is not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from qflhw.config.profiles import DeviceProfile, load_profile
from qflhw.config.spec import JobSpec
from qflhw.execution.budget import Cost, Ledger
from qflhw.execution.evaluator import CircuitEvaluator, direct_runner
from qflhw.federation.assembly import Assembly, selected_indices
from qflhw.training import local_eval
from qflhw.training.client import Client
from qflhw.training.privacy import MeasuredRelease

#: Measured queue waits per device profile (seconds per job), e.g. from earlier runs' events.
Waits = dict[str, float]


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
    wall_per_round_s: float = 0.0  # queue waits + run time of one round's jobs, one after the other

    def to_dict(self) -> dict:
        return {
            "wall_per_round_s": round(self.wall_per_round_s, 1),
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
    wall_seconds: float = 0.0  # expected wall time of the run, queue waits included

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
            "wall_seconds": round(self.wall_seconds, 1),
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


def round_steps(client: Client, shots: int | None | str = "spec") -> list[Cost]:
    """The priced jobs of one round of ``client``: one per optimizer step (``shots``: other shots
    per circuit than the client's own), as the run's ledger will charge them."""
    return step_costs(client.evaluator, len(client.y), client.batch_size, client.local_epochs, shots)


def step_costs(evaluator: CircuitEvaluator, rows: int, batch_size: int, local_epochs: int,
               shots: int | None | str = "spec") -> list[Cost]:
    """One priced job per step of a round: ``rows`` training rows in batches, ``local_epochs`` times."""
    return [evaluator.estimate(n, shots=shots) for n in batch_sizes(rows, batch_size) * local_epochs]


def job_seconds(profile: DeviceProfile, cost: Cost, waits: Waits | None = None) -> float:
    """Expected wall time of one priced job on ``profile``: queue wait(s) plus run time (see the module)."""
    q = profile.queue
    wait = (waits or {}).get(profile.name, q.wait_s if q else 0.0)
    if q is None:
        return wait * cost.tasks
    run = cost.seconds if cost.seconds > 0 else q.seconds_per_task * cost.tasks + q.seconds_per_shot * cost.shots
    return wait * cost.tasks + run


def run_wall_seconds(spec: JobSpec, per_round: list[float]) -> float:
    """Wall time of the run from each client's (spec order) wall time per round: rounds in turn,
    the selected clients of a round in parallel."""
    return sum(max((per_round[i] for i in selected_indices(spec, r)), default=0.0) for r in range(spec.rounds))


def estimate_spec(spec: JobSpec, waits: Waits | None = None) -> RunEstimate:
    """Price every client of ``spec`` for one round and for the run (see the module docstring);
    ``waits`` replaces profiles' queue figures with measured ones."""
    assembly = Assembly(spec)
    rounds = selected_rounds(spec)
    out = RunEstimate(spec.name, spec.rounds, Decimal(str(spec.budget.max_usd)))
    for k, cs in enumerate(spec.clients):
        device = assembly.offline_device(k)
        client = assembly.client(k, device, ledger=Ledger(), runner=direct_runner)
        # the classical baseline sends no training job; evaluation, PQFL and measured privacy may
        steps = round_steps(client) if spec.model.kind == "quantum" else []
        extra = extra_round_cost(client)
        per_round = extra
        for c in steps:
            per_round = per_round + c
        total = Cost(per_round.usd * rounds[k], per_round.tasks * rounds[k], per_round.shots * rounds[k],
                     per_round.seconds * rounds[k])
        wall = sum(job_seconds(device.profile, c, waits) for c in [*steps, extra] if c.tasks)
        out.clients.append(
            ClientEstimate(cs.name, device.profile.name, device.profile.provider, len(client.y), len(steps), rounds[k],
                           per_round, total, device.calibration.id, wall)
        )
    out.wall_seconds = run_wall_seconds(spec, [c.wall_per_round_s for c in out.clients])
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
    if est.wall_seconds > 0:
        lines.append(f"expected wall time {format_duration(est.wall_seconds)} (queue waits: the profiles' dated [queue] "
                     "figures or measured waits; jobs of a client one after the other)")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h`` or ``2.1 d``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _usd(x: Decimal) -> str:
    return f"${x.quantize(Decimal('0.01'))}"

