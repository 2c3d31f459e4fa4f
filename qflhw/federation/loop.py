"""The federated loop: select clients, train them concurrently, aggregate, evaluate, record.

One :class:`Federation` is one run directory. Clients train in threads (cloud jobs wait in
parallel; Aer releases the GIL), each on its own device with its own seeded randomness, so the
result does not depend on thread timing. A client that fails is reported next to the others and
the round aggregates whoever reported, if at least ``aggregation.min_clients`` did.

After every round the run directory grows: the checkpoint is committed, then ``metrics.csv``, a
partial ``summary.json`` (``"finished": false``) and ``learning_curve.png`` are rewritten, and
``events.jsonl`` gets the round's dropouts, checkpoint and summary (see
:mod:`qflhw.execution.events`), so a run can be watched, reported on and plotted while it lasts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from qflhw.config.spec import JobSpec
from qflhw.devices.base import Batch, BatchResult, Device
from qflhw.errors import ConfigError, InvalidUpdate
from qflhw.execution.evaluator import Runner, direct_runner
from qflhw.execution.events import EventLog
from qflhw.execution.journal import Journal
from qflhw.execution.mitigation.base import Technique
from qflhw.federation import aggregation, scheduling
from qflhw.federation.assembly import Assembly, describe_client, make_ledger, make_runner, round_plan, selected_indices
from qflhw.federation.evaluation import client_eval_columns, client_eval_summary, evaluate_scores
from qflhw.federation.outputs import plot_learning_curve, write_metrics, write_summary
from qflhw.training.client import Client, ClientResult
from qflhw.training.local_eval import ClientEval

RoundHook = Callable[["Federation", int], None]


class Federation:
    """Everything one run needs, built from a validated spec."""

    def __init__(
        self,
        spec: JobSpec,
        run_dir: Path,
        *,
        run_id: str | None = None,
        runner: Runner | None = None,
        devices: dict[str, Device] | None = None,
        mitigation: Technique | None = None,
        progress: bool = True,
    ):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.run_id = run_id or self.run_dir.name
        self.progress = progress
        self.journal: Journal | None = None
        self.events: EventLog | None = None  # events.jsonl, opened with the journal
        self._runner = runner  # None: a JournaledRunner on the run directory's journal, set in run()
        self.ledger = make_ledger(spec)
        self.assembly = Assembly(spec)
        self.model_circuit = self.assembly.model
        self.observables = self.assembly.observables
        self.data, self.n_classes = self.assembly.data, self.assembly.n_classes
        self.clients: list[Client] = self._build_clients(devices or {}, mitigation)
        self.global_model = self.assembly.global_model()
        self.params = self.global_model.get_flat()
        self.aggregator = aggregation.from_spec(spec.aggregation)
        self.rows: list[dict] = []
        self.next_round = 0
        self.round_hooks: list[RoundHook] = []

    def _build_clients(self, devices: dict[str, Device], mitigation: Technique | None) -> list[Client]:
        """One local client per spec entry, on its own device (a Flower server builds none)."""
        clients = []
        for k, cs in enumerate(self.spec.clients):
            dev = devices.get(cs.name) or self.assembly.device(k, store=self.run_dir / "fake-provider" / cs.name)
            clients.append(self.assembly.client(k, dev, ledger=self.ledger, runner=self._dispatch, mitigation=mitigation))
        return clients

    # ---------------------------------------------------------------- rounds
    def select(self, round_: int) -> list[Client]:
        return [self.clients[i] for i in selected_indices(self.spec, round_)]

    def train_selected(self, round_: int) -> list[ClientResult]:
        """The selected clients' reports for ``round_``, in spec order; here they train in threads.

        This is the one step the engines do differently: a Flower server sends it over the network.
        """
        selected = self.select(round_)
        with ThreadPoolExecutor(max_workers=len(selected), thread_name_prefix="qfl-client") as pool:
            return list(pool.map(lambda c: c.train_round(self.params, round_), selected))

    def run_round(self, round_: int) -> tuple[float, float]:
        results = self.train_selected(round_)
        updates = []
        for res in results:
            if res.params is None:
                continue
            try:
                updates.append(self._update(res))
            except InvalidUpdate as err:
                res.error, res.params = str(err), None
        updates.sort(key=lambda u: u.client)  # one summation order, however the reports arrived
        split = self.assembly.split  # personalized coordinates are neither sent nor averaged
        enough = len(updates) >= self.spec.aggregation.min_clients
        decided: dict[str, dict] = {}
        if enough:
            self.params = split.merge(self.params, self.aggregator.aggregate(updates, split.shared(self.params)))
            decide = getattr(self.aggregator, "decisions", None)  # any object with aggregate() may stand in
            decided = {u.client: d for u, d in zip(updates, decide(updates))} if decide else {}
        self.global_model.set_flat(self.params)
        test = self.data.global_test
        scores = evaluate_scores(self.global_model, self.model_circuit, self.observables, test.X, test.y, self.assembly.loss)
        acc, loss = scores.accuracy, scores.loss
        evals = self.evaluate_clients(round_, results) if self.spec.evaluation.per_client else {}
        plan = round_plan(self.spec, round_)
        for res in [*results, *_missed_deadline(self.spec, plan, round_)]:
            row = _row(res, acc, loss, enough=enough)
            row.update(decided.get(res.client, {"weight": 0.0}))
            if plan is not None:
                row.update(plan.fields([c.name for c in self.spec.clients].index(res.client)))
            row.update({"global_test_auroc": scores.auroc, "global_test_aupr": scores.aupr})
            row.update(client_eval_columns(evals.get(res.client)))
            row.update(self._privacy_columns(res))
            self.rows.append(row)
        return acc, loss

    def evaluate_clients(self, round_: int, results: list[ClientResult]) -> dict[str, ClientEval]:
        """Each of this round's clients scores the new global model on its own test rows (here in
        threads; a Flower server asks the sites)."""
        names = {r.client for r in results}
        chosen = [c for c in self.clients if c.name in names]
        if not chosen:
            return {}
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="qfl-eval") as pool:
            return {e.client: e for e in pool.map(lambda c: c.evaluate_round(self.params, round_), chosen)}

    def _privacy_columns(self, res: ClientResult) -> dict:
        """epsilon spent by ``res.client`` so far (rounds whose update it sent), and this round's noise."""
        plan = self.assembly.privacy.get(res.client)
        keys = ("dp_epsilon", "dp_epsilon_round", "dp_noise_std", "dp_quantum_std", "dp_gaussian_std", "dp_shots")
        cols: dict[str, float | str] = {k: "" for k in keys}
        if plan is None:
            return cols
        sent = sum(1 for r in self.rows if r["client"] == res.client and r["status"] != "dropped") + (res.params is not None)
        cols.update({"dp_epsilon": plan.epsilon_after(sent), "dp_epsilon_round": plan.epsilon_round if res.params is not None else 0.0})
        cols.update({k: res.extra.get(k, "") for k in keys[2:]})
        return cols

    def _update(self, res: ClientResult) -> aggregation.ClientUpdate:
        if res.params is None:
            raise InvalidUpdate(f"client {res.client!r}: reported no parameters")
        update = aggregation.ClientUpdate(
            client=res.client,
            params=res.params,
            num_samples=res.num_samples,
            esp=res.esp,
            variance=res.variance if res.variance > 0 else None,
            noise=1.0 - res.esp,
            noise_estimate=res.noise_estimate if math.isfinite(res.noise_estimate) else None,
        )
        aggregation.validate_update(update, self.assembly.split.shared_size)
        return update

    # ---------------------------------------------------------------- journal, checkpoints, resume
    def _dispatch(self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], object]) -> BatchResult:
        """The clients' runner: the journaled one unless the caller passed another."""
        runner = self._runner or direct_runner
        return runner(device, batch, shots, charge)

    def open_journal(self) -> Journal:
        """Create the run directory, its journal and its event log; the default runner journals
        and logs every job."""
        if self.journal is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.journal = Journal(self.run_dir)
            self.events = EventLog(self.run_dir)
            if self._runner is None:
                self._runner = make_runner(self.spec, self.journal, self.events)
        return self.journal

    def checkpoint(self, round_: int) -> None:
        """Commit everything needed to continue after ``round_`` in one journal transaction."""
        state = {
            "next_round": round_ + 1,
            "params": self.params,
            "rows": self.rows,
            "ledger": self.ledger.state(),
            "clients": {c.name: c.state() for c in self.clients},
        }
        self.open_journal().checkpoint(round_, state)

    def restore(self) -> int:
        """Load the latest checkpoint, if any; returns the round the run continues from."""
        found = self.open_journal().latest_checkpoint()
        if found is None:
            return 0
        _, state = found
        self.next_round = state["next_round"]
        self.params = np.asarray(state["params"])
        self.global_model.set_flat(self.params)
        self.rows = list(state["rows"])
        self.ledger.restore(state["ledger"])
        for c in self.clients:
            if c.name not in state["clients"]:
                raise ConfigError(
                    f"{self.run_dir}: the checkpoint has no state for client {c.name} (its clients trained at "
                    "Flower sites); start a new run instead"
                )
            c.load_state(state["clients"][c.name])
        return self.next_round

    def run(self) -> dict:
        """Run the remaining rounds, checkpointing after each; returns the summary."""
        self.open_journal()
        events = self.events
        assert events is not None
        try:
            start = time.perf_counter()
            events.emit(
                "run", run_id=self.run_id, name=self.spec.name, rounds=self.spec.rounds, start_round=self.next_round,
                resumed=events.resumed, pid=os.getpid(), host=socket.gethostname(),
            )
            for r in sorted(set(range(self.next_round)) - events.logged_rounds()):
                self._round_event(r, recovered=True)  # a kill between a checkpoint and its line
            bar = _progress(self.spec.rounds, self.next_round, enabled=self.progress)
            first = self.next_round
            with _quiet_logs_under(self.progress):
                for r in range(self.next_round, self.spec.rounds):
                    acc, _ = self.run_round(r)
                    for row in self.rows:
                        if row["round"] == r and row["status"] != "ok":
                            events.emit("dropout", round=r, client=row["client"], status=row["status"], error=row["error"])
                    self.checkpoint(r)
                    events.emit("checkpoint", round=r)
                    self.next_round = r + 1
                    self.write_outputs(finished=False)
                    self._round_event(r)
                    for hook in self.round_hooks:
                        hook(self, r)
                    bar(r, acc)
            # the last round drew the final curve already; draw it here only if no round ran now
            summary = self.write_outputs(finished=True, seconds=time.perf_counter() - start, plot=first >= self.spec.rounds)
            events.emit("finished", run_id=self.run_id, final_test_accuracy=summary["final_test_accuracy"])
        finally:
            self.close()
        return summary

    def write_outputs(self, *, finished: bool, seconds: float | None = None, plot: bool = True) -> dict:
        """Rewrite ``metrics.csv``, ``summary.json`` (``finished`` says whether it is final) and the
        learning curve from the rounds done so far; returns the summary."""
        write_metrics(self.run_dir / "metrics.csv", self.rows)
        summary = self.summary(seconds, finished=finished)
        write_summary(self.run_dir / "summary.json", summary)
        if plot:
            plot_learning_curve(self.run_dir / "learning_curve.png", self.rows, f"{self.spec.name} ({self.run_id})")
        return summary

    def _round_event(self, r: int, *, recovered: bool = False) -> None:
        """One ``round`` line in events.jsonl: the global model's numbers and what the round cost."""
        mine = [row for row in self.rows if row["round"] == r]
        if not mine or self.events is None:
            return
        extra = {"recovered": True} if recovered else {"spent_usd": self.ledger.spent.usd, "spent_shots": self.ledger.spent.shots}
        self.events.emit(
            "round", round=r, test_accuracy=mine[0]["global_test_accuracy"], test_loss=mine[0]["global_test_loss"],
            clients=len(mine), clients_ok=sum(1 for row in mine if row["status"] == "ok"),
            shots=sum(row["shots"] for row in mine), cost_usd=sum(row["cost_usd"] for row in mine), **extra,
        )

    def close(self) -> None:
        """Close every client's device (its open execution mode) and the journal."""
        for c in self.clients:
            c.device.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.events is not None:
            self.events.close()
            self.events = None

    def client_facts(self) -> dict[str, dict]:
        """Each client's device facts for the summary, by name (a Flower server learns them from replies)."""
        return {c.name: describe_client(c) for c in self.clients}

    def summary(self, seconds: float | None = None, *, finished: bool = True) -> dict:
        """The run's summary; ``finished=False`` marks a partial one (written after each round),
        whose ``final_*`` numbers are those of the last round done."""
        final = [r for r in self.rows if r["round"] == self.next_round - 1]
        clients = {}
        for name, facts in self.client_facts().items():
            mine = [r for r in self.rows if r["client"] == name]
            spent = self.ledger.by_client.get(name)
            actual = self.ledger.actual.get(name)
            facts = dict(facts)
            stopped = facts.pop("stopped", "")
            clients[name] = {
                **facts,
                "shots": spent.shots if spent else 0,
                "cost_usd": float(spent.usd) if spent else 0.0,
                "estimated_cost_usd": float(spent.usd) if spent else 0.0,  # what the ledger charged before sending
                # what the provider reported (None: it reported nothing billable, e.g. fake or local mode)
                "actual_cost_usd": float(actual.usd) if actual else None,
                "actual_shots": actual.shots if actual else None,
                "rounds_ok": sum(1 for r in mine if r["status"] == "ok"),
                "note": stopped or next((r["error"] for r in reversed(mine) if r["error"]), ""),
            }
        out = {
            "run_id": self.run_id,
            "name": self.spec.name,
            "seed": self.spec.seed,
            "rounds": self.next_round,
            "final_test_accuracy": final[0]["global_test_accuracy"] if final else float("nan"),
            "final_test_loss": final[0]["global_test_loss"] if final else float("nan"),
            "accuracy_per_round": [
                next(r["global_test_accuracy"] for r in self.rows if r["round"] == k) for k in range(self.next_round)
            ],
            "total_shots": self.ledger.spent.shots,
            "total_cost_usd": float(self.ledger.spent.usd),
            "total_jobs": self.ledger.spent.tasks,
            "aggregation": self.spec.aggregation.method,
            "clients": clients,
            "final_parameters": [float(v) for v in self.params],
            "finished": finished,
        }
        out.update(self._extra_summary(final))
        sched = scheduling.summary(self.rows, self.spec)
        if sched is not None:
            out["scheduling"] = sched
        if seconds is not None:
            out["wall_seconds"] = round(seconds, 1)
        return out


    def _extra_summary(self, final: list[dict]) -> dict:
        """Summary entries of the model, the clients' own scores, personalization and privacy."""
        from qflhw.training.classical import quantum_parameter_count

        spec = self.spec
        out: dict = {
            "final_test_auroc": final[0].get("global_test_auroc", float("nan")) if final else float("nan"),
            "final_test_aupr": final[0].get("global_test_aupr", float("nan")) if final else float("nan"),
            "model": {
                "kind": spec.model.kind,
                "trainable_parameters": int(self.params.size),
                "quantum_trainable_parameters": quantum_parameter_count(
                    len(self.model_circuit.weights), len(self.observables), self.n_classes),
            },
        }
        if spec.evaluation.per_client:
            out["client_test"] = {"on_device": spec.evaluation.on_device, **client_eval_summary(self.rows, self.next_round)}
        split = self.assembly.split
        if spec.personalization.method != "none":
            out["personalization"] = {
                "method": spec.personalization.method,
                "local_parameters": int(split.size - split.shared_size),
                "shared_parameters": int(split.shared_size),
            }
        plans = {n: p for n, p in self.assembly.privacy.items() if p is not None}
        if plans:
            spent = {n: max([float(r["dp_epsilon"]) for r in self.rows if r["client"] == n and r["dp_epsilon"] != ""], default=0.0)
                     for n in plans}
            out["privacy"] = {
                "clients": {n: {**p.describe(), "epsilon_spent": spent[n]} for n, p in plans.items()},
                "epsilon_spent_max": max(spent.values()),
                "epsilon_per_round": {n: p.epsilon_round for n, p in plans.items()},
            }
        return out


