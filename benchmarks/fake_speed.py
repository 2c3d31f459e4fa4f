"""Speed of a fake device against the tools a Qiskit user would pick instead, same scheduled circuits.

Workload: 1000 bindings of a 4-qubit, 4-layer rot-crx ansatz with 4 Z observables on fake Torino,
idle noise included. qflhw's time includes building its device (snapshot, channels) and, per
circuit, scheduling and compiling it; transpilation is timed separately (cached per device).

References, both given the same transpiled circuit scheduled ALAP on FakeTorino's Target with
qiskit's ``ALAPScheduleAnalysis`` + ``PadDelay`` (delays on qubits the circuit never touches
removed: relaxation leaves their ``|0>`` alone, and Aer would otherwise simulate all 133 qubits):

* Qiskit Runtime's local testing mode, ``qiskit_ibm_runtime.EstimatorV2(mode=FakeTorino())``
  (default precision: shot-based, readout error included). Its values must agree with ours within
  its shot noise. One fix is needed for scheduled circuits: the fake backend's own noise model
  (qiskit-ibm-runtime 0.51, ``FakeBackendV2._get_noise_model_from_backend_v2``) puts relaxation on
  delays without truncating T2 to 2 T1, and Aer refuses the delays of a qubit with T2 > 2 T1
  (FakeTorino's qubit 61, measured on here); the benchmark's FakeTorino truncates it, as
  ``NoiseModel.from_backend`` does.
* Aer's ``EstimatorV2`` with ``NoiseModel.from_backend(FakeTorino())`` (density matrix, exact:
  no readout error, no shots). Its values must equal ours with each qubit's readout map undone.

Both reference times include building their noise model, as qflhw's includes its own. The
machine's load changes the numbers: run it on an idle machine.

Run: python benchmarks/fake_speed.py [--bindings 1000]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.factory import make_device


def scheduled_isa(tc, backend):  # noqa: ANN001, ANN201
    """The transpiled circuit, measured where the twin measures, scheduled ALAP on the backend's
    Target; measurements and the delays of untouched qubits removed (what an estimator runs)."""
    from qiskit import ClassicalRegister
    from qiskit.transpiler import PassManager
    from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay

    circ = tc.isa.copy()
    creg = ClassicalRegister(len(tc.final_physical), "c")
    circ.add_register(creg)
    for i, q in enumerate(tc.final_physical):
        circ.measure(q, creg[i])
    sched = PassManager([ALAPScheduleAnalysis(target=backend.target), PadDelay(target=backend.target)]).run(circ)
    keep = set(tc.physical_qubits)
    out = sched.copy_empty_like()
    for ci in sched.data:
        if ci.operation.name == "measure":
            continue
        if all(sched.find_bit(q).index in keep for q in ci.qubits):
            out.append(ci)
    return out


def runtime_torino():  # noqa: ANN201
    """FakeTorino whose local-mode noise model relaxes delays with T2 truncated to 2 T1 (module docstring)."""
    from qiskit.circuit import Delay
    from qiskit_aer.noise.passes import RelaxationNoisePass
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    class Torino(FakeTorino):
        def _get_noise_model_from_backend_v2(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            noise = super()._get_noise_model_from_backend_v2(*args, **kwargs)
            t1 = [self.qubit_properties(q).t1 for q in range(self.num_qubits)]
            t2 = [min(self.qubit_properties(q).t2, 2 * a) for q, a in zip(range(self.num_qubits), t1)]
            noise._custom_noise_passes = [RelaxationNoisePass(t1s=t1, t2s=t2, dt=self.dt, op_types=Delay)]
            return noise

    return Torino()


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
    t0 = time.perf_counter()
    again = dev.run(Batch((item,)), shots=None).items[0].values
    t_again = time.perf_counter() - t0
    assert np.array_equal(ours, again)

    from qiskit_ibm_runtime import EstimatorV2
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    backend = FakeTorino()
    circ = scheduled_isa(tc, backend)
    from qiskit.quantum_info import SparsePauliOp

    order = [model.parameters.index(p) for p in circ.parameters]
    # Z of logical qubit i is Z on the physical qubit it is measured on
    obs = [[SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], circ.num_qubits)] for q in tc.final_physical]

    t0 = time.perf_counter()
    est = EstimatorV2(mode=runtime_torino())
    pub = est.run([(circ, obs, rows[:, order])]).result()[0]
    ref, ref_std = pub.data.evs.T, pub.data.stds.T  # (bindings, 4)
    t_runtime = time.perf_counter() - t0

    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    t0 = time.perf_counter()
    noise = NoiseModel.from_backend(FakeTorino())
    aer = AerEstimator(options={"backend_options": {"method": "density_matrix", "noise_model": noise}})
    aer_evs = aer.run([(circ, obs, rows[:, order])]).result()[0].data.evs.T
    t_aer = time.perf_counter() - t0

    cal = dev.calibration
    p10 = np.array([cal.qubits[q].prob_meas1_prep0 for q in tc.final_physical])
    p01 = np.array([cal.qubits[q].prob_meas0_prep1 for q in tc.final_physical])
    ours_pre = (ours - (p01 - p10)) / (1 - p01 - p10)  # each Z's readout map undone
    z = (ours - ref) / np.maximum(ref_std, 1e-9)
    program = dev.simulator.program(tc, "ZZZZ")
    print(f"workload: {args.bindings} bindings x 4 Z observables, 4 qubits x 4 layers, fake Torino, idle noise included")
    print(f"transpile (once per device, cached): {t_transpile:.2f} s; measured on {tc.final_physical}")
    print(f"schedule {tc.meta['schedule_s'] * 1e6:.2f} us, idle {tc.meta['idle_s'] * 1e6:.2f} qubit-us; program {program.stats}")
    print(f"qflhw exact, scheduled twin (device + schedule + compile + 1000 bindings): {t_ours:.3f} s; again (compiled): {t_again:.3f} s")
    print(f"runtime local mode EstimatorV2(mode=FakeTorino()):  {t_runtime:.2f} s")
    print(f"Aer EstimatorV2 + NoiseModel.from_backend(FakeTorino()), density matrix: {t_aer:.2f} s")
    print(f"agreement with runtime local mode: mean |z| "
          f"= {np.mean(np.abs(z)):.2f}, mean z^2 = {np.mean(z**2):.2f} (shot noise: ~0.8 and ~1)")
    print(f"agreement with Aer (readout undone): max |diff| = {np.abs(ours_pre - aer_evs).max():.1e}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"speedup: {t_runtime / t_ours:.1f}")
    print(f"aer_speedup: {t_aer / t_ours:.1f}")


if __name__ == "__main__":
    main()
