"""How much ZNE + REM reduces the error of expectation values on fake noisy devices.

Workload (issue 5): the quickstart model (rot-crx ansatz, 4 qubits, Z on each qubit) at random
bindings (inputs and weights uniform in [-pi, pi]) on one IBM Heron twin (fake_torino), one IBM
Eagle twin (fake_brisbane) and one Braket-shaped twin (fake_iqm_garnet). Reference: the noiseless
value from qiskit's Statevector of the *logical* circuit (independent of qflhw's simulator).

1. Exact-expectation mode (no shot noise): median |value - ideal| over bindings x observables,
   unmitigated vs ZNE+REM (Mitiq folding and extrapolation, Mitiq REM with the snapshot's
   confusion matrices). ``error_reduction`` is the pooled median ratio.
2. Fixed total shots per binding (``--shots``): the unmitigated circuit gets them all; ZNE+REM
   splits them over its scale factors (uniform, and variance-weighted from a pilot run). Over
   ``--repeats`` independent jobs: median |bias|, median variance and RMSE.

Run: python benchmarks/mitigation_error.py [--bindings 30] [--layers 1] [--folding two-qubit]
The last line is ``error_reduction: <x>``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from qiskit.quantum_info import Statevector

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from qflhw.execution.mitigation import REM, ZNE
from qflhw.execution.shots import allocate

DEVICES = ("fake_torino", "fake_brisbane", "fake_iqm_garnet")


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
    ap.add_argument("--shots", type=int, default=30_000, help="total shots per binding in part 2")
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
    shot_rows = []
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

        # Part 2: fixed total shots per binding. Shots per circuit for each scale factor:
        k = len(variants)
        uniform = [args.shots // k] * k
        pilot_var = [float(np.mean(1 - r.values**2)) for r in exact.items]  # per-shot variance of a +-1 outcome
        weighted = allocate("variance-weighted", args.shots // k, [1] * k, list(prepared.coefficients), pilot_var)
        for step, (label, alloc) in enumerate((("uniform", uniform), ("variance-weighted", weighted))):
            est_raw, est_mit = [], []
            for r in range(args.repeats):
                it = tuple(BatchItem(v, model.parameters, rows, obs, shots=n) for v, n in zip(variants, alloc))
                res = dev.run(Batch(it, key=JobKey("mitigation", r, name, step)), shots=args.shots)
                est_mit.append(prepared.combine(res.items, obs).values)
                if label == "uniform":
                    one = dev.run(Batch((BatchItem(tc, model.parameters, rows, obs),), key=JobKey("raw", r, name, 0)), args.shots)
                    est_raw.append(one.items[0].values)
            if label == "uniform":
                shot_rows.append((name, "unmitigated", [args.shots], np.array(est_raw)))
            shot_rows.append((name, f"zne+rem {label}", alloc, np.array(est_mit)))

    raw_all, mit_all = np.concatenate(raw_err), np.concatenate(mit_err)
    print(f"all devices: median |error| unmitigated {np.median(raw_all):.4f}  zne+rem {np.median(mit_all):.4f}")
    print(f"\nfixed budget: {args.shots} shots per binding, {args.repeats} repeats (bias/variance over repeats)")
    for name, label, alloc, est in shot_rows:
        bias = est.mean(axis=0) - ideal
        var = est.var(axis=0, ddof=1)
        rmse = np.sqrt(np.mean((est - ideal[None]) ** 2, axis=0))
        print(
            f"{name:18s} {label:27s} shots/circuit {str(alloc):22s} median |bias| {np.median(np.abs(bias)):.4f}  "
            f"median var {np.median(var):.2e}  median RMSE {np.median(rmse):.4f}"
        )
    print(f"error_reduction: {np.median(raw_all) / np.median(mit_all):.2f}")


if __name__ == "__main__":
    main()
