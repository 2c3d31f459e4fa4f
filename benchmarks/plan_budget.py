"""`qflhw plan` on the quickstart: time to a plan, the budget kept, and the spread checked on fresh seeds.

Workload (issue 19): ``jobs/quickstart.toml`` (clients on the fake Torino, Brisbane and IQM
Garnet twins; priced on the live profiles they stand for: Torino and Brisbane are retired, so
``ibm_kingston``, and ``iqm_garnet``) planned within ``--budget`` USD with the default ``[plan]``
search, from an empty rehearsal cache, with ``--workers`` processes. Then the chosen plan's twin
spec is run with three fresh seeds (never used by the plan) as ``qflhw run`` would, and their
mean accuracy is compared with the spread the plan printed. The alternative a user would pick
instead is trying settings by hand: the plan's own count of rehearsals says how many runs that is.

``--table`` instead prints the README's "what a budget buys" table: the quickstart task with all
three clients on one twin (Torino, IQM Garnet, IonQ Forte-1) or one client on each, planned at
$10, $100 and $1,000 (a shared cache; the live profiles priced are said in the output).

Run: python benchmarks/plan_budget.py [--budget 100] [--workers 2] | [--table]
The last lines are ``plan_seconds: <s>``, ``within_budget: <bool>`` and ``fresh_mean_inside_spread: <bool>``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

from qflhw.config.spec import load_plan_spec, parse_plan, parse_spec
from qflhw.federation.estimate import estimate_spec
from qflhw.federation.loop import Federation
from qflhw.studies.plan import format_plan, make_plan

QUICKSTART = Path(__file__).resolve().parent.parent / "jobs" / "quickstart.toml"
FRESH = (424_242, 424_243, 424_244)
ROWS = {
    "IBM Torino twin x3": ["fake_torino"] * 3,
    "IQM Garnet twin x3": ["fake_iqm_garnet"] * 3,
    "IonQ Forte-1 twin x3": ["fake_ionq_forte-1"] * 3,
    "one of each": ["fake_torino", "fake_iqm_garnet", "fake_ionq_forte-1"],
}


def speed(budget: float, workers: int) -> None:
    spec, plan = load_plan_spec(QUICKSTART)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        res = make_plan(spec, plan, budget, workers=workers, cache=Path(tmp) / "cache", log=print)
        seconds = time.perf_counter() - start
        print(format_plan(res))
        best = res.best
        if best is None:
            print(f"plan_seconds: {seconds:.1f}\nwithin_budget: no plan\nfresh_mean_inside_spread: no plan")
            return
        live, twins = res.best_spec(), res.best_spec(twins=True)
        assert live is not None and twins is not None
        est = estimate_spec(live).total.usd
        lo, hi = best.spread()
        fresh = []
        for seed in FRESH:
            s = twins.model_copy(update={"seed": seed})
            fresh.append(Federation(s, Path(tmp) / f"fresh-{seed}", progress=False).run()["final_test_accuracy"])
        mean = float(np.mean(fresh))
        print(f"\nqflhw estimate of the written plan: ${est} (plan printed ${best.usd}); budget ${budget}")
        print(f"fresh seeds {FRESH}: accuracies {[round(a, 4) for a in fresh]}, mean {mean:.4f}; plan spread {lo:.4f}-{hi:.4f}")
        print(f"rehearsals: {res.rehearsals} twin runs (a user trying settings by hand would run as many)")
        print(f"plan_seconds: {seconds:.1f}")
        print(f"within_budget: {est <= res.budget and best.within(res.budget)}")
        print(f"fresh_mean_inside_spread: {lo <= mean <= hi}")


def table(workers: int) -> None:
    raw = tomllib.loads(QUICKSTART.read_text())
    budgets = (10, 100, 1000)
    lines = ["| twins (live profile priced) | " + " | ".join(f"${b:,}" for b in budgets) + " |",
             "| --- | " + " | ".join("---" for _ in budgets) + " |"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, devices in ROWS.items():
            r = dict(raw)
            r["clients"] = [{"name": f"c{k}", "device": d} for k, d in enumerate(devices)]
            spec = parse_spec(r)
            plan = parse_plan({}, spec)
            cells, priced = [], ""
            for b in budgets:
                start = time.perf_counter()
                res = make_plan(spec, plan, b, workers=workers, cache=Path(tmp) / "cache")
                print(format_plan(res), f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
                priced = ", ".join(sorted({o.live.name for opts in res.options for o in opts}))
                if res.best is None:
                    cheapest = f"${float(res.cheapest_usd):,.0f}" if res.cheapest_usd is not None else "?"
                    cells.append(f"nothing fits (cheapest plan {cheapest})")
                else:
                    c, s = res.best, res.best.setting
                    lo, hi = c.spread()
                    cells.append(f"**{c.mean:.3f}** ({lo:.2f}-{hi:.2f}); ${float(c.usd):,.2f}: {s.gradient}, {s.shots} shots, "
                                 f"batch {s.batch_size}, {c.rounds} rnd, frac {s.client_fraction:g}")
            lines.append(f"| {label} ({priced}) | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=100.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table", action="store_true", help="the README's 'what a budget buys' table instead")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.table:
        table(args.workers)
    else:
        speed(args.budget, args.workers)


if __name__ == "__main__":
    main()
