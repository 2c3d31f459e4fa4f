"""The Flower ClientApp: answers the server's training instructions with this site's client.

``client_app`` is what a SuperNode runs (training and, after each aggregation, scoring the new
global model on the site's own test rows) (the Flower App's ``clientapp`` component); it finds its
spec and client in the SuperNode's ``--node-config``. :func:`make_client_app` builds one with
defaults for Flower's simulation engine, where all sites share one machine.

Trouble inside a round (a failed job, an exhausted budget, a spec that does not match the
server's) comes back as a normal report with an error, so the server records a dropout with the
reason; only a site that cannot tell who it is raises, and Flower reports that as an error reply.
"""

from __future__ import annotations

from pathlib import Path

from qflhw.flower import require_flwr

require_flwr()  # a clear error without the extra; Flower's telemetry off by default

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from qflhw.errors import QflhwError
from qflhw.flower.records import EvalReport, Instruction
from qflhw.flower.site import CLIENT_KEY, STATE_KEY, dropped_report, open_site
from qflhw.training.local_eval import ClientEval
from qflhw.training.metrics import Scores


def make_client_app(spec: str | Path | None = None, root: str | Path | None = None) -> ClientApp:
    """A ClientApp whose sites default to ``spec`` and journal under ``root`` (node config wins)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        ins = Instruction.read(msg.content)
        try:
            site = open_site(context.node_config, flower_run=context.run_id, spec=spec, root=root)
        except QflhwError as err:
            name = context.node_config.get(CLIENT_KEY)
            if not name:
                raise
            return Message(dropped_report(str(name), ins.round, f"site setup failed: {err}").content(), reply_to=msg)
        saved = context.state.config_records.get(STATE_KEY)
        blob = saved["blob"] if saved else None
        report, state = site.train(ins, blob if isinstance(blob, bytes) else None)
        if state is not None:
            context.state[STATE_KEY] = ConfigRecord({"blob": state})
        return Message(report.content(), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        ins = Instruction.read(msg.content)
        name = context.node_config.get(CLIENT_KEY)
        try:
            site = open_site(context.node_config, flower_run=context.run_id, spec=spec, root=root)
        except QflhwError as err:
            if not name:
                raise
            failed = ClientEval(str(name), ins.round, Scores(0), error=f"site setup failed: {err}")
            return Message(EvalReport(failed).content(), reply_to=msg)
        saved = context.state.config_records.get(STATE_KEY)
        blob = saved["blob"] if saved else None
        report, state = site.evaluate(ins, blob if isinstance(blob, bytes) else None)
        if state is not None:
            context.state[STATE_KEY] = ConfigRecord({"blob": state})
        if report is None:  # not this round's client: an empty answer the server skips
            return Message(RecordDict({}), reply_to=msg)
        return Message(report.content(), reply_to=msg)

    return app


client_app = make_client_app()
