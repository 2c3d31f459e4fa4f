"""The Flower ServerApp: qflhw's round loop, with training sent to the sites over a Flower Grid.

:class:`FlowerFederation` is a :class:`~qflhw.federation.loop.Federation` without local clients: the
same selection, validation, aggregation (``aggregation.make_aggregator`` on the reported samples,
ESP and variance), evaluation, checkpoints, ``metrics.csv`` and ``summary.json``. Only
:meth:`train_selected` and :meth:`evaluate_clients` differ: they push one instruction per SuperNode
(a training or an evaluation message) and poll for the reports (submit, then poll: the shape of
a cloud QPU job). A site that reports an error, sends a
malformed report, goes offline or does not answer within ``round_timeout`` is a dropout for
that round, recorded with the reason, and the round aggregates whoever reported.

SuperNodes are matched to clients by the name in their reports, so the server needs no node
list: it contacts every node it does not know yet, and afterwards only the selected ones.
"""

from __future__ import annotations

import base64
import math
import time
from decimal import Decimal
from pathlib import Path

from qflhw.flower import require_flwr

require_flwr()  # a clear error without the extra; Flower's telemetry off by default

from flwr.app import Context, Message, MessageType
from flwr.common import log
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid, ServerApp

from qflhw.config.spec import JobSpec, load_spec, parse_spec
from qflhw.devices.base import Device
from qflhw.errors import ConfigError, InvalidUpdate
from qflhw.execution.budget import Ledger
from qflhw.execution.mitigation.base import Technique
from qflhw.federation.assembly import selected_indices
from qflhw.federation.loop import Federation, new_run_dir
from qflhw.federation.runs import run_with_hooks
from qflhw.flower.records import EvalReport, Instruction, Report, spec_digest
from qflhw.training.client import Client, ClientResult
from qflhw.training.local_eval import ClientEval
from qflhw.training.metrics import Scores

INFO, WARNING = 20, 30


