"""Per-client transpilation: fit a logical circuit to one device's Target, and describe the result.

The qiskit preset pass manager does the work (noise-aware VF2 layout, routing, native-gate
translation; level 3 by default). What QFL needs on top:

* **Readout-aware layout.** The circuit is compiled *with* its final measurements (logical qubit
  ``i`` into clbit ``i``, after a barrier so no gate before them is dropped: the same circuit is
  later measured in X or Y bases too), so VF2Layout / VF2PostLayout score the Target's calibrated
  ``measure`` errors. Where the chosen layout still measures on a readout outlier (a qubit whose
  readout error is above twice the device median, see
  :meth:`~qflhw.calibration.snapshot.Calibration.readout_outliers`), the circuit is compiled
  again on the Target without the outliers, and that layout is used when one exists. Which
  physical qubit holds logical qubit ``i`` at the end is read from the measurement into clbit
  ``i``: that is what the hardware reads. Gates calibrated with error 1 are used only when no
  region without them holds the circuit (FakeKyoto reports 1.0 for every ECR).
* The physical qubits used, a compact copy of the circuit on only those qubits (for fast
  simulation), and where each logical qubit ends up.
* The **estimated success probability** (ESP) of the compiled circuit as the hardware runs it:
  scheduled ALAP (:mod:`qflhw.circuits.schedule`), the product of every gate channel's average
  fidelity (``1 - error``, or the simulated channel's where the calibration cannot be
  reproduced, see :mod:`qflhw.calibration.channels`), every idle window's relaxation fidelity,
  and ``1 -`` readout error of every measured qubit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from qiskit import qasm3
from qiskit.circuit import Barrier, ClassicalRegister, Gate, QuantumCircuit
from qiskit.transpiler import Target, TranspilerError
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

from qflhw.calibration.channels import ChannelTable
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import is_two_qubit_gate, to_target
from qflhw.circuits.schedule import Schedule, schedule_alap
from qflhw.errors import CircuitTooWide

_SKIP = {"barrier", "delay"}
MEASURE_BARRIER = "qflhw-measure"
"""Label of the barrier put before the measurements :func:`with_measurements` adds."""
READOUT_OUTLIER = 2.0
"""A qubit reads out badly when its readout error is above this many times the device median."""


@dataclass(frozen=True, eq=False)
class Transpiled:
    """A logical circuit compiled for one device (one calibration)."""

    logical: QuantumCircuit
    isa: QuantumCircuit  # on the full device, native gates, no measurements (compiled with them)
    compact: QuantumCircuit  # the same gates on physical_qubits re-indexed 0..k-1
    physical_qubits: tuple[int, ...]  # sorted physical qubits the circuit touches
    final_positions: tuple[int, ...]  # compact index holding logical qubit i at the end
    calibration_id: str
    depth: int
    two_qubit_gates: int
    esp: float  # scheduled ESP: gate channels, idle windows and readouts (module docstring)
    meta: dict = field(default_factory=dict)

    @property
    def final_physical(self) -> tuple[int, ...]:
        """Physical qubit holding logical qubit i at the end (where it is measured)."""
        return tuple(self.physical_qubits[c] for c in self.final_positions)

    def with_compact(self, compact: QuantumCircuit, **meta) -> Transpiled:
        """The same placement with another compact circuit (e.g. gate-folded for ZNE)."""
        return Transpiled(
            logical=self.logical,
            isa=self.isa,
            compact=compact,
            physical_qubits=self.physical_qubits,
            final_positions=self.final_positions,
            calibration_id=self.calibration_id,
            depth=compact.depth(),
            two_qubit_gates=sum(1 for ci in compact.data if is_two_qubit_gate(ci.operation)),
            esp=self.esp,
            meta={**self.meta, **meta},
        )


def fingerprint(circuit: QuantumCircuit) -> str:
    """A content hash of a parameterized circuit (same gates and parameter names, same hash)."""
    return hashlib.sha256(qasm3.dumps(circuit).encode()).hexdigest()


def with_measurements(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` if it measures already, else a copy measuring qubit ``i`` into clbit ``i``
    after a barrier labelled :data:`MEASURE_BARRIER` (so no diagonal gate before them is dropped)."""
    if any(ci.operation.name == "measure" for ci in circuit.data):
        return circuit
    out = circuit.copy()
    creg = ClassicalRegister(circuit.num_qubits, "meas")
    out.add_register(creg)
    out.append(Barrier(circuit.num_qubits, label=MEASURE_BARRIER), out.qubits)
    for i in range(circuit.num_qubits):
        out.measure(i, creg[i])
    return out


