"""examples/flower-pennylane: Flower's quickstart-pennylane task on two qflhw twins, through Flower's
own ServerApp (FedAvg) and ClientApp, with a grid that delivers messages in this process."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "flower-pennylane"
PROFILES = ("fake_torino", "fake_iqm_garnet")


class InlineGrid:
    """Two SuperNodes whose ClientApp runs here; counts each client's provider jobs after training."""

    def __init__(self, client_app, run_config, journal):  # noqa: ANN001
        from flwr.app import Context, RecordDict

        self.app, self.journal = client_app, journal
        self.contexts = {
            pid + 1: Context(run_id=1, node_id=pid + 1, node_config={"partition-id": pid, "num-partitions": 2}, state=RecordDict(),
                             run_config=run_config)
            for pid in range(2)
        }
        self.after_training: dict[int, list[int]] = {}
        self.train_metrics: dict[int, dict] = {}

    def get_node_ids(self):  # noqa: ANN201
        return list(self.contexts)

    def provider_jobs(self, node: int) -> list[int]:
        """Bindings of every job the client's fake provider received, in the order it received them."""
        from qflhw.devices.base import unpack_result

        store = self.journal / f"client-{node - 1}" / "fake-provider" / PROFILES[node - 1]
        log = (store / "submissions.log").read_text().splitlines() if store.is_dir() else []
        return [unpack_result((store / f"{line.split()[-1]}.job").read_bytes()).metadata["bindings"] for line in log]

    def send_and_receive(self, messages, timeout=None):  # noqa: ANN001, ANN201
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            reply = self.app(msg, self.contexts[node])
            if msg.metadata.message_type == "train":
                self.after_training[node] = self.provider_jobs(node)
                self.train_metrics[node] = dict(reply.content["metrics"])
            replies.append(reply)
        return replies


def test_one_round_on_two_profiles_is_one_job_per_step_per_client(tmp_path, monkeypatch):
    from flwr.app import Context, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.syspath_prepend(str(EXAMPLE))
    for key in ("_run_id", "_task_id", "_node_id"):  # what a Flower process has; Messages need it
        monkeypatch.setattr(TaskIdentity, key, 1)
    from flower_pennylane import client_app, server_app

    journal = tmp_path / "journal"
    config = {"num-server-rounds": 1, "batch-size": 4, "max-train": 8, "n-layers": 1, "local-epochs": 1, "learning-rate": 0.01,
              "profiles": ",".join(PROFILES), "shots": 200, "journal-dir": str(journal)}
    grid = InlineGrid(client_app.app, config, journal)
    torch.manual_seed(0)
    server_app.app(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=config))
    steps = math.ceil(8 / 4)
    rows = 4 + 4 * (4 + 4) * 2  # a step: 4 rows + 4 x (4 inputs + 4 weights) x 2 shifts
    for node in (1, 2):
        jobs = grid.after_training[node]
        # counted at the fake provider: one job per optimizer step, then the validation batches
        # (no gradients: one circuit per row, 128 rows per job) of the 20% validation split
        n_val = len(client_app.load_data(node - 1, 2)[1].dataset)
        assert jobs == [rows] * steps + [min(128, n_val - lo) for lo in range(0, n_val, 128)]
        assert grid.train_metrics[node]["qpu-jobs"] == len(jobs)
        assert grid.train_metrics[node]["qpu-shots"] == sum(jobs) * 200
        assert len(grid.provider_jobs(node)) > len(jobs)  # the evaluation message ran there too
    assert grid.train_metrics[1]["esp"] != grid.train_metrics[2]["esp"]  # two devices, two transpilations


def test_the_device_line_is_the_only_quantum_change():
    text = (EXAMPLE / "flower_pennylane" / "task.py").read_text()
    assert 'qml.device("qflhw.qpu", wires=n_qubits, profile=profile' in text
    assert '@qml.qnode(dev, interface="torch")' in text  # the quickstart's QNode, unchanged
    assert "qml.qnn.TorchLayer(circuit, {\"weights\": (n_layers, n_qubits)})" in text


@pytest.mark.parametrize("name", ["task", "client_app", "server_app"])
def test_example_modules_have_docstrings(name):
    import ast

    tree = ast.parse((EXAMPLE / "flower_pennylane" / f"{name}.py").read_text())
    assert ast.get_docstring(tree)
