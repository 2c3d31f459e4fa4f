"""Barren plateaus, measured, and whether negative learning-rate phases help a deep model out of one.

Part 1 (the effect). A random hardware-efficient circuit: RY(pi/4) on every qubit, then ``L``
layers of RY(a) RZ(b) on every qubit followed by a CZ ladder, angles uniform in [0, 2 pi). Cost:
<Z0 Z1>. The derivative with respect to the first RY angle is computed exactly by the two-term
parameter-shift rule on PennyLane's ``default.qubit`` statevector, for ``--samples`` random circuits
at once (parameter broadcasting), and its variance over circuits is reported:

* against the qubit count ``n`` (4 to ``--max-qubits``, depth ``L = 5 n``), with a least-squares fit
  ``log2 Var = a + b n``. McClean et al. (arXiv:1803.11173) show that for circuits deep enough to
  form a unitary 2-design the variance vanishes exponentially, ``Var ~ 2^-n`` for this local cost
  (Cerezo et al., arXiv:2001.00550), so the theory predicts ``b`` near -1. The script stops (exit
  status 1) if the measured variance does not decrease with ``n``, before any training;
* against the depth ``L`` at ``--depth-qubits`` qubits: it falls with depth and saturates at the
  2-design value.

Part 2 (negative phases). A deep model of ``--train-qubits`` qubits and ``--train-layers`` layers of
the same circuit with the global cost ``1 - P(0...0)`` (a barren landscape at random
initialization) is trained with Adam (lr ``--lr``) and with plain SGD (lr ``--sgd-lr``) for
``--steps`` steps, exact gradients (PennyLane ``lightning.qubit``, adjoint method), from ``--seeds``
random initializations, three ways each: no schedule; ``[training.lr_schedule] kind =
"sign-switch"`` (10 positive steps, 2 negative at -1 x lr) with ``trigger = "steps"``; and the same
with ``trigger = "grad-norm"`` (negative phases only while the gradient norm is below 0.1). The
schedule is qflhw's (qflhw.training.lr_schedule), wrapped around the same torch optimizer.
Reported per variant: the loss reached at the end, the best loss, and the first step with loss
<= 0.5 and <= 0.1 (never reached: "-"), each over seeds, as measured.

Run: python benchmarks/barren_plateau.py [--samples 200] [--max-qubits 10] [--seeds 3] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import pennylane as qml
import torch

from qflhw.config.spec import LRScheduleSpec
from qflhw.training.lr_schedule import make_scheduler, step


def gradient_variance(n: int, layers: int, samples: int, seed: int) -> float:
    """Variance over random circuits of d<Z0 Z1>/d(first RY angle), exact parameter shift."""
    rng = np.random.default_rng(seed)
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def cost(theta):  # noqa: ANN001, ANN202
        for q in range(n):
            qml.RY(np.pi / 4, wires=q)
        for layer in range(layers):
            for q in range(n):
                qml.RY(theta[:, layer, q, 0], wires=q)
                qml.RZ(theta[:, layer, q, 1], wires=q)
            for q in range(n - 1):
                qml.CZ(wires=[q, q + 1])
        return qml.expval(qml.PauliZ(0) @ qml.PauliZ(1))

    theta = rng.uniform(0, 2 * np.pi, size=(samples, layers, n, 2))
    plus, minus = theta.copy(), theta.copy()
    plus[:, 0, 0, 0] += np.pi / 2
    minus[:, 0, 0, 0] -= np.pi / 2
    grad = (np.asarray(cost(plus)) - np.asarray(cost(minus))) / 2
    return float(np.var(grad))


def deep_model(n: int, layers: int):  # noqa: ANN201
    dev = qml.device("lightning.qubit", wires=n)

    @qml.qnode(dev, diff_method="adjoint")
    def overlap(theta):  # noqa: ANN001, ANN202
        for q in range(n):
            qml.RY(np.pi / 4, wires=q)
        for layer in range(layers):
            for q in range(n):
                qml.RY(theta[layer, q, 0], wires=q)
                qml.RZ(theta[layer, q, 1], wires=q)
            for q in range(n - 1):
                qml.CZ(wires=[q, q + 1])
        return qml.expval(qml.Projector([0] * n, wires=range(n)))

    return overlap, qml.grad(overlap)


def train(n: int, layers: int, steps: int, seed: int, lr: float, schedule: LRScheduleSpec, optimizer: str = "adam") -> list[float]:
    """Losses 1 - P(0...0) before each optimizer step (exact gradients), with ``schedule``."""
    from pennylane import numpy as pnp

    overlap, grad = deep_model(n, layers)
    init = np.random.default_rng(1000 + seed).uniform(0, 2 * np.pi, size=(layers, n, 2))
    theta = torch.nn.Parameter(torch.tensor(init, dtype=torch.float64))
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([theta], lr=lr)
    sched = make_scheduler(opt, schedule)
    losses = []
    for _ in range(steps):
        x = pnp.array(theta.detach().numpy(), requires_grad=True)
        losses.append(1.0 - float(overlap(x)))
        opt.zero_grad()
        theta.grad = torch.tensor(-np.asarray(grad(x)), dtype=torch.float64)  # d(1 - P)/d theta
        opt.step()
        step(sched, [theta])
    return losses


def first(losses: list[float], level: float) -> int | None:
    return next((i for i, v in enumerate(losses) if v <= level), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200, help="random circuits per variance estimate")
    ap.add_argument("--max-qubits", type=int, default=10)
    ap.add_argument("--depth-qubits", type=int, default=6)
    ap.add_argument("--train-qubits", type=int, default=8)
    ap.add_argument("--train-layers", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    ap.add_argument("--sgd-lr", type=float, default=0.2, help="SGD learning rate")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()

    print(f"Part 1: Var of d<Z0 Z1>/d theta_1 over {args.samples} random hardware-efficient circuits (exact)")
    print(f"{'qubits':>6} {'layers':>6} {'variance':>12} {'log2 var':>9}")
    ns = list(range(4, args.max_qubits + 1))
    var = []
    for n in ns:
        v = gradient_variance(n, 5 * n, args.samples, seed=n)
        var.append(v)
        print(f"{n:>6} {5 * n:>6} {v:>12.4e} {np.log2(v):>9.2f}")
    b, a = np.polyfit(ns, np.log2(var), 1)
    print(f"fit: log2 Var = {a:.2f} + ({b:.3f}) x qubits  (theory for a 2-design: slope -1, Var ~ 2^-n)")
    decreasing = b < 0 and var[-1] < var[0]
    print(f"variance decreases with qubits: {'yes' if decreasing else 'NO'}")
    print(f"\nvariance against depth at {args.depth_qubits} qubits:")
    print(f"{'layers':>6} {'variance':>12}")
    for layers in (1, 2, 4, 8, 16, 32, 64):
        print(f"{layers:>6} {gradient_variance(args.depth_qubits, layers, args.samples, seed=100 + layers):>12.4e}")
    if not decreasing:
        print("the measured variance does not decrease with qubits: no claim about negative phases is made")
        return 1

    n, L = args.train_qubits, args.train_layers
    print(f"\nPart 2: {n} qubits x {L} layers ({2 * n * L} parameters), cost 1 - P(0...0), {args.steps} steps, "
          f"{args.seeds} seeds (exact gradients)")
    from pennylane import numpy as pnp

    _, grad = deep_model(n, L)
    rngs = [np.random.default_rng(1000 + s) for s in range(args.seeds)]  # the initializations train() uses
    inits = [pnp.array(r.uniform(0, 2 * np.pi, size=(L, n, 2)), requires_grad=True) for r in rngs]
    norms = [float(np.linalg.norm(grad(x))) for x in inits]
    print(f"gradient norm at the random initializations: {', '.join(f'{v:.3g}' for v in norms)}")
    variants = {
        "no schedule": LRScheduleSpec(),
        "sign-switch, steps (10 +, 2 -, x1.0)": LRScheduleSpec(kind="sign-switch", positive_steps=10, negative_steps=2, negative_scale=1.0),
        "sign-switch, grad-norm < 0.1": LRScheduleSpec(
            kind="sign-switch", positive_steps=10, negative_steps=2, negative_scale=1.0, trigger="grad-norm", grad_norm_below=0.1
        ),
    }
    print(f"{'optimizer, variant':<52} {'final loss':>16} {'best loss':>16} {'steps to <=0.5':>16} {'steps to <=0.1':>16}")
    for (opt_name, lr), (name, sched) in [(o, v) for o in (("adam", args.lr), ("sgd", args.sgd_lr)) for v in variants.items()]:
        runs = [train(n, L, args.steps, seed, lr, sched, opt_name) for seed in range(args.seeds)]
        final = [r[-1] for r in runs]
        best = [min(r) for r in runs]
        half = [first(r, 0.5) for r in runs]
        tenth = [first(r, 0.1) for r in runs]

        def show(xs: list[int | None]) -> str:
            return " ".join("-" if x is None else str(x) for x in xs)

        label = f"{opt_name} lr {lr:g}, {name}"
        print(f"{label:<52} {statistics.mean(final):>9.3f} ± {statistics.pstdev(final):.3f} "
              f"{statistics.mean(best):>9.3f} ± {statistics.pstdev(best):.3f} {show(half):>16} {show(tenth):>16}")
    print(f"\n(per-seed step counts; '-' = not reached in {args.steps} steps) total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