class FlowerFederation(Federation):
    """A federation whose clients are Flower SuperNodes reached through ``grid``."""

    def __init__(
        self,
        spec: JobSpec,
        run_dir: Path,
        grid: Grid,
        *,
        run_id: str | None = None,
        round_timeout: float = 3600.0,
        wait_for_nodes: float = 60.0,
        poll_seconds: float = 0.5,
        progress: bool = False,
    ):
        super().__init__(spec, run_dir, run_id=run_id, progress=progress)
        self.grid = grid
        self.round_timeout = round_timeout
        self.wait_for_nodes = wait_for_nodes
        self.poll_seconds = poll_seconds
        self.digest = spec_digest(spec)
        # What the sites report they were billed; each site enforces budget.max_usd on its own
        # spend with its own credentials, so the server only adds up (it never refuses).
        self.ledger = Ledger(max_usd=Decimal("Infinity"))
        self.node_client: dict[int, str] = {}
        self.facts: dict[str, dict] = {}
        self.samples: dict[str, int] = {}  # last reported, for the rows of rounds a client missed
        self._waited = False

    def _build_clients(self, devices: dict[str, Device], mitigation: Technique | None) -> list[Client]:
        return []  # clients live at their sites

    def client_facts(self) -> dict[str, dict]:
        unknown = {"calibration_id": "", "esp": math.nan, "physical_qubits": [], "two_qubit_gates": 0, "depth": 0}
        return {c.name: self.facts.get(c.name) or {"device": c.device, **unknown} for c in self.spec.clients}

    # ------------------------------------------------------------------ one round over the network
    def train_selected(self, round_: int) -> list[ClientResult]:
        names = [self.spec.clients[i].name for i in selected_indices(self.spec, round_)]
        online = self._online_nodes()
        disconnected = {c for n, c in self.node_client.items() if n not in online}  # served a client before, gone now
        targets = [n for n in online if self.node_client.get(n) in (None, *names)]
        ins = Instruction(self.params, round_, tuple(names), self.digest)
        replies, silent = self._exchange(ins, targets)
        reports: dict[str, ClientResult] = {}
        problems: dict[str | None, str] = {}  # by client; failures of nodes not identified yet go to None
        for node, msg in replies.items():
            known = self.node_client.get(node)
            if msg.has_error():
                gone = msg.error.code == ErrorCode.NODE_UNAVAILABLE
                what = "its SuperNode went offline" if gone else "its ClientApp failed"
                self._problem(problems, known, node, f"{what} ({msg.error.reason})")
                continue
            try:
                report = Report.read(msg.content)
            except InvalidUpdate as err:
                self._problem(problems, known, node, str(err))
                continue
            name = report.result.client
            if name not in {c.name for c in self.spec.clients}:
                log(WARNING, "node %s serves client %r, which is not in the spec; ignored", node, name)
                continue
            owner = next((n for n, c in self.node_client.items() if c == name and n != node and n in online), None)
            if owner is not None:
                log(WARNING, "nodes %s and %s both claim client %r; keeping %s", owner, node, name, owner)
                continue
            self.node_client[node] = name
            if report.status == "skipped" or name not in names:
                continue
            if report.result.round != round_:
                problems[name] = f"answered for round {report.result.round}, not {round_}"
                continue
            self.facts[name] = report.facts or self.facts.get(name, {})
            report.result.device = report.result.device or self.client_facts()[name]["device"]
            self.samples[name] = report.result.num_samples
            if report.billed.tasks or report.billed.shots or report.billed.usd:
                self.ledger.charge(name, round_, report.billed)
            reports[name] = report.result
        for node, reason in silent.items():
            self._problem(problems, self.node_client.get(node), node, reason)
        out = []
        for name in names:
            if name in reports:
                out.append(reports[name])
                continue
            if name in problems:
                reason = problems[name]
            elif name in disconnected:
                reason = "its SuperNode went offline before the round"
            else:
                reason = "no SuperNode reported for this client" + (
                    f"; unidentified SuperNodes failed: {problems[None]}" if None in problems else ""
                )
            log(WARNING, "round %s: client %s dropped out: %s", round_, name, reason)
            device = self.client_facts()[name]["device"]
            samples = self.samples.get(name, 0)
            out.append(ClientResult(client=name, device=device, round=round_, params=None, num_samples=samples, error=reason))
        return out

    @staticmethod
    def _problem(problems: dict, name: str | None, node: int, reason: str) -> None:
        if name is None:
            log(WARNING, "node %s (client not known yet): %s", node, reason)
            problems[None] = "; ".join(filter(None, [problems.get(None), f"node {node}: {reason}"]))
        else:
            problems.setdefault(name, reason)

    def _online_nodes(self) -> list[int]:
        """Connected SuperNodes; before the first round, wait up to ``wait_for_nodes`` for all clients."""
        deadline = time.monotonic() + (0 if self._waited else self.wait_for_nodes)
        want = len(self.spec.clients)
        while len(nodes := sorted(self.grid.get_node_ids())) < want and time.monotonic() < deadline:
            time.sleep(self.poll_seconds)
        if not self._waited:
            log(INFO, "%d of %d SuperNodes connected", len(nodes), want)
        self._waited = True
        return nodes

    def evaluate_clients(self, round_: int, results: list[ClientResult]) -> dict[str, ClientEval]:
        """Ask the sites of this round's clients to score the new global model on their test rows."""
        names = [r.client for r in results]
        online = set(self.grid.get_node_ids())
        nodes = [n for n, c in self.node_client.items() if c in names and n in online]
        if not nodes:
            return {}
        ins = Instruction(self.params, round_, tuple(names), self.digest)
        replies, silent = self._exchange(ins, nodes, MessageType.EVALUATE)
        out: dict[str, ClientEval] = {}
        for node, msg in replies.items():
            name = self.node_client[node]
            if msg.has_error():
                out[name] = ClientEval(name, round_, Scores(0), error=f"its ClientApp failed to evaluate ({msg.error.reason})")
                continue
            if not msg.content.metric_records:  # the site was not selected
                continue
            try:
                ev = EvalReport.read(msg.content).result
            except InvalidUpdate as err:
                out[name] = ClientEval(name, round_, Scores(0), error=str(err))
                continue
            if ev.client != name or ev.round != round_:
                out[name] = ClientEval(name, round_, Scores(0), error=f"answered for {ev.client} round {ev.round}")
                continue
            if ev.cost.tasks or ev.cost.shots or ev.cost.usd:
                self.ledger.charge(name, round_, ev.cost)
            out[name] = ev
        for node, reason in silent.items():
            name = self.node_client[node]
            out[name] = ClientEval(name, round_, Scores(0), error=reason)
        return out

    def _exchange(
        self, ins: Instruction, nodes: list[int], kind: str = MessageType.TRAIN
    ) -> tuple[dict[int, Message], dict[int, str]]:
        """Push ``ins`` to each node, then poll until every node answered, went offline or timed out."""
        pending: dict[str, int] = {}
        for node in nodes:
            msg = Message(ins.content(), dst_node_id=node, message_type=kind, group_id=f"{kind}-{ins.round}")
            for mid in self.grid.push_messages([msg]):
                pending[mid] = node
        replies: dict[int, Message] = {}
        silent: dict[int, str] = {}
        deadline = time.monotonic() + self.round_timeout
        while pending:
            for msg in self.grid.pull_messages(list(pending)):
                found = pending.pop(msg.metadata.reply_to_message_id, None)
                if found is not None:
                    replies[found] = msg
            if not pending:
                break
            if time.monotonic() >= deadline:
                for node in pending.values():
                    silent[node] = f"no reply within round_timeout={self.round_timeout:g}s"
                break
            online = set(self.grid.get_node_ids())
            for mid in [m for m, n in pending.items() if n not in online]:
                silent[pending.pop(mid)] = "its SuperNode went offline during the round"
            time.sleep(self.poll_seconds)
        return replies, silent