def measured_qubits(circuit: QuantumCircuit) -> tuple[int, ...]:
    """Qubit index measured into each clbit, in clbit order (the last measurement wins)."""
    reads: dict[int, int] = {}
    for ci in circuit.data:
        if ci.operation.name == "measure":
            reads[circuit.find_bit(ci.clbits[0]).index] = circuit.find_bit(ci.qubits[0]).index
    if sorted(reads) != list(range(len(reads))):
        raise ValueError(f"clbits {sorted(reads)} are not all measured once")
    return tuple(reads[c] for c in range(len(reads)))


def without_measurements(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` without its measurements and the barrier :func:`with_measurements` put before them."""
    out = circuit.copy_empty_like()
    for ci in circuit.data:
        op = ci.operation
        if op.name == "measure" or (op.name == "barrier" and op.label == MEASURE_BARRIER):
            continue
        out.append(ci)
    return out


def measured_compact(compact: QuantumCircuit, positions: tuple[int, ...], rotation: QuantumCircuit | None = None) -> QuantumCircuit:
    """``compact`` followed by ``rotation`` (a basis change) and the measurement of logical qubit
    ``i`` (at compact position ``positions[i]``) into clbit ``i``: what the hardware runs."""
    out = compact.copy()
    if rotation is not None and rotation.size():
        out.compose(rotation, inplace=True)
    creg = ClassicalRegister(len(positions), "c")
    out.add_register(creg)
    for i, q in enumerate(positions):
        out.measure(q, creg[i])
    return out


def estimated_success_probability(
    schedule: Schedule, table: ChannelTable, physical: tuple[int, ...] | None = None
) -> float:
    """ESP of a scheduled, measured circuit (module docstring); circuit qubit ``i`` is physical
    qubit ``physical[i]`` (default: the identity)."""
    where = (lambda q: q) if physical is None else physical.__getitem__
    cal = table.calibration
    log_p = 0.0
    for t in schedule.timeline:
        if isinstance(t.operation, Gate) and t.name not in _SKIP:
            log_p += np.log(max(table.gate(t.name, tuple(where(q) for q in t.qubits)).fidelity, 1e-300))
    for q, windows in schedule.idle_windows().items():
        for a, b in windows:
            log_p += np.log(max(table.idle_fidelity(where(q), (b - a) * schedule.dt), 1e-300))
    for q in schedule.measured():
        log_p += np.log1p(-min(cal.qubits[where(q)].readout_error, 1 - 1e-12))
    return float(np.exp(log_p))


@dataclass(frozen=True)
class _Candidate:
    isa: QuantumCircuit
    measured: tuple[int, ...]
    layout: str


def _compile(circuit: QuantumCircuit, target: Target, level: int, seed: int, layout: str) -> _Candidate:
    pm = generate_preset_pass_manager(optimization_level=level, target=target, seed_transpiler=seed)
    out = pm.run(with_measurements(circuit))
    return _Candidate(without_measurements(out), measured_qubits(out), layout)


def transpile_for(
    circuit: QuantumCircuit,
    calibration: Calibration,
    *,
    target: Target | None = None,
    optimization_level: int = 3,
    seed: int = 1234,
    virtual_rz: bool = True,
    channel_correction: bool = False,
) -> Transpiled:
    """Compile ``circuit`` for the calibrated device, readout-aware (module docstring);
    deterministic for a given seed. ``virtual_rz``: see :func:`qflhw.calibration.target.to_target`;
    ``channel_correction``: ESP with the corrected channels of flagged gates (a twin that
    simulates them, see :mod:`qflhw.calibration.channels`)."""
    if circuit.num_qubits > calibration.num_qubits:
        raise CircuitTooWide(
            f"circuit {circuit.name!r} needs {circuit.num_qubits} qubits but device "
            f"{calibration.device} has {calibration.num_qubits}; use fewer qubits or a larger device"
        )
    if circuit.num_qubits > len(calibration.operational_qubits):
        raise CircuitTooWide(
            f"circuit {circuit.name!r} needs {circuit.num_qubits} qubits but device {calibration.device} "
            f"has only {len(calibration.operational_qubits)} operational ones; use fewer qubits or another device"
        )
    target = target or to_target(calibration, virtual_rz=virtual_rz)
    try:
        chosen = _compile(circuit, target, optimization_level, seed, "readout-aware")
    except TranspilerError:  # no region of usable couplers holds the circuit: use the broken ones too
        target = to_target(calibration, virtual_rz=virtual_rz, broken_gates=True)
        chosen = _compile(circuit, target, optimization_level, seed, "broken gates used (nothing else holds the circuit)")
    outliers = set(calibration.readout_outliers(READOUT_OUTLIER))
    avoided: tuple[int, ...] = ()
    if outliers & set(chosen.measured):
        avoided = tuple(sorted(outliers))
        qubits = tuple(q.model_copy(update={"operational": False}) if i in outliers else q for i, q in enumerate(calibration.qubits))
        fewer = calibration.model_copy(update={"qubits": qubits})
        if len(fewer.operational_qubits) >= circuit.num_qubits:
            try:
                fewer_target = to_target(fewer, virtual_rz=virtual_rz, broken_gates="broken" in chosen.layout)
                chosen = _compile(circuit, fewer_target, optimization_level, seed, "readout outliers avoided")
            except TranspilerError:  # the device without them cannot hold the circuit: keep the first layout
                pass
    isa = chosen.isa
    final = list(chosen.measured)
    used = {isa.find_bit(q).index for ci in isa.data if ci.operation.name not in _SKIP for q in ci.qubits}
    physical = tuple(sorted(used | set(final)))
    compact = compact_circuit(isa, physical)
    positions = tuple(physical.index(p) for p in final)
    # durations of every gate the circuit holds (broken ones included, should it use them)
    durations = to_target(calibration, physical, virtual_rz=virtual_rz, broken_gates=True)
    schedule = schedule_alap(measured_compact(compact, positions), durations)
    esp = estimated_success_probability(schedule, ChannelTable.of(calibration, correct=channel_correction), physical)
    return Transpiled(
        logical=circuit,
        isa=isa,
        compact=compact,
        physical_qubits=physical,
        final_positions=positions,
        calibration_id=calibration.id,
        depth=compact.depth(),
        two_qubit_gates=sum(1 for ci in isa.data if is_two_qubit_gate(ci.operation)),
        esp=esp,
        meta={
            "optimization_level": optimization_level,
            "seed": seed,
            "layout": chosen.layout,
            "readout_outliers": list(avoided),
            "schedule_s": schedule.seconds,
            "idle_s": float(sum(schedule.idle_seconds().values())),
            "virtual_rz": virtual_rz,
        },
    )


def compact_circuit(isa: QuantumCircuit, physical: tuple[int, ...]) -> QuantumCircuit:
    """``isa`` re-indexed onto ``len(physical)`` qubits (physical[i] -> i), dropping idle qubits
    and delays; barriers stay (on the qubits kept), since the hardware schedules around them."""
    index = {p: i for i, p in enumerate(physical)}
    out = QuantumCircuit(len(physical), name=isa.name, global_phase=isa.global_phase)
    for ci in isa.data:
        qubits = [isa.find_bit(q).index for q in ci.qubits]
        if ci.operation.name == "delay":
            continue
        if ci.operation.name == "barrier":
            kept = [index[q] for q in qubits if q in index]
            if kept:
                out.barrier(*kept)
            continue
        out.append(ci.operation, [index[q] for q in qubits])
    return out


class TranspileCache:
    """Transpiled circuits of one device, keyed by (circuit content, calibration id, level, seed)."""

    def __init__(
        self,
        calibration: Calibration,
        optimization_level: int = 3,
        seed: int = 1234,
        *,
        virtual_rz: bool = True,
        channel_correction: bool = False,
    ):
        self.calibration = calibration
        self.optimization_level = optimization_level
        self.seed = seed
        self.virtual_rz = virtual_rz
        self.channel_correction = channel_correction
        self._target: Target | None = None
        self._items: dict[tuple[str, str, int, int], Transpiled] = {}

    def use(self, calibration: Calibration) -> None:
        """Transpile for ``calibration`` from now on (a drifted or re-dated snapshot of the same device).

        Circuits compiled for earlier calibrations stay cached under their calibration id, so
        switching back costs nothing."""
        if calibration.id != self.calibration.id:
            self.calibration = calibration
            self._target = None

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = to_target(self.calibration, virtual_rz=self.virtual_rz)
        return self._target

    def get(self, circuit: QuantumCircuit) -> Transpiled:
        key = (fingerprint(circuit), self.calibration.id, self.optimization_level, self.seed)
        if key not in self._items:
            self._items[key] = transpile_for(
                circuit,
                self.calibration,
                target=self.target,
                optimization_level=self.optimization_level,
                seed=self.seed,
                virtual_rz=self.virtual_rz,
                channel_correction=self.channel_correction,
            )
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)
