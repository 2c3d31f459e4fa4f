"""How much ZNE + REM reduces the error of expectation values on fake noisy devices.

Workload (issue 5): the quickstart model (rot-crx ansatz, 4 qubits, Z on each qubit) at random
bindings (inputs and weights uniform in [-pi, pi]) on one IBM Heron twin (fake_torino), one IBM
Eagle twin (fake_brisbane) and one Braket-shaped twin (fake_iqm_garnet). Reference: the noiseless
value from qiskit's Statevector of the *logical* circuit (independent of qflhw's simulator).

1. Exact-expectation mode (no shot noise): median |value - ideal| over bindings x observables,
   unmitigated vs ZNE+REM (Mitiq folding and extrapolation, Mitiq REM with the snapshot's
   confusion matrices). ``error_reduction`` is the pooled median ratio.
2. Equal total shots per binding (``--budgets``, default 300, 3000, 30000): unmitigated, REM,
   ZNE and ZNE+REM each get the same shots per binding (ZNE splits them evenly over its scale
   factors). Over ``--repeats`` independent sampled jobs: median |bias|, median variance and the
   RMSE against the ideal value, next to the RMSE predicted by
   :mod:`qflhw.execution.mitigation.rmse` (exact-mode bias + per-shot variance), the model
   ``qflhw plan`` uses to turn mitigation on only where it pays. The variance-weighted split of
   ZNE's shots (``shot_allocation``) is shown as well.

Run: python benchmarks/mitigation_error.py [--bindings 30] [--layers 1] [--folding two-qubit] [--budgets 300,3000,30000]
The last line is ``error_reduction: <x>``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from qiskit.quantum_info import Statevector

from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.spec import MitigationSpec
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from qflhw.execution.mitigation import REM, ZNE, make_mitigation
from qflhw.execution.mitigation.rmse import best_method, error_models
from qflhw.execution.shots import allocate

DEVICES = ("fake_torino", "fake_brisbane", "fake_iqm_garnet")
METHODS = ("none", "rem", "zne", "zne+rem")


def ideal_values(model, rows: np.ndarray, observables) -> np.ndarray:  # noqa: ANN001
    out = np.empty((len(rows), len(observables)))
    for i, row in enumerate(rows):
        sv = Statevector(model.circuit.assign_parameters(dict(zip(model.parameters, row))))
        out[i] = [sv.expectation_value(o).real for o in observables]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bindings", type=int, default=30)
    ap.add_argument("--qubits", type=int, default=4)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--devices", default=",".join(DEVICES))
    ap.add_argument("--folding", default="two-qubit", choices=["two-qubit", "global"])
    ap.add_argument("--extrapolation", default="richardson", choices=["richardson", "linear", "exponential"])
    ap.add_argument("--scale-factors", default="1,3,5")
    ap.add_argument("--budgets", default="300,3000,30000", help="total shots per binding in part 2")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    model = build("rot-crx", args.qubits, args.layers)
    obs = tuple(z_observables(args.qubits))
    rows = np.random.default_rng(args.seed).uniform(-np.pi, np.pi, (args.bindings, len(model.parameters)))
    ideal = ideal_values(model, rows, obs)
    scales = [float(s) for s in args.scale_factors.split(",")]
    print(
        f"workload: {args.bindings} bindings x {len(obs)} Z observables, rot-crx {args.qubits} qubits x "
        f"{args.layers} layers; ZNE {args.folding} folding at {scales}, {args.extrapolation}; REM from snapshot"
    )
    raw_err, mit_err = [], []
    shot_rows: list[tuple] = []
    best: dict[tuple[str, int], str] = {}
    budgets = [int(b) for b in args.budgets.split(",")]
    for name in args.devices.split(","):
        t0 = time.perf_counter()
        dev = make_device(name)
        tc = dev.transpile(model.circuit)
        zne = ZNE(
            dev.calibration, scale_factors=scales, extrapolation=args.extrapolation, folding=args.folding,
            seed=args.seed, readout=REM(dev.calibration),
        )
        prepared = zne.prepare(tc)
        variants = prepared.variants
        items = tuple(BatchItem(v, model.parameters, rows, obs) for v in variants)
        exact = dev.run(Batch(items), None)
        raw = exact.items[0].values
        mitigated = prepared.combine(exact.items, obs).values
        e_raw, e_mit = np.abs(raw - ideal).ravel(), np.abs(mitigated - ideal).ravel()
        raw_err.append(e_raw)
        mit_err.append(e_mit)
        print(
            f"{name:18s} 2q gates {tc.two_qubit_gates:3d} on {tc.physical_qubits}: median |error| "
            f"unmitigated {np.median(e_raw):.4f}  zne+rem {np.median(e_mit):.4f}  "
            f"ratio {np.median(e_raw) / np.median(e_mit):.1f}x  ({time.perf_counter() - t0:.1f} s)"
        )

        # Part 2: equal total shots per binding, every method, several budgets; measured vs model.
        setting = MitigationSpec(scale_factors=scales, extrapolation=args.extrapolation, folding=args.folding, seed=args.seed)
        models = error_models(dev, model, obs, METHODS, rows=rows, setting=setting, ideal=ideal)
        pilot_var = [float(np.mean(1 - r.values**2)) for r in exact.items]  # per-shot variance of a +-1 outcome
        for budget in budgets:
            for method in METHODS:
                tech = make_mitigation(setting.model_copy(update={"method": method}), dev.calibration)
                prep = tech.prepare(tc) if tech else None
                var_tc = list(prep.variants) if prep else [tc]
                allocs = [("uniform", [budget // len(var_tc)] * len(var_tc))]
                if method == "zne+rem":
                    allocs.append(("variance-weighted", list(allocate(
                        "variance-weighted", budget // len(var_tc), [1] * len(var_tc), list(prep.coefficients), pilot_var))))
                for label, alloc in allocs:
                    est = []
                    for r in range(args.repeats):
                        it = tuple(BatchItem(v, model.parameters, rows, obs, shots=n) for v, n in zip(var_tc, alloc))
                        res = dev.run(Batch(it, key=JobKey(f"mit-{method}-{label}", r, name, budget)), shots=max(alloc))
                        est.append(prep.combine(res.items, obs).values if prep else res.items[0].values)
                    predicted = models[method].rmse(budget) if label == "uniform" else float("nan")
                    shot_rows.append((name, budget, method + ("" if label == "uniform" else f" {label}"), alloc,
                                      np.array(est), predicted))
            best[(name, budget)] = best_method(models, budget)

    raw_all, mit_all = np.concatenate(raw_err), np.concatenate(mit_err)
    print(f"all devices: median |error| unmitigated {np.median(raw_all):.4f}  zne+rem {np.median(mit_all):.4f}")
    print(f"\nequal total shots per binding, {args.repeats} repeats each (bias/variance/RMSE over repeats, "
          "median over bindings x observables; model: exact-mode bias + per-shot variance)")
    print(f"{'device':18s} {'shots':>6} {'method':28s} {'shots/circuit':>22} {'|bias|':>7} {'var':>9} {'RMSE':>7} {'model':>7}")
    for name, budget, label, alloc, est, predicted in shot_rows:
        bias = est.mean(axis=0) - ideal
        var = est.var(axis=0, ddof=1)
        rmse = float(np.sqrt(np.mean((est - ideal[None]) ** 2)))
        print(f"{name:18s} {budget:>6} {label:28s} {str(alloc):>22} {np.median(np.abs(bias)):>7.4f} {np.median(var):>9.2e} "
              f"{rmse:>7.4f} {predicted:>7.4f}")
    print("\nlowest RMSE (measured) vs the model's choice at each budget:")
    for (name, budget), choice in best.items():
        mine = [r for r in shot_rows if r[0] == name and r[1] == budget and " " not in r[2]]
        measured = min(mine, key=lambda r: float(np.sqrt(np.mean((r[4] - ideal[None]) ** 2))))[2]
        print(f"  {name:18s} {budget:>6} shots/binding: measured best {measured:8s} model picks {choice}")
    print(f"error_reduction: {np.median(raw_all) / np.median(mit_all):.2f}")


if __name__ == "__main__":
    main()
