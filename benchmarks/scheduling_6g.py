"""The 6G case study's scheduling, measured: sum rate against iterations, and accuracy against wall clock.

Part 1 (the uplink alone, the paper's size). One round's channels of ``--clients`` devices (200) on
``--subchannels`` sub-channels (20) of 180 kHz, distances in [1 m, 1.8 km], Rician fading, powers
in [0, 24] dBm (qflhw.federation.wireless), for ``--seeds`` channel draws. Each scheduler of
``[scheduling]`` starts from the same round-robin assignment at full power:

* ``all`` (round-robin) and ``random``: no search;
* ``greedy``: best-response sub-channel moves + power BCD, ``--iterations`` alternations;
* ``qaoa``: blocks of 2 clients x 4 sub-channels (8 qubits) as QUBOs solved by QAOA (exact
  statevector) + power BCD, ``--qaoa-iterations`` alternations;
* ``qaoa, blocks solved exhaustively``: the same blocks with every assignment tried, the classical
  reference of the same decomposition (not a qflhw method).

Printed: the sum rate (Mbit/s) after each iteration, the iterations to reach 95% of the final
value, and the time. arXiv:2509.10559 reports (its Fig. 4a, 150 iterations) about 35% more sum
rate and 40% faster convergence for QAOA than its classical baseline, successive convex
approximation (SCA), which qflhw does not implement: greedy is the classical baseline here.

Part 2 (``--study DIR``: a finished ``qflhw study jobs/6g-qaoa.toml``). Per scheduler, over seeds:
the mean sum rate per round, clients that made the upload deadline per round, the final test
accuracy, the wall clock (sum of the rounds' upload latencies) and the accuracy reached at a few
wall-clock times; ``accuracy_vs_wall_clock.png`` in DIR.

Run: python benchmarks/scheduling_6g.py [--clients 200] [--subchannels 20] [--seeds 2] [--study runs/6g-qaoa-study]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import numpy as np

from qflhw.config.spec import SchedulingSpec
from qflhw.federation import scheduling, wireless


def to_95(history: list[float]) -> int:
    """Iterations until the sum rate first reaches 95% of its final gain over the start."""
    start, end = history[0], history[-1]
    if end <= start:
        return 0
    return next(i for i, h in enumerate(history) if h - start >= 0.95 * (end - start))


def uplink_part(args: argparse.Namespace) -> None:
    print(f"Part 1: sum rate of one round's uplink, {args.clients} clients on {args.subchannels} sub-channels of 180 kHz")
    runs: dict[str, list[tuple[list[float], float]]] = {}
    variants = [
        ("all (round-robin)", {"method": "all"}, None),
        ("random", {"method": "random"}, None),
        ("greedy", {"method": "greedy", "iterations": args.iterations}, None),
        ("qaoa", {"method": "qaoa", "iterations": args.qaoa_iterations}, None),
        ("qaoa, blocks solved exhaustively", {"method": "qaoa", "iterations": args.qaoa_iterations}, scheduling.exhaustive_solver),
    ]
    for seed in range(args.seeds):
        base = SchedulingSpec(subchannels=args.subchannels)
        link = wireless.uplink(base, args.clients, seed, 0)
        for name, options, solver in variants:
            spec = base.model_copy(update=options)
            t0 = time.process_time()
            _, _, hist = scheduling.optimize(link, spec, np.random.default_rng(seed), solver=solver)
            runs.setdefault(name, []).append((hist, time.process_time() - t0))
    print(f"{'scheduler':<34} {'sum rate after each iteration, Mbit/s (mean over seeds)':<64} {'to 95%':>7} {'cpu s':>7}")
    for name, rs in runs.items():
        n = min(len(h) for h, _ in rs)
        mean = [statistics.mean(h[i] for h, _ in rs) / 1e6 for i in range(n)]
        steps = statistics.mean(to_95(h) for h, _ in rs)
        print(f"{name:<34} {' '.join(f'{v:.2f}' for v in mean):<64} {steps:>7.1f} {statistics.mean(t for _, t in rs):>7.1f}")
    final = {name: statistics.mean(h[-1] for h, _ in rs) for name, rs in runs.items()}
    q, g = final["qaoa"], final["greedy"]
    print(f"qaoa vs greedy: {100 * (q / g - 1):+.1f}% sum rate; qaoa vs round-robin: {100 * (q / final['all (round-robin)'] - 1):+.1f}%; "
          f"qaoa vs the same blocks solved exhaustively: {100 * (q / final['qaoa, blocks solved exhaustively'] - 1):+.1f}%")


def study_part(study: Path) -> None:
    print(f"\nPart 2: {study}")
    by_method: dict[str, list[dict]] = {}
    for cell in sorted((study / "cells").iterdir()):
        if not (cell / "summary.json").is_file():
            continue
        summary = json.loads((cell / "summary.json").read_text())
        with open(cell / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        ok = [sum(1 for r in rows if int(r["round"]) == k and r["status"] == "ok") for k in range(summary["rounds"])]
        by_method.setdefault(summary["scheduling"]["method"], []).append({**summary, "clients_ok": ok})
    if not by_method:
        print("no finished cells")
        return
    print(f"{'scheduler':<10} {'seeds':>5} {'sum rate Mbit/s':>16} {'clients/round':>14} {'final accuracy':>15} {'wall clock s':>13}")
    curves = {}
    for method, cells in by_method.items():
        sr = statistics.mean(np.mean(c["scheduling"]["sum_rate_bps"]) / 1e6 for c in cells)
        ok = statistics.mean(np.mean(c["clients_ok"]) for c in cells)
        acc = [c["final_test_accuracy"] for c in cells]
        wall = statistics.mean(c["scheduling"]["wall_clock_s"][-1] for c in cells)
        spread = f"{statistics.mean(acc):.3f} ± {statistics.pstdev(acc):.3f}"
        print(f"{method:<10} {len(cells):>5} {sr:>16.2f} {ok:>14.1f} {spread:>15} {wall:>13.3f}")
        curves[method] = [(c["scheduling"]["wall_clock_s"], c["accuracy_per_round"]) for c in cells]
    print("sum rate after each iteration of a round (Mbit/s, mean over rounds and seeds):")
    for method, cells in by_method.items():
        hist = [h for c in cells for h in c["scheduling"]["sum_rate_per_iteration"]]
        n = min(len(h) for h in hist)
        print(f"  {method:<8} " + " ".join(f"{statistics.mean(h[i] for h in hist) / 1e6:.2f}" for i in range(n)))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, cs in curves.items():
        for i, (wall, acc) in enumerate(cs):
            ax.plot(wall, acc, marker=".", color=f"C{list(curves).index(method)}", label=method if i == 0 else None)
    ax.set(xlabel="wall clock: sum of upload latencies, s", ylabel="global test accuracy", title="6G case study (reduced)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(study / "accuracy_vs_wall_clock.png", dpi=100)
    print(f"wrote {study / 'accuracy_vs_wall_clock.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--subchannels", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=2, help="channel draws")
    ap.add_argument("--iterations", type=int, default=10, help="greedy: alternations")
    ap.add_argument("--qaoa-iterations", type=int, default=3, help="qaoa: alternations (each solves every block once)")
    ap.add_argument("--study", type=Path, help="a finished study of jobs/6g-qaoa.toml")
    ap.add_argument("--skip-uplink", action="store_true", help="only part 2")
    args = ap.parse_args()
    if not args.skip_uplink:
        uplink_part(args)
    if args.study:
        study_part(args.study)


if __name__ == "__main__":
    main()
