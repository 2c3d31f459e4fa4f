"""Time per optimizer step of Flower's quickstart-pennylane task: qflhw.qpu against PennyLane's own noisy paths.

Workload: the network of ``examples/flower-pennylane`` (dense layers on 8x8 digits, then
AngleEmbedding + BasicEntanglerLayers(3 layers) on 4 qubits in a ``qml.qnn.TorchLayer``, then a
dense output layer), a batch of 8 digits, Adam, cross-entropy, 1000 shots per circuit. The
TorchLayer's inputs need gradients (they come from a trainable layer), so every step evaluates
8 circuits and 8 x (4 inputs + 12 weights) x 2 = 256 parameter-shifted ones: 264 circuits.

* ``qflhw.qpu``: ``qml.device("qflhw.qpu", wires=4, profile="fake_torino", shots=1000)``, the
  default gradient (values and parameter-shift Jacobian from one provider job); transpiled for
  Torino (routing, native gates), its calibrated gate, relaxation and asymmetric readout noise.
* ``default.mixed``: PennyLane's density-matrix device with Torino's noise as a user writes it
  from the same calibration: depolarizing channels at the median 1q / 2q gate errors after every
  gate, and a bit flip at the median readout error before measurement (``qml.add_noise`` and a
  small transform; ``readout_prob=`` crashes in PennyLane 0.45.1). ``diff_method="parameter-shift"``
  with ``qml.transforms.broadcast_expand`` (parameter shift cannot differentiate broadcast inputs).
* ``qiskit.aer``: pennylane-qiskit's Aer device with ``noise_model=NoiseModel.from_backend(FakeTorino())``,
  the same QNode as default.mixed. Only when pennylane-qiskit is installed; its 0.45 release pins
  qiskit<=2.3, so install it with ``pip install --no-deps pennylane-qiskit==0.45.0``.

Each path runs one untimed warm-up step (transpilation, noise models), then ``--steps`` timed
steps; the speedup is against the fastest baseline that ran.

Run: python benchmarks/plugin_speed.py [--steps 2]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np

N, LAYERS, BATCH, SHOTS = 4, 3, 8, 1000


def qfunc(inputs, weights):  # noqa: ANN001, ANN201 - the quickstart's circuit
    import pennylane as qml

    qml.AngleEmbedding(inputs, wires=range(N))
    qml.BasicEntanglerLayers(weights, wires=range(N))
    return [qml.expval(qml.PauliZ(i)) for i in range(N)]


def network(qnode):  # noqa: ANN001, ANN201
    import pennylane as qml
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, N), torch.nn.ReLU(),
        qml.qnn.TorchLayer(qnode, {"weights": (LAYERS, N)}), torch.nn.Linear(N, 10),
    )


def qflhw_qnode():  # noqa: ANN201
    import pennylane as qml

    dev = qml.device("qflhw.qpu", wires=N, profile="fake_torino", shots=SHOTS, seed=1)
    return qml.QNode(qfunc, dev, interface="torch"), dev


def pennylane_qnode(dev, *noise: Callable):  # noqa: ANN001, ANN201
    """The QNode a PennyLane user writes for a shot-based noisy simulator with trainable inputs."""
    import pennylane as qml

    q = qml.set_shots(qml.QNode(qfunc, dev, interface="torch", diff_method="parameter-shift"), shots=SHOTS)
    for wrap in noise:
        q = wrap(q)
    return qml.transforms.broadcast_expand(q), dev


def default_mixed_qnode():  # noqa: ANN201
    import pennylane as qml

    from qflhw.calibration.snapshot import load

    med = load("ibm_torino").median_errors()

    @qml.transform
    def readout_flip(tape, p):  # noqa: ANN001, ANN202
        ops = tape.operations + [qml.BitFlip(p, wires=w) for w in tape.wires]
        return [tape.copy(operations=ops)], lambda res: res[0]

    noise = qml.NoiseModel({
        qml.noise.op_in(["RX", "RY", "RZ"]): qml.noise.partial_wires(qml.DepolarizingChannel, med["1q"]),
        qml.noise.op_eq("CNOT"): lambda op, **kw: [qml.DepolarizingChannel(med["2q"], w) for w in op.wires],
    })
    dev = qml.device("default.mixed", wires=N)
    return pennylane_qnode(dev, lambda q: qml.add_noise(q, noise), lambda q: readout_flip(q, med["readout"]))


def qiskit_aer_qnode():  # noqa: ANN201
    import pennylane as qml
    from qiskit_aer.noise import NoiseModel
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    dev = qml.device("qiskit.aer", wires=N, noise_model=NoiseModel.from_backend(FakeTorino()), seed_simulator=1)
    return pennylane_qnode(dev)


def time_steps(make, steps: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(setup + warm-up seconds, mean seconds per timed step, final loss)."""
    import torch
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    xb, yb = torch.tensor(x[:BATCH] / 16.0, dtype=torch.float32), torch.tensor(y[:BATCH])
    t0 = time.perf_counter()
    qnode, _ = make()
    net = network(qnode)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)

    def step() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step()
    setup = time.perf_counter() - t0
    times, loss = [], 0.0
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    return setup, float(np.mean(times)), loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="timed optimizer steps per path (after one warm-up step)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    paths = {"qflhw.qpu (fake_torino)": qflhw_qnode, "default.mixed (Torino medians)": default_mixed_qnode}
    try:
        import pennylane_qiskit  # noqa: F401

        paths["qiskit.aer (NoiseModel.from_backend(FakeTorino()))"] = qiskit_aer_qnode
    except ImportError:
        print("qiskit.aer: skipped (pip install --no-deps pennylane-qiskit==0.45.0 to include it)")
    results = {}
    for name, make in paths.items():
        setup, per_step, loss = time_steps(make, args.steps)
        results[name] = per_step
        print(f"{name:52} setup+warm-up {setup:6.2f} s   per step {per_step:7.3f} s   loss {loss:.3f}", flush=True)
    ours = results.pop("qflhw.qpu (fake_torino)")
    fastest = min(results, key=results.__getitem__)
    print(f"264 circuits x {SHOTS} shots per step; fastest baseline: {fastest}")
    print(f"plugin_speedup: {results[fastest] / ours:.1f}")


if __name__ == "__main__":
    main()
