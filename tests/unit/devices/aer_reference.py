"""The independent reference of the twin tests: Aer's own simulation of the ALAP-scheduled circuit.

Nothing here uses qflhw's schedule, channels or kernel. The transpiled circuit is measured where
the twin says each logical qubit ends, restricted to its physical qubits on a copy of the
**backend's own** Target (the same instructions, durations, errors, T1/T2 and dt for those
qubits; a full-device ``from_backend`` noise model takes seconds to build), scheduled by qiskit's
``ALAPScheduleAnalysis`` + ``PadDelay`` on that Target, and run by
``AerSimulator.from_backend(method="density_matrix")``: Aer's gate noise from
``basic_device_gate_errors`` and its ``RelaxationNoisePass`` on every delay. Measurements become
``save_probabilities`` and the backend's asymmetric readout probabilities (``properties()``) are
applied as a Kronecker product of assignment matrices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.providers import BackendV2
from qiskit.transpiler import InstructionProperties, PassManager, Target
from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay

from qflhw.calibration.target import TargetBackend  # a container for the Target; it simulates nothing


def restricted_backend(backend, qubits: Sequence[int]) -> BackendV2:  # noqa: ANN001
    """A BackendV2 whose Target is ``backend.target`` on ``qubits`` only (re-indexed 0..k-1).

    Old backends report no measurement duration; it is 0 here (qiskit cannot schedule without
    one, and Aer puts no noise on a measurement either way)."""
    src = backend.target
    index = {q: i for i, q in enumerate(qubits)}
    props = [src.qubit_properties[q] for q in qubits] if src.qubit_properties else None
    target = Target(num_qubits=len(qubits), dt=src.dt, qubit_properties=props)
    for name in src.operation_names:
        entries = src[name]
        if None in entries:  # a global instruction (control flow): not needed here
            continue
        keep = {tuple(index[q] for q in qargs): ip for qargs, ip in entries.items() if all(q in index for q in qargs)}
        if name == "measure":
            keep = {k: InstructionProperties(duration=ip.duration or 0.0, error=ip.error) if ip else ip for k, ip in keep.items()}
        if keep:
            target.add_instruction(src.operation_from_name(name), keep)
    return TargetBackend(target, f"{backend.name}-restricted")


def backend_readout(backend) -> Callable[[int], tuple[float, float]]:  # noqa: ANN001
    """``qubit -> (P(1|0), P(0|1))`` from the backend's ``properties()``."""
    props = backend.properties()
    return lambda q: (props.qubit_property(q, "prob_meas1_prep0")[0], props.qubit_property(q, "prob_meas0_prep1")[0])


def confusion(readout: Callable[[int], tuple[float, float]], qubits: Sequence[int]) -> np.ndarray:
    """Kronecker product of assignment matrices; bit j of the index is ``qubits[j]``."""
    conf = np.array([[1.0]])
    for q in reversed(list(qubits)):
        p10, p01 = readout(q)
        conf = np.kron(conf, np.array([[1 - p10, p01], [p10, 1 - p01]]))
    return conf


def scheduled_probabilities(
    circuit: QuantumCircuit,
    physical: Sequence[int],
    measured: Sequence[int],
    backend,  # noqa: ANN001
    parameters: Sequence,
    bindings: np.ndarray,
    *,
    readout: Callable[[int], tuple[float, float]] | None = None,
    noise_model=None,  # noqa: ANN001 - replaces from_backend's noise model (e.g. with extra terms)
    unknown_to_aer: Callable | None = None,
) -> np.ndarray:
    """Reference outcome probabilities ``(B, 2^m)`` (bit j = logical qubit j) of ``circuit`` (a
    full-device ISA circuit without measurements) measured on ``measured`` (physical qubits),
    simulated on the backend restricted to ``physical``. ``unknown_to_aer`` replaces, after
    scheduling, an instruction Aer cannot run (returns it unchanged otherwise)."""
    from qiskit_aer import AerSimulator

    rb = restricted_backend(backend, physical)
    where = {p: i for i, p in enumerate(physical)}
    small = QuantumCircuit(len(physical), len(measured))
    for ci in circuit.data:
        small.append(ci.operation, [where[circuit.find_bit(q).index] for q in ci.qubits])
    for i, p in enumerate(measured):
        small.measure(where[p], i)
    sched = PassManager([ALAPScheduleAnalysis(target=rb.target), PadDelay(target=rb.target)]).run(small)
    out = sched.copy_empty_like()
    for ci in sched.data:
        if ci.operation.name != "measure":
            op = unknown_to_aer(ci.operation) if unknown_to_aer else ci.operation
            out.append(op, ci.qubits, ci.clbits)
    out.save_probabilities(qubits=[where[p] for p in measured], label="p")
    sim = AerSimulator.from_backend(rb, method="density_matrix")
    if noise_model is not None:
        sim.set_options(noise_model=noise_model)
    names = [p.name for p in parameters]  # by name: a cached compiled circuit may hold other Parameter objects
    bound = []
    for row in np.atleast_2d(bindings):
        value = dict(zip(names, row))
        bound.append(out.assign_parameters({p: value[p.name] for p in out.parameters}))
    result = sim.run(bound).result()
    conf = confusion(readout or backend_readout(backend), measured)
    return np.array([conf @ np.asarray(result.data(i)["p"]) for i in range(len(bound))])


def parity_values(probs: np.ndarray, masks: Sequence[int]) -> np.ndarray:
    """``<Z^mask>`` for each bit mask (bit j = logical qubit j): ``(B, len(masks))``."""
    idx = np.arange(probs.shape[1])
    return np.stack([probs @ (1.0 - 2.0 * (np.bitwise_count(idx & m).astype(int) % 2)) for m in masks], axis=1)