def run_config_spec(config: dict) -> tuple[JobSpec, str | None]:
    """The spec a run was started with: inline (``spec-b64``, sent by ``qflhw flower run``) or a
    path on the server machine (``spec``); and the spec's text, to keep next to the outputs."""
    inline, path = str(config.get("spec-b64", "")), str(config.get("spec", ""))
    if inline:
        try:
            text = base64.b64decode(inline.encode(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"run config spec-b64 is not base64-encoded UTF-8 TOML ({err})") from err
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"run config spec-b64: not valid TOML ({err})") from err
        return parse_spec(raw, "run config spec-b64"), text
    if path:
        return load_spec(path), Path(path).read_text(encoding="utf-8")
    raise ConfigError("the run config has neither spec nor spec-b64; run it with `qflhw flower run SPEC ...`")


def serve(
    spec: JobSpec, run_dir: Path, grid: Grid, *, spec_text: str | None = None, tensorboard: str | Path | None = None,
    **options: object,
) -> dict:
    """Run ``spec`` over ``grid`` into ``run_dir``; returns the summary (as ``Federation.run``);
    ``tensorboard``: also write TensorBoard scalars under that folder."""
    fed = FlowerFederation(spec, run_dir, grid, **options)  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    if spec_text is not None:
        (run_dir / "spec.toml").write_text(spec_text, encoding="utf-8")
    fed.round_hooks.append(
        lambda f, r: log(
            INFO, "round %d/%d: test accuracy %.3f, %s", r + 1, spec.rounds, f.rows[-1]["global_test_accuracy"],
            ", ".join(f"{row['client']} {row['status']}" for row in f.rows if row["round"] == r),
        )
    )
    summary = run_with_hooks(fed, tensorboard)
    log(INFO, "run %s finished: outputs in %s", fed.run_id, run_dir)
    return summary


def make_server_app(
    spec: JobSpec | None = None, run_dir: Path | None = None, *, sink: dict | None = None, **options: object
) -> ServerApp:
    """A ServerApp for ``spec`` into ``run_dir`` (simulation), or, when they are None, for the spec
    and ``out`` in the run config (deployment: ``spec`` / ``spec-b64``, ``out``, ``round-timeout``,
    ``wait-for-nodes``). ``sink`` receives the summary under ``"summary"``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = dict(context.run_config)
        text = None
        job = spec
        if job is None:
            job, text = run_config_spec(cfg)
        out = run_dir if run_dir is not None else new_run_dir(job, str(cfg.get("out", "")) or None)
        opts = dict(options)
        for key, name in (("round-timeout", "round_timeout"), ("wait-for-nodes", "wait_for_nodes")):
            if key in cfg and name not in opts:
                opts[name] = float(cfg[key])
        tensorboard = opts.pop("tensorboard", None)
        summary = serve(job, Path(out), grid, spec_text=text, tensorboard=str(tensorboard) if tensorboard else None, **opts)
        if sink is not None:
            sink["summary"] = summary

    return app


server_app = make_server_app()
