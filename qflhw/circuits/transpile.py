"""Per-client transpilation: fit a logical circuit to one device's Target, and describe the result.

The qiskit preset pass manager does the work (noise-aware VF2 layout, routing, native-gate
translation; level 3 by default). We add what QFL needs on top: the physical qubits used, a
compact copy of the circuit on only those qubits (for fast simulation), where each logical qubit
ends up, and the estimated success probability (ESP) of the compiled circuit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from qiskit import qasm3
from qiskit.circuit import QuantumCircuit
from qiskit.transpiler import Target
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import is_two_qubit_gate, to_target
from qflhw.errors import CircuitTooWide

_SKIP = {"barrier", "delay"}


@dataclass(frozen=True, eq=False)
class Transpiled:
    """A logical circuit compiled for one device (one calibration)."""

    logical: QuantumCircuit
    isa: QuantumCircuit  # on the full device, native gates, no measurements
    compact: QuantumCircuit  # the same gates on physical_qubits re-indexed 0..k-1
    physical_qubits: tuple[int, ...]  # sorted physical qubits the circuit touches
    final_positions: tuple[int, ...]  # compact index holding logical qubit i at the end
    calibration_id: str
    depth: int
    two_qubit_gates: int
    esp: float  # product of (1 - error) over gates and final readouts
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


def estimated_success_probability(isa: QuantumCircuit, target: Target, measured: list[int]) -> float:
    """Product of (1 - gate error) over every gate and (1 - readout error) over measured qubits."""
    log_p = 0.0
    for ci in isa.data:
        name = ci.operation.name
        if name in _SKIP or name not in target.operation_names:
            continue
        qargs = tuple(isa.find_bit(q).index for q in ci.qubits)
        props = target[name].get(qargs)
        if props is not None and props.error:
            log_p += np.log1p(-min(props.error, 1 - 1e-12))
    for q in measured:
        props = target["measure"].get((q,))
        if props is not None and props.error:
            log_p += np.log1p(-min(props.error, 1 - 1e-12))
    return float(np.exp(log_p))


def transpile_for(
    circuit: QuantumCircuit,
    calibration: Calibration,
    *,
    target: Target | None = None,
    optimization_level: int = 3,
    seed: int = 1234,
) -> Transpiled:
    """Compile ``circuit`` for the calibrated device; deterministic for a given seed."""
    if circuit.num_qubits > calibration.num_qubits:
        raise CircuitTooWide(
            f"circuit {circuit.name!r} needs {circuit.num_qubits} qubits but device "
            f"{calibration.device} has {calibration.num_qubits}; use fewer qubits or a larger device"
        )
    target = target or to_target(calibration)
    pm = generate_preset_pass_manager(
        optimization_level=optimization_level, target=target, seed_transpiler=seed
    )
    isa = pm.run(circuit)
    final = list(isa.layout.final_index_layout()) if isa.layout else list(range(circuit.num_qubits))
    used = {isa.find_bit(q).index for ci in isa.data if ci.operation.name not in _SKIP for q in ci.qubits}
    physical = tuple(sorted(used | set(final)))
    compact = compact_circuit(isa, physical)
    return Transpiled(
        logical=circuit,
        isa=isa,
        compact=compact,
        physical_qubits=physical,
        final_positions=tuple(physical.index(p) for p in final),
        calibration_id=calibration.id,
        depth=compact.depth(),
        two_qubit_gates=sum(1 for ci in isa.data if is_two_qubit_gate(ci.operation)),
        esp=estimated_success_probability(isa, target, final),
        meta={"optimization_level": optimization_level, "seed": seed},
    )


def compact_circuit(isa: QuantumCircuit, physical: tuple[int, ...]) -> QuantumCircuit:
    """``isa`` re-indexed onto ``len(physical)`` qubits (physical[i] -> i), dropping idle qubits."""
    index = {p: i for i, p in enumerate(physical)}
    out = QuantumCircuit(len(physical), name=isa.name, global_phase=isa.global_phase)
    for ci in isa.data:
        if ci.operation.name in _SKIP:
            continue
        out.append(ci.operation, [index[isa.find_bit(q).index] for q in ci.qubits])
    return out


class TranspileCache:
    """Transpiled circuits of one device, keyed by (circuit content, calibration id, level, seed)."""

    def __init__(self, calibration: Calibration, optimization_level: int = 3, seed: int = 1234):
        self.calibration = calibration
        self.optimization_level = optimization_level
        self.seed = seed
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
            self._target = to_target(self.calibration)
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
            )
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)
