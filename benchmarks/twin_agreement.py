"""Twin against Aer on every IBM fake backend, every ansatz and size: the full agreement matrix.

The default test suite runs one (ansatz, size) per backend
(``tests/unit/devices/test_twin_agreement.py``); this script runs both ansaetze (rot-crx, 1 layer;
hardware-efficient, 2 layers) at 4 and 6 qubits (as many as the device has, if fewer) on each of
qiskit-ibm-runtime's fake backends, ``--bindings`` random bindings each, in exact mode.

Reference: the transpiled circuit measured where the twin measures, on the backend's own Target
restricted to the circuit's qubits, scheduled ALAP by qiskit and run by
``AerSimulator.from_backend`` (its gate noise and relaxation on delays), with the backend's
asymmetric readout. Prints the largest difference per backend and over all (requirement 1e-6;
Aer's own dropping of noise terms below 1e-10 leaves up to ~1e-8 on Heron devices).

Run: python benchmarks/twin_agreement.py [--bindings 4] [--backends fake_torino fake_fez ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' reference helpers

from qflhw.circuits.ansatz import build, z_observables  # noqa: E402
from qflhw.devices.base import Batch, BatchItem  # noqa: E402
from tests.fake_backends import sdk_backends, sdk_twin  # noqa: E402
from tests.unit.devices.aer_reference import parity_values, scheduled_probabilities  # noqa: E402

CASES = [("rot-crx", 4, 1), ("rot-crx", 6, 1), ("hardware-efficient", 4, 2), ("hardware-efficient", 6, 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bindings", type=int, default=4)
    ap.add_argument("--backends", nargs="*", default=None, help="backend names (default: all)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t_all = time.perf_counter()
    worst_all, rows_out = 0.0, 0
    for k, backend in enumerate(sdk_backends()):
        if args.backends and backend.name not in args.backends:
            continue
        t0 = time.perf_counter()
        dev = sdk_twin(backend.name)
        worst, seen = 0.0, set()
        for ansatz, n, layers in CASES:
            n = min(n, backend.num_qubits)
            if (ansatz, n) in seen:
                continue
            seen.add((ansatz, n))
            model = build(ansatz, n, layers)
            tc = dev.transpile(model.circuit)
            rows = np.random.default_rng(k).uniform(-np.pi, np.pi, (args.bindings, len(model.parameters)))
            ours = dev.run(Batch((BatchItem(tc, model.parameters, rows, tuple(z_observables(n))),)), None).items[0].values
            probs = scheduled_probabilities(tc.isa, tc.physical_qubits, tc.final_physical, backend, model.parameters, rows)
            worst = max(worst, float(np.abs(ours - parity_values(probs, [1 << q for q in range(n)])).max()))
            rows_out += len(rows)
        worst_all = max(worst_all, worst)
        print(f"{backend.name:18s} {len(seen)} circuits  max |diff| {worst:.1e}  {time.perf_counter() - t0:5.1f} s", flush=True)
    print(f"{rows_out} bindings in {time.perf_counter() - t_all:.0f} s; largest difference {worst_all:.1e} "
          f"({'within' if worst_all <= 1e-6 else 'ABOVE'} 1e-6)")
    print(f"max_diff: {worst_all:.2e}")


if __name__ == "__main__":
    main()
