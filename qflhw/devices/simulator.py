"""Fast, faithful noisy simulation on only the physical qubits a circuit uses, scheduled as the
hardware runs it.

For each transpiled circuit and measurement basis, once:

1. The compact circuit (the transpiled circuit on its k used qubits) gets the basis rotation in
   native gates and its measurements, and is scheduled ALAP on the calibration's Target
   restricted to those qubits (:mod:`qflhw.circuits.schedule`): the circuit IBM executes, so
   every used qubit has the idle windows it has on the device.
2. The schedule is compiled into a :class:`~qflhw.devices.kernel.Program`: every gate followed by
   its calibrated channel (Aer's depolarizing + thermal relaxation model, see
   :mod:`qflhw.calibration.channels`), every idle window by its T1/T2 relaxation (what Aer's
   ``RelaxationNoisePass`` puts on a delay), then the calibrated asymmetric readout.

Then all bindings run at once in the batched kernel, which gives exact probabilities with
readout error. Finite shots are sampled from them (multinomial per binding and basis), which has
the statistics of a real measurement record. With the default ``[twin]`` options the result
equals ``AerSimulator.from_backend`` on the ALAP-scheduled circuit with the calibrated readout
(``tests/unit/devices/test_twin_agreement.py``); the options switch idle noise off or extra terms on.
"""

from __future__ import annotations

import threading

import numpy as np

from qflhw.calibration.channels import ChannelTable
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import to_target
from qflhw.circuits.measure import basis_rotation, expectations, measurement_bases
from qflhw.circuits.schedule import Schedule, schedule_alap
from qflhw.circuits.transpile import Transpiled, measured_compact
from qflhw.config.spec import TwinSpec
from qflhw.devices.base import BatchItem, ItemResult
from qflhw.devices.kernel import Program
from qflhw.errors import ConfigError


class CompactSimulator:
    """Evaluates batch items of one calibrated device; caches a program per circuit and basis."""

    def __init__(self, calibration: Calibration, *, threads: int = 1, twin: TwinSpec | None = None):
        self.threads = threads
        self.twin = twin or TwinSpec()
        self._lock = threading.Lock()
        self.calibration = calibration
        self._programs: dict[tuple[int, str], tuple[Transpiled, Schedule, Program]] = {}

    @property
    def calibration(self) -> Calibration:
        return self._calibration

    @calibration.setter
    def calibration(self, calibration: Calibration) -> None:
        """Swap the noise (a drift model's next snapshot); compiled programs are rebuilt on use."""
        with self._lock:
            self._calibration = calibration
            self.table = ChannelTable.of(calibration, correct=self.twin.channel_correction)
            self._programs = {}

    def schedule(self, tc: Transpiled, basis: str) -> Schedule:
        """The measured circuit of ``tc`` in ``basis`` on its compact qubits, scheduled ALAP."""
        target = to_target(self.calibration, tc.physical_qubits, virtual_rz=self.twin.virtual_rz, broken_gates=True)
        rot = basis_rotation(basis, target, tc.compact.num_qubits, tc.final_positions)
        return schedule_alap(measured_compact(tc.compact, tc.final_positions, rot), target)

    def program(self, tc: Transpiled, basis: str) -> Program:
        """The compiled program of ``tc`` in ``basis`` (cached per circuit object and basis); its
        angles take the compact circuit's parameters in ``tc.compact.parameters`` order."""
        key = (id(tc), basis)
        with self._lock:
            hit = self._programs.get(key)
            table = self.table
        if hit is None or hit[0] is not tc:
            schedule = self.schedule(tc, basis)
            program = Program.compile(
                schedule,
                table,
                tuple(tc.compact.parameters),
                tc.physical_qubits,
                idle_noise=self.twin.idle_noise,
                zz=self._zz() if self.twin.zz_crosstalk else None,
                readout_pairs=self._readout_pairs() if self.twin.correlated_readout else None,
            )
            hit = (tc, schedule, program)  # keep tc alive so its id stays unique
            with self._lock:
                self._programs[key] = hit
        return hit[2]

    def _zz(self) -> dict[tuple[int, int], float]:
        return {tuple(c.qubits): c.zz for c in self.calibration.zz}  # type: ignore[misc]

    def _readout_pairs(self) -> dict[tuple[int, int], np.ndarray]:
        return {tuple(p.qubits): np.asarray(p.matrix) for p in self.calibration.readout_pairs}  # type: ignore[misc]

    def probabilities(self, item: BatchItem) -> tuple[list[str], list[np.ndarray]]:
        """Exact noisy outcome probabilities per measurement basis, readout error included;
        outcome index bit i is logical qubit i."""
        bases = measurement_bases(item.observables)
        # by name: the transpile cache shares one compiled circuit between circuits that differ
        # only in their Parameter objects (same names, same gates, see circuits.transpile.fingerprint)
        column = {p.name: i for i, p in enumerate(item.parameters)}
        missing = [p.name for p in item.circuit.compact.parameters if p.name not in column]
        if missing:
            raise ConfigError(f"no binding column for parameter(s) {missing} of {item.circuit.logical.name!r}")
        out = []
        for basis in bases:
            program = self.program(item.circuit, basis)
            columns = [column[p.name] for p in program.angles.parameters]
            out.append(program.probabilities(item.bindings[:, columns], threads=self.threads))
        return bases, out

    def evaluate(self, item: BatchItem, shots: int | None, rng: np.random.Generator) -> ItemResult:
        """Expectation values: exact (``shots=None``) or estimated from sampled shots.

        A sampled item with its own ``shots`` uses those instead of the batch's.
        """
        if shots is not None and item.shots is not None:
            shots = item.shots
        bases, probs = self.probabilities(item)
        if shots is None:
            values, _ = expectations(probs, bases, item.observables)
            return ItemResult(values, np.zeros_like(values), bases, probs)
        sampled = []
        for p in probs:
            p = np.clip(p, 0.0, None)
            p /= p.sum(axis=1, keepdims=True)
            sampled.append(rng.multinomial(shots, p) / shots)
        values, var = expectations(sampled, bases, item.observables)
        return ItemResult(values, np.sqrt(var / shots), bases, sampled)