def new_run_dir(spec: JobSpec, out: str | None) -> Path:
    """``--out`` as given, or ``<spec.output>/<name>-<UTC timestamp>``; never an existing run."""
    if out:
        path = Path(out)
    else:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path(spec.output) / f"{spec.name}-{stamp}"
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"run directory {path} exists and is not empty; pick another --out or `qflhw resume {path}`")
    return path


def _row(res: ClientResult, acc: float, loss: float, *, enough: bool) -> dict:
    status = "ok" if res.params is not None else "dropped"
    if status == "ok" and not enough:
        status = "not-aggregated"
    return {
        "round": res.round,
        "client": res.client,
        "device": res.device,
        "status": status,
        "num_samples": res.num_samples,
        "steps": res.steps,
        "loss": res.loss,
        "shots": res.cost.shots,
        "cost_usd": float(res.cost.usd),
        "esp": res.esp,
        "variance": res.variance,
        "calibration_id": res.calibration_id,
        "layout": res.layout,
        "noise_estimate": res.noise_estimate,
        "job_ids": " ".join(res.job_ids),
        "seconds": round(res.seconds, 3),
        "global_test_accuracy": acc,
        "global_test_loss": loss,
        "zne_fallbacks": res.zne_fallbacks,
        "error": res.error or "",
    }


