"""The ServerApp of Flower's quickstart-pennylane: FedAvg, and a global evaluation on a noiseless simulator."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from flower_pennylane.task import QuantumNet, load_data, test

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    n_qubits, n_layers = int(cfg.get("n-qubits", 4)), int(cfg.get("n-layers", 3))
    global_model = QuantumNet(10, n_qubits, n_layers)  # default.qubit: the server has no QPU
    strategy = FedAvg(fraction_train=float(cfg.get("fraction-train", 1.0)), fraction_evaluate=float(cfg.get("fraction-evaluate", 1.0)))
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(global_model.state_dict()),
        train_config=ConfigRecord({"lr": float(cfg.get("learning-rate", 0.01))}),
        num_rounds=int(cfg.get("num-server-rounds", 3)),
        evaluate_fn=lambda server_round, arrays: global_evaluate(arrays, n_qubits, n_layers),
    )
    print("final global accuracy", result.evaluate_metrics_serverapp)


def global_evaluate(arrays: ArrayRecord, n_qubits: int, n_layers: int) -> MetricRecord:
    """The global model on every client's validation rows, with exact noiseless expectations."""
    model = QuantumNet(10, n_qubits, n_layers)
    model.load_state_dict(arrays.to_torch_state_dict())
    _, testloader = load_data(partition_id=0, num_partitions=1, batch_size=128)
    loss, accuracy = test(model, testloader, model.fc_out.weight.device)
    return MetricRecord({"accuracy": accuracy, "loss": loss})
