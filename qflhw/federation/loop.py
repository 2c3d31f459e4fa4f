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
from qflhw.data import FederatedData, federate, load_dataset
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
        self.run_key = run_key(spec)
        self.progress = progress
        self.journal: Journal | None = None
        self._runner = runner  # None: a JournaledRunner on the run directory's journal, set in run()
        self.ledger = Ledger(max_usd=spec.budget.max_usd, shots_per_round=spec.budget.shots_per_round)
        self.model_circuit = build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)
        self.observables = observables(spec.model.observables, spec.model.qubits)

        self.data, self.n_classes = federated_data(spec)
        self.clients: list[Client] = self._build_clients(devices or {}, mitigation)
        self.global_model = HybridModel(len(self.model_circuit.weights), len(self.observables), self.n_classes, spec.seed)
        self.params = self.global_model.get_flat()
        self.aggregator = _make_aggregator(spec)
        self.rows: list[dict] = []
        self.next_round = 0
        self.round_hooks: list[RoundHook] = []

    def _build_clients(self, devices: dict[str, Device], mitigation) -> list[Client]:  # noqa: ANN001
        """One local client per spec entry, on its own device (a Flower server builds none)."""
        clients = []
        for k, cs in enumerate(self.spec.clients):
            dev = devices.get(cs.name) or make_device(
                cs.device,
                seed=_seed(self.spec.seed, cs.name, "device"),
                noise_scale=cs.noise_scale,
                calibration=cs.calibration,
                store=self.run_dir / "fake-provider" / cs.name,
            )
            x_tr, y_tr = training_rows(self.spec, self.data, k)
            clients.append(
                Client(
                    cs, self.spec, dev, x_tr, y_tr, self.model_circuit, self.observables, self.n_classes,
                    run_id=self.run_key, ledger=self.ledger, runner=self._dispatch, mitigation=mitigation,
                )
            )
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

    def client_facts(self) -> dict[str, dict]:
        """Each client's device facts for the summary, by name (a Flower server learns them from replies)."""
        return {c.name: describe_client(c) for c in self.clients}

    def summary(self, seconds: float | None = None) -> dict:
        final = [r for r in self.rows if r["round"] == self.spec.rounds - 1]
        clients = {}
        for name, facts in self.client_facts().items():
            mine = [r for r in self.rows if r["client"] == name]
            spent = self.ledger.by_client.get(name)
            facts = dict(facts)
            stopped = facts.pop("stopped", "")
            clients[name] = {
                **facts,
                "shots": spent.shots if spent else 0,
                "cost_usd": float(spent.usd) if spent else 0.0,
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


def run_key(spec: JobSpec) -> str:
    """The prefix of every idempotency key (and so of every shot-noise seed) of a run of ``spec``."""
    return f"{spec.name}-seed{spec.seed}"


def federated_data(spec: JobSpec) -> tuple[FederatedData, int]:
    """The spec's dataset split into the global test set and one partition per client, and the
    number of classes; seeded, so a Flower site rebuilds its own partition exactly."""
    X, y = load_dataset(spec.data.dataset, classes=spec.data.classes)
    d = spec.data
    data = federate(
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
    return data, int(np.max(y)) + 1


def training_rows(spec: JobSpec, data: FederatedData, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``k``'s training rows, capped at ``spec.data.max_train_per_client``."""
    part, cap = data.clients[k], spec.data.max_train_per_client
    x_tr, y_tr = part.X_train, part.y_train
    return (x_tr[:cap], y_tr[:cap]) if cap else (x_tr, y_tr)


def selected_indices(spec: JobSpec, round_: int) -> list[int]:
    """Spec positions of the clients that train in ``round_``: seeded, so every engine picks the same."""
    n = len(spec.clients)
    k = max(1, int(round(spec.client_fraction * n)))
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(_seed(spec.seed, "select", str(round_)))
    return [int(i) for i in sorted(rng.choice(n, size=k, replace=False))]


def describe_client(c: Client) -> dict:
    """A client's device and transpiled-circuit facts as the run summary reports them."""
    t = c.evaluator.transpiled
    return {
        "device": c.device.name,
        "calibration_id": c.device.calibration.id,
        "esp": t.esp,
        "physical_qubits": [int(q) for q in t.physical_qubits],
        "two_qubit_gates": t.two_qubit_gates,
        "depth": t.depth,
        "stopped": c.stopped or "",
    }


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