@contextlib.contextmanager
def _quiet_logs_under(bar: bool) -> Iterator[None]:
    """With a progress bar, qflhw's log lines (``-v``) print above it instead of through it."""
    if not bar:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger("qflhw")]):
        yield


def _missed_deadline(spec: JobSpec, plan: scheduling.RoundPlan | None, round_: int) -> list[ClientResult]:
    """Reports for the sampled clients the uplink deadline kept out of ``round_`` (they did not train)."""
    if plan is None or spec.scheduling is None:
        return []
    out = []
    for j, k in enumerate(plan.candidates):
        if k not in plan.selected:
            c = spec.clients[k]
            out.append(ClientResult(
                client=c.name, device=c.device, round=round_, params=None, num_samples=0,
                error=f"unscheduled: upload {plan.upload_s[j]:.3g} s > deadline_s {spec.scheduling.deadline_s:g}",
            ))
    return out


def _progress(total: int, done: int, *, enabled: bool) -> Callable[[int, float], None]:
    """A live one-line progress bar on stderr (tqdm), or nothing."""
    if not enabled:
        return lambda r, acc: None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, desc="rounds", unit="round", file=sys.stderr, dynamic_ncols=True)

    def tick(r: int, acc: float) -> None:
        bar.set_postfix(test_acc=f"{acc:.3f}")
        bar.update(1)
        if r == total - 1:
            bar.close()

    return tick
