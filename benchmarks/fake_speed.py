"""Speed of a fake device against qiskit-ibm-runtime's local testing mode, same circuits.

Workload (issue 2): 1000 bindings of a 4-qubit, 4-layer rot-crx ansatz with 4 Z observables on
fake Torino. Both sides get the same transpiled circuit (transpilation is timed separately and is
cached per device in qflhw). qflhw's time includes building its device and noise model.
Reference: ``qiskit_ibm_runtime.EstimatorV2(mode=FakeTorino())`` (local testing mode), default
precision. The numbers must agree within the reference's shot noise.

Run: python benchmarks/fake_speed.py [--bindings 1000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.factory import make_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bindings", type=int, default=1000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    model = build("rot-crx", 4, 4)
    rows = np.random.default_rng(0).uniform(-np.pi, np.pi, (args.bindings, len(model.parameters)))
    t0 = time.perf_counter()
    tc = make_device("fake_torino").transpile(model.circuit)
    t_transpile = time.perf_counter() - t0

    t0 = time.perf_counter()
    dev = make_device("fake_torino")
    item = BatchItem(tc, model.parameters, rows, tuple(z_observables(4)))
    ours = dev.run(Batch((item,)), shots=None).items[0].values
    t_ours = time.perf_counter() - t0

    from qiskit_ibm_runtime import EstimatorV2
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    t0 = time.perf_counter()
    est = EstimatorV2(mode=FakeTorino())
    obs = [[o.apply_layout(tc.isa.layout)] for o in z_observables(4)]
    order = [model.parameters.index(p) for p in tc.isa.parameters]
    pub = est.run([(tc.isa, obs, rows[:, order])]).result()[0]
    ref = pub.data.evs.T  # (bindings, 4)
    ref_std = pub.data.stds.T
    t_ref = time.perf_counter() - t0

    z = (ours - ref) / np.maximum(ref_std, 1e-9)
    print(f"workload: {args.bindings} bindings x 4 Z observables, 4 qubits x 4 layers, fake Torino")
    print(f"transpile (once per device, cached): {t_transpile:.2f} s; physical qubits {tc.physical_qubits}")
    print(f"qflhw exact, compact path:           {t_ours:.2f} s")
    print(f"runtime local mode EstimatorV2:      {t_ref:.2f} s")
    print(f"agreement: mean |z| = {np.mean(np.abs(z)):.2f}, mean z^2 = {np.mean(z**2):.2f} (shot noise: ~0.8 and ~1)")
    print(f"speedup: {t_ref / t_ours:.1f}")


if __name__ == "__main__":
    main()
