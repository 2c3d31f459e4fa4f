"""A client site: one qflhw client built from the site's own spec file, device and credentials.

The SuperNode's node config names the spec file on this machine and the client this site is
(``qflhw-spec``, ``qflhw-client``; in Flower's simulation engine the partition id picks the client).
The device profile, the calibration, the data partition and any provider credentials are read
here; the server only ever sends global parameters.

A Flower ClientApp may handle each message in a new process (deployment) or in reused workers
(simulation), so whatever a client carries between rounds (optimizer moments, random and shot
states, budget stop, ledger) is kept in the Flower ``Context`` the SuperNode holds for this site
and restored before every round. Built sites are cached per process only to skip rebuilding the
device; the Context is the truth. Jobs are journaled per Flower run under the site directory, so
a retried message never pays twice for the same step.
"""

from __future__ import annotations

import copy
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from qflhw.config.spec import JobSpec, load_spec
from qflhw.devices.base import Batch, BatchResult, Device
from qflhw.errors import ConfigError
from qflhw.execution.budget import Cost
from qflhw.execution.events import EventLog
from qflhw.execution.journal import Journal
from qflhw.execution.retries import JournaledRunner
from qflhw.federation.assembly import Assembly, describe_client, make_ledger, make_runner
from qflhw.flower.records import EvalReport, Instruction, Report, spec_digest
from qflhw.training.client import ClientResult
from qflhw.training.local_eval import ClientEval
from qflhw.training.metrics import Scores

SPEC_KEY, CLIENT_KEY, DIR_KEY = "qflhw-spec", "qflhw-client", "qflhw-dir"
STATE_KEY = "qflhw-site"  # the ConfigRecord in Context.state that holds the carried-over state


class Site:
    """The client named ``name`` of ``spec``, trained on this machine."""

    def __init__(self, spec: JobSpec, name: str, *, source: str, run_dir: Path, flower_run: int = 0):
        names = [c.name for c in spec.clients]
        if name not in names:
            raise ConfigError(f"{source}: this site is client {name!r}, but the spec's clients are {', '.join(names)}")
        self.spec, self.name, self.source, self.run_dir = spec, name, source, Path(run_dir)
        self.flower_run = flower_run
        self.digest = spec_digest(spec)
        self.ledger = make_ledger(spec)
        assembly = Assembly(spec)
        k = assembly.index(name)
        # a fake device keeps its jobs like a provider does
        self.device = assembly.device(k, store=self.run_dir / "fake-provider")
        self._runner: JournaledRunner | None = None
        self.client = assembly.client(k, self.device, ledger=self.ledger, runner=self._dispatch)
        self._fresh = copy.deepcopy(self._carried())  # before any round: what a new run starts from

    def _dispatch(self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], object]) -> BatchResult:
        if self._runner is None:
            raise RuntimeError("a site submits jobs only inside train()")
        return self._runner(device, batch, shots, charge)

    def _carried(self) -> dict:
        return {"run": self.flower_run, "client": self.client.state(), "ledger": self.ledger.state()}

    def _load(self, blob: bytes | None) -> dict:
        # pickle is safe here: the blob is written by this site and kept by its own SuperNode
        # (Flower's Context never goes to the SuperLink). State of another run starts fresh.
        carried = pickle.loads(blob) if blob else None
        return carried if carried and carried.get("run") == self.flower_run else self._fresh

    def train(self, ins: Instruction, state: bytes | None) -> tuple[Report, bytes | None]:
        """One round at this site: (the report for the server, the state to keep in the Context)."""
        blank = ClientResult(
            client=self.name, device=self.device.name, round=ins.round, params=None,
            num_samples=len(self.client.y), esp=self.client.evaluator.transpiled.esp,
            calibration_id=self.device.calibration.id,
        )
        facts = describe_client(self.client)
        if ins.digest != self.digest:
            blank.error = (
                f"spec mismatch: the server's spec digest is {ins.digest}, this site's ({self.source}) is "
                f"{self.digest}; name, seed, data, model, training and client names must match"
            )
            return Report(blank, "dropped", facts=facts), state
        if self.name not in ins.selected:
            return Report(blank, "skipped", facts=facts), state
        carried = self._load(state)
        self.client.load_state(carried["client"])
        self.ledger.restore(carried["ledger"])
        before = self.ledger.by_client.get(self.name, Cost())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal(self.run_dir)
        events = EventLog(self.run_dir)  # this site's own jobs, as a local run logs them
        self._runner = make_runner(self.spec, journal, events)
        try:
            res = self.client.train_round(ins.params, ins.round)
        finally:
            self._runner = None
            journal.close()
            events.close()
            self.device.close()
        after = self.ledger.by_client.get(self.name, Cost())
        billed = Cost(after.usd - before.usd, after.tasks - before.tasks, after.shots - before.shots, after.seconds - before.seconds)
        report = Report(res, "trained" if res.params is not None else "dropped", billed, describe_client(self.client))
        return report, pickle.dumps(self._carried())

    def evaluate(self, ins: Instruction, state: bytes | None) -> tuple[EvalReport | None, bytes | None]:
        """Score the global model (and this site's personalized one) on the site's test rows.

        Returns no report when this site is not among the round's clients.
        """
        if self.name not in ins.selected:
            return None, state
        if ins.digest != self.digest:
            err = f"spec mismatch: the server's spec digest is {ins.digest}, this site's ({self.source}) is {self.digest}"
            return EvalReport(ClientEval(self.name, ins.round, Scores(0), error=err)), state
        carried = self._load(state)
        self.client.load_state(carried["client"])
        self.ledger.restore(carried["ledger"])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal(self.run_dir)
        self._runner = make_runner(self.spec, journal)
        try:
            ev = self.client.evaluate_round(ins.params, ins.round)
        finally:
            self._runner = None
            journal.close()
            self.device.close()
        return EvalReport(ev), pickle.dumps(self._carried())


