"""The ClientApp of Flower's quickstart-pennylane; each client trains on its own qflhw device."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_pennylane.task import QuantumNet, load_data
from flower_pennylane.task import test as test_fn
from flower_pennylane.task import train as train_fn

app = ClientApp()

DEFAULTS = {"n-qubits": 4, "n-layers": 3, "batch-size": 16, "local-epochs": 1, "shots": 1000, "max-train": 64,
            "profiles": "fake_torino,fake_iqm_garnet,fake_fez", "journal-dir": ""}


def _setting(context: Context, key: str):  # noqa: ANN202
    return context.run_config.get(key, DEFAULTS[key])


def _model(context: Context) -> tuple[QuantumNet, int, int]:
    """This client's network on its device: profile ``profiles[partition-id]`` (or node config ``qflhw-profile``)."""
    pid, parts = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    profiles = [p.strip() for p in str(_setting(context, "profiles")).split(",") if p.strip()]
    profile = str(context.node_config.get("qflhw-profile") or profiles[pid % len(profiles)])
    journal = str(_setting(context, "journal-dir"))
    net = QuantumNet(
        10, int(_setting(context, "n-qubits")), int(_setting(context, "n-layers")), profile,
        shots=int(_setting(context, "shots")), seed=pid, journal=f"{journal}/client-{pid}" if journal else "",
    )
    return net, pid, parts


@app.train()
def train(msg: Message, context: Context) -> Message:
    model, pid, parts = _model(context)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    trainloader, valloader = load_data(pid, parts, int(_setting(context, "batch-size")), int(_setting(context, "max-train")))
    results = train_fn(model, trainloader, valloader, int(_setting(context, "local-epochs")), msg.content["config"]["lr"],
                       torch.device("cpu"))
    report = model.qpu.report()
    model.qpu.close()
    metrics = {**results, "num-examples": len(trainloader.dataset), "qpu-jobs": report["jobs"], "qpu-shots": report["shots"],
               "qpu-cost-usd": report["cost_usd"], "esp": report["esp"]}
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    model, pid, parts = _model(context)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    _, valloader = load_data(pid, parts, int(_setting(context, "batch-size")))
    loss, accuracy = test_fn(model, valloader, torch.device("cpu"))
    model.qpu.close()
    metrics = {"eval_loss": loss, "eval_accuracy": accuracy, "num-examples": len(valloader.dataset)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
