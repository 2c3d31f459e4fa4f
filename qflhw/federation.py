"""The federated loop: select clients, train them concurrently, aggregate, evaluate, record.

One :class:`Federation` is one run directory. Clients train in threads (cloud jobs wait in
parallel; Aer releases the GIL), each on its own device with its own seeded randomness, so the
result does not depend on thread timing. A client that fails is reported next to the others and
the round aggregates whoever reported, if at least ``aggregation.min_clients`` did.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from qflhw import aggregation
from qflhw.budget import Ledger
from qflhw.circuits import build, observables
from qflhw.client import Client, ClientResult, _seed
from qflhw.data import federate, load_dataset
from qflhw.devices import Device, make_device
from qflhw.errors import ConfigError, InvalidUpdate
from qflhw.evaluation import evaluate
from qflhw.devices import BatchResult
from qflhw.executor import Runner, direct_runner
from qflhw.journal import Journal
from qflhw.resilience import JournaledRunner
from qflhw.model import HybridModel
from qflhw.report import plot_learning_curve, summary_table, write_metrics, write_summary
from qflhw.spec import JobSpec

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
        mitigation=None,
        progress: bool = True,
    ):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.run_id = run_id or self.run_dir.name
        # Idempotency keys and shot-noise seeds derive from what the run *is*, not where it is
        # written, so the same spec and seed give the same numbers in any directory.
        self.run_key = f"{spec.name}-seed{spec.seed}"
        self.progress = progress
        self.journal: Journal | None = None
        self._runner = runner  # None: a JournaledRunner on the run directory's journal, set in run()
        self.ledger = Ledger(max_usd=spec.budget.max_usd, shots_per_round=spec.budget.shots_per_round)
        self.model_circuit = build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)
        self.observables = observables(spec.model.observables, spec.model.qubits)

        X, y = load_dataset(spec.data.dataset, classes=spec.data.classes)
        self.n_classes = int(np.max(y)) + 1
        d = spec.data
        self.data = federate(
            X,
            y,
            n_clients=len(spec.clients),
            partition=d.partition,
            alpha=d.alpha,
            labels_per_client=d.labels_per_client,
            test_fraction=d.test_fraction,
            global_test_fraction=d.global_test_fraction,
            num_features=spec.model.qubits,
            seed=spec.seed,
        )
        devices = devices or {}
        self.clients: list[Client] = []
        for k, cs in enumerate(spec.clients):
            dev = devices.get(cs.name) or make_device(
                cs.device,
                seed=_seed(spec.seed, cs.name, "device"),
                noise_scale=cs.noise_scale,
                calibration=cs.calibration,
                store=self.run_dir / "fake-provider" / cs.name,
            )
            part = self.data.clients[k]
            x_tr, y_tr = part.X_train, part.y_train
            if d.max_train_per_client:
                x_tr, y_tr = x_tr[: d.max_train_per_client], y_tr[: d.max_train_per_client]
            self.clients.append(
                Client(
                    cs, spec, dev, x_tr, y_tr, self.model_circuit, self.observables, self.n_classes,
                    run_id=self.run_key, ledger=self.ledger, runner=self._dispatch, mitigation=mitigation,
                )
            )
        self.global_model = HybridModel(len(self.model_circuit.weights), len(self.observables), self.n_classes, spec.seed)
        self.params = self.global_model.get_flat()
        self.aggregator = _make_aggregator(spec)
        self.rows: list[dict] = []
        self.next_round = 0
        self.round_hooks: list[RoundHook] = []

    # ---------------------------------------------------------------- rounds
    def select(self, round_: int) -> list[Client]:
        k = max(1, int(round(self.spec.client_fraction * len(self.clients))))
        if k == len(self.clients):
            return list(self.clients)
        rng = np.random.default_rng(_seed(self.spec.seed, "select", str(round_)))
        chosen = sorted(rng.choice(len(self.clients), size=k, replace=False))
        return [self.clients[i] for i in chosen]

    def run_round(self, round_: int) -> tuple[float, float]:
        selected = self.select(round_)
        with ThreadPoolExecutor(max_workers=len(selected), thread_name_prefix="qfl-client") as pool:
            results = list(pool.map(lambda c: c.train_round(self.params, round_), selected))
        updates = []
        for res in results:
            if res.params is None:
                continue
            try:
                updates.append(self._update(res))
            except InvalidUpdate as err:
                res.error, res.params = str(err), None
        if len(updates) >= self.spec.aggregation.min_clients:
            self.params = self.aggregator.aggregate(updates, self.params)
        self.global_model.set_flat(self.params)
        acc, loss = evaluate(self.global_model, self.model_circuit, self.observables, self.data.global_test.X, self.data.global_test.y)
        for res in results:
            self.rows.append(_row(res, acc, loss, enough=len(updates) >= self.spec.aggregation.min_clients))
        return acc, loss

    def _update(self, res: ClientResult) -> aggregation.ClientUpdate:
        update = aggregation.ClientUpdate(
            client=res.client,
            params=res.params,
            num_samples=res.num_samples,
            esp=res.esp,
            variance=res.variance if res.variance > 0 else None,
            noise=1.0 - res.esp,
        )
        aggregation.validate_update(update, len(self.params))
        return update

    # ---------------------------------------------------------------- journal, checkpoints, resume
    def _dispatch(self, device: Device, batch, shots, charge) -> BatchResult:  # noqa: ANN001
        """The clients' runner: the journaled one unless the caller passed another."""
        runner = self._runner or direct_runner
        return runner(device, batch, shots, charge)

    def open_journal(self) -> Journal:
        """Create the run directory and its journal; the default runner journals every job."""
        if self.journal is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.journal = Journal(self.run_dir)
            if self._runner is None:
                r = self.spec.resilience
                self._runner = JournaledRunner(
                    self.journal,
                    retries=r.retries,
                    backoff_initial=r.backoff_initial_s,
                    backoff_max=r.backoff_max_s,
                    job_timeout=r.job_timeout_s,
                )
        return self.journal

    def checkpoint(self, round_: int) -> None:
        """Commit everything needed to continue after ``round_`` in one journal transaction."""
        state = {
            "next_round": round_ + 1,
            "params": self.params,
            "rows": self.rows,
            "ledger": self.ledger.state(),
            "clients": {
                c.name: {
                    "optimizer": c.optimizer.state_dict(),
                    "rng": c.evaluator.rng.bit_generator.state,
                    "stopped": c.stopped,
                }
                for c in self.clients
            },
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
            saved = state["clients"][c.name]
            c.optimizer.load_state_dict(saved["optimizer"])
            c.evaluator.rng.bit_generator.state = saved["rng"]
            c.stopped = saved["stopped"]
        return self.next_round

    def run(self) -> dict:
        """Run the remaining rounds, checkpointing after each; returns the summary."""
        self.open_journal()
        start = time.perf_counter()
        bar = _progress(self.spec.rounds, self.next_round, enabled=self.progress)
        for r in range(self.next_round, self.spec.rounds):
            acc, _ = self.run_round(r)
            self.checkpoint(r)
            self.next_round = r + 1
            write_metrics(self.run_dir / "metrics.csv", self.rows)
            for hook in self.round_hooks:
                hook(self, r)
            bar(r, acc)
        summary = self.summary(time.perf_counter() - start)
        write_summary(self.run_dir / "summary.json", summary)
        plot_learning_curve(self.run_dir / "learning_curve.png", self.rows, f"{self.spec.name} ({self.run_id})")
        self.journal.close()  # type: ignore[union-attr]
        self.journal = None
        return summary

    def summary(self, seconds: float | None = None) -> dict:
        final = [r for r in self.rows if r["round"] == self.spec.rounds - 1]
        clients = {}
        for c in self.clients:
            mine = [r for r in self.rows if r["client"] == c.name]
            spent = self.ledger.by_client.get(c.name)
            clients[c.name] = {
                "device": c.device.name,
                "calibration_id": c.device.calibration.id,
                "shots": spent.shots if spent else 0,
                "cost_usd": float(spent.usd) if spent else 0.0,
                "esp": c.evaluator.transpiled.esp,
                "physical_qubits": list(c.evaluator.transpiled.physical_qubits),
                "two_qubit_gates": c.evaluator.transpiled.two_qubit_gates,
                "depth": c.evaluator.transpiled.depth,
                "rounds_ok": sum(1 for r in mine if r["status"] == "ok"),
                "note": c.stopped or next((r["error"] for r in reversed(mine) if r["error"]), ""),
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
        }
        if seconds is not None:
            out["wall_seconds"] = round(seconds, 1)
        return out


def new_run_dir(spec: JobSpec, out: str | None) -> Path:
    """``--out`` as given, or ``<spec.output>/<name>-<UTC timestamp>``; never an existing run."""
    if out:
        path = Path(out)
    else:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = Path(spec.output) / f"{spec.name}-{stamp}"
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"run directory {path} exists and is not empty; pick another --out or `qflhw resume {path}`")
    return path


def _make_aggregator(spec: JobSpec):
    a = spec.aggregation
    options = {"trimmed-mean": {"trim_fraction": a.trim_fraction}, "sporadic": {"threshold": a.threshold, "mode": a.mode}}
    return aggregation.make_aggregator(a.method, **options.get(a.method, {}))


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
        "job_ids": " ".join(res.job_ids),
        "seconds": round(res.seconds, 3),
        "global_test_accuracy": acc,
        "global_test_loss": loss,
        "error": res.error or "",
    }


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