_SITES: dict[tuple, Site] = {}


def open_site(node_config: Mapping, *, flower_run: int, spec: str | Path | None = None, root: str | Path | None = None) -> Site:
    """The site this SuperNode serves, from its node config (or the defaults a simulation passes).

    ``qflhw-spec`` (else ``spec``) is the spec file on this machine; ``qflhw-client`` (else the
    simulation's ``partition-id``) the client; ``qflhw-dir`` (else ``root``, else a temp folder)
    where the site journals its jobs.
    """
    path = node_config.get(SPEC_KEY) or spec
    if not path:
        raise ConfigError(
            f"this SuperNode has no {SPEC_KEY} in its --node-config; start it with "
            "`qflhw flower supernode SPEC --client NAME --superlink HOST:PORT`"
        )
    path = Path(str(path)).expanduser().resolve()
    job = load_spec(path)
    name = node_config.get(CLIENT_KEY)
    if not name and "partition-id" in node_config:
        pid = int(node_config["partition-id"])
        if not 0 <= pid < len(job.clients):
            raise ConfigError(f"{path}: partition-id {pid} but the spec has {len(job.clients)} clients")
        name = job.clients[pid].name
    if not name:
        raise ConfigError(f"this SuperNode has no {CLIENT_KEY} in its --node-config; add {CLIENT_KEY}=\"<client name>\"")
    where = Path(str(node_config.get(DIR_KEY) or root or Path(tempfile.gettempdir()) / "qflhw-sites"))
    key = (str(path), path.stat().st_mtime_ns, str(name), str(where), flower_run)
    if key not in _SITES:
        run_dir = where.expanduser().resolve() / str(name) / f"flower-run-{flower_run}"
        _SITES[key] = Site(job, str(name), source=str(path), run_dir=run_dir, flower_run=flower_run)
    return _SITES[key]


def dropped_report(name: str, round_: int, error: str) -> Report:
    """A report for a site that could not even be built (its spec or node config is wrong)."""
    return Report(ClientResult(client=name, device="", round=round_, params=None, num_samples=0, error=error), "dropped")

