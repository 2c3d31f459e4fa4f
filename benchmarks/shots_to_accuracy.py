"""Shots needed to reach a test accuracy on the quickstart task, for three gradient strategies.

Workload (issue 5): ``jobs/quickstart.toml`` (three clients on fake Torino, Brisbane and IQM
Garnet twins, digits 0 vs 1, 4-qubit rot-crx model) with finite shots. The batch size is raised
to the 48 training rows of a client (``--batch-size``), so a round is one full-batch step per
client and the global test accuracy is checked after every step. With the quickstart's own batch
of 8 (6 steps per round) every strategy reaches 0.9 within one or two rounds whatever the shots,
so the count only resolves whole rounds (``--batch-size 8`` shows it).

* ``parameter-shift``: every gradient term at ``s`` shots per circuit, every step;
* ``spsa``: one random simultaneous perturbation per step (3 circuits per data row: value and
  two shifts, instead of 1 + 2 x parameters), at ``s`` shots per circuit;
* ``adaptive``: parameter shift with iCANS-style shots per step (qflhw.execution.shots.AdaptiveShots),
  starting at ``s`` and never below ``min(--min-shots, s)``.

Each strategy runs at every ``s`` of ``--shots`` with ``--seeds`` seeds (data split, initial
weights, shot noise). Shots are what the run's ledger charged, summed over all clients, up to the
first round whose global test accuracy (ideal statevector evaluation of the aggregated model) is
at least ``--target``. Reported: the median over seeds for each ``s``, and per strategy the
smallest median (at its best ``s``).

Run: python benchmarks/shots_to_accuracy.py [--seeds 3] [--shots 2,10,100,1000] [--max-rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
import warnings
from pathlib import Path

from qflhw.config.spec import parse_spec
from qflhw.federation.loop import Federation

QUICKSTART = Path(__file__).resolve().parent.parent / "jobs" / "quickstart.toml"


def strategies(shots: int, min_shots: int) -> dict[str, dict]:
    """The ``[training]`` overrides of each strategy at ``shots`` per circuit."""
    return {
        "parameter-shift": {"gradient": "parameter-shift", "shots": shots},
        "spsa": {"gradient": "spsa", "shots": shots},
        "adaptive": {
            "gradient": "parameter-shift",
            "adaptive_shots": True,
            "shots": shots,
            "min_shots": min(min_shots, shots),
            "max_shots": 10_000,
        },
    }


def shots_to_target(raw: dict, overrides: dict, seed: int, target: float, max_rounds: int, batch_size: int) -> tuple[int | None, int, int]:
    """(shots when the target was first reached or None, rounds run, shots spent in all)."""
    raw = {**raw, "seed": seed, "rounds": max_rounds, "training": {**raw["training"], **overrides, "batch_size": batch_size}}
    spec = parse_spec(raw, str(QUICKSTART))
    with tempfile.TemporaryDirectory() as tmp:
        fed = Federation(spec, Path(tmp) / "run", progress=False)
        for r in range(max_rounds):
            acc, _ = fed.run_round(r)
            if acc >= target:
                return fed.ledger.spent.shots, r + 1, fed.ledger.spent.shots
        return None, max_rounds, fed.ledger.spent.shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shots", default="2,10,100,1000", help="shots per circuit to try (adaptive: first step's)")
    ap.add_argument("--min-shots", type=int, default=8, help="adaptive: fewest shots per circuit")
    ap.add_argument("--max-rounds", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=48, help="48 = one full-batch step per round")
    ap.add_argument("--only", default="", help="comma-separated strategies to run (default all)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    raw = tomllib.loads(QUICKSTART.read_text(encoding="utf-8"))
    grid = [int(s) for s in args.shots.split(",")]
    names = args.only.split(",") if args.only else list(strategies(1, 1))
    seeds = list(range(args.seeds))
    print(f"target test accuracy {args.target}; seeds {seeds}; at most {args.max_rounds} rounds of batch {args.batch_size}")
    print(f"{'strategy':16} {'shots':>6}  shots to target per seed (rounds)  median")
    best: dict[str, tuple[float, int] | None] = {}
    t0 = time.perf_counter()
    for name in names:
        best[name] = None
        for shots in grid:
            overrides = strategies(shots, args.min_shots)[name]
            runs = [shots_to_target(raw, overrides, seed, args.target, args.max_rounds, args.batch_size) for seed in seeds]
            cells = "  ".join(f"{s:,} ({r})" if s is not None else f"- ({spent:,})" for s, r, spent in runs)
            med = statistics.median(s for s, _, _ in runs) if all(s is not None for s, _, _ in runs) else None
            print(f"{name:16} {shots:>6}  {cells}  {f'{med:,.0f}' if med is not None else 'not reached by all'}", flush=True)
            if med is not None and (best[name] is None or med < best[name][0]):
                best[name] = (med, shots)
    print(f"\n({time.perf_counter() - t0:.0f} s) fewest median shots to reach {args.target}, best shots per circuit in brackets:")
    for name, b in best.items():
        print(f"  {name:16} " + (f"{b[0]:>12,.0f}  ({b[1]} shots/circuit)" if b else "not reached"))
    base = best.get("parameter-shift")
    if base:
        others = ", ".join(f"{k} {base[0] / v[0]:.1f}x" for k, v in best.items() if v and k != "parameter-shift")
        print(f"fewer shots than uniform parameter-shift: {others or 'none reached the target'}")


if __name__ == "__main__":
    main()
