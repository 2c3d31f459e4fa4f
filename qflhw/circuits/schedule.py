"""ALAP schedules of transpiled circuits, and every qubit's idle windows.

IBM backends run circuits "as late as possible": each instruction starts as late as its
successors allow, and the final measurements end together. The schedule here is qiskit's own
(``ALAPScheduleAnalysis`` then ``PadDelay``, both given the device's Target, whose durations are
in seconds and whose ``dt`` turns them into integer samples); this module reads it back:

* :class:`Schedule` lists the scheduled circuit's instructions in circuit order with start time
  and duration in samples, delays included (circuit order is a valid time order on every qubit;
  ties are common, since virtual ``rz`` takes no time);
* :meth:`Schedule.idle_windows` gives each active qubit's idle windows between its first
  operation and its measurement (the delays ``PadDelay`` inserted). Leading delays, before a
  qubit's first operation while it is still in ``|0>``, are left out: zero-temperature
  relaxation does nothing to ``|0>``, and the hardware starts each qubit from reset anyway.

Durations come from ``target.durations()`` in samples, which rounds (Torino's 72 ns CZ is
17.999999999999996 samples in floating point, and qiskit schedules it as 18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qiskit.circuit import QuantumCircuit
from qiskit.transpiler import PassManager, Target
from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay

_TIMELESS = frozenset({"barrier"})


@dataclass(frozen=True)
class Timed:
    """One scheduled instruction: its qubits (circuit indices), start and duration in samples."""

    operation: Any  # a qiskit Instruction
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    start: int
    duration: int

    @property
    def name(self) -> str:
        return self.operation.name

    @property
    def stop(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, eq=False)
class Schedule:
    """A circuit scheduled ALAP on a Target (see the module docstring)."""

    circuit: QuantumCircuit  # qiskit's scheduled circuit, delays in samples
    timeline: tuple[Timed, ...]  # circuit order
    dt: float  # seconds per sample
    duration: int  # the whole schedule, samples

    @property
    def seconds(self) -> float:
        return self.duration * self.dt

    @property
    def active_qubits(self) -> tuple[int, ...]:
        """Qubits with at least one operation other than a delay, sorted."""
        return tuple(sorted({q for t in self.timeline if t.name != "delay" and t.name not in _TIMELESS for q in t.qubits}))

    def first_operation(self) -> dict[int, int]:
        """Index into :attr:`timeline` of each active qubit's first instruction that is not a delay."""
        first: dict[int, int] = {}
        for i, t in enumerate(self.timeline):
            if t.name == "delay" or t.name in _TIMELESS:
                continue
            for q in t.qubits:
                first.setdefault(q, i)
        return first

    def idle_windows(self) -> dict[int, list[tuple[int, int]]]:
        """Each active qubit's idle windows ``(start, stop)`` in samples, leading delays left out."""
        first = self.first_operation()
        out: dict[int, list[tuple[int, int]]] = {q: [] for q in first}
        for i, t in enumerate(self.timeline):
            if t.name == "delay" and t.duration > 0:
                for q in t.qubits:
                    if q in first and i > first[q]:
                        out[q].append((t.start, t.stop))
        return out

    def idle_seconds(self) -> dict[int, float]:
        """Total idle time (s) of each active qubit between its first operation and its measurement."""
        return {q: self.dt * sum(b - a for a, b in w) for q, w in self.idle_windows().items()}

    def measured(self) -> tuple[int, ...]:
        """The qubit measured into each clbit, in clbit order (the last measurement wins)."""
        reads = {t.clbits[0]: t.qubits[0] for t in self.timeline if t.name == "measure"}
        return tuple(reads[c] for c in sorted(reads))


def schedule_alap(circuit: QuantumCircuit, target: Target) -> Schedule:
    """Schedule a transpiled circuit ALAP with the Target's durations (``target.dt`` must be set;
    :func:`qflhw.calibration.target.to_target` always sets one)."""
    if not target.dt:
        raise ValueError("schedule_alap needs target.dt; qiskit schedules in float seconds without one")
    scheduled = PassManager([ALAPScheduleAnalysis(target=target), PadDelay(target=target)]).run(circuit)
    durations = target.durations()
    timeline = []
    clock: dict[int, int] = {}
    for ci, start in zip(scheduled.data, scheduled.op_start_times):
        op = ci.operation
        qubits = tuple(scheduled.find_bit(q).index for q in ci.qubits)
        clbits = tuple(scheduled.find_bit(c).index for c in ci.clbits)
        if op.name == "delay":
            if op.unit != "dt":
                raise ValueError(f"delay in {op.unit!r}; expected samples (dt)")
            duration = int(op.duration)
        elif op.name in _TIMELESS:
            duration = 0
        else:
            duration = int(durations.get(op, list(qubits), unit="dt"))
        if op.name not in _TIMELESS:
            for q in qubits:  # PadDelay leaves no gaps: every qubit's clock meets each start
                if clock.get(q, 0) != start:
                    raise ValueError(f"schedule gap on qubit {q} before {op.name} at {start} (clock {clock.get(q, 0)})")
                clock[q] = start + duration
        timeline.append(Timed(op, qubits, clbits, int(start), duration))
    return Schedule(scheduled, tuple(timeline), float(target.dt), max((t.stop for t in timeline), default=0))
