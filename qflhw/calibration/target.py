"""From a calibration snapshot to what qiskit understands: a ``Target`` and an Aer noise model.

The transpiler reads gate errors from the Target for its noise-aware layout and qiskit's
scheduler its durations; Aer's ``NoiseModel.from_backend`` turns the same Target into
depolarizing + thermal-relaxation errors. The Target of a snapshot:

* holds only what a circuit may use: non-operational qubits keep their index but get no
  instruction at all, and non-operational gates and gates calibrated with error 1 are left out
  (:meth:`~qflhw.calibration.snapshot.Calibration.usable`), so no layout or route uses them;
* has ``measure`` with the readout duration and the mean of the two (unclipped) readout
  probabilities as its error, so a circuit transpiled *with* its measurements gets a
  readout-aware layout;
* supports ``delay`` on every operational qubit: qiskit's ``PadDelay`` silently skips qubits
  whose Target lacks it, and a schedule without delays has no idle windows;
* has a sample time ``dt``: the device's own, or :data:`SYNTHETIC_DT` for devices that report
  none (IQM, IonQ, Rigetti), so qiskit schedules in integer samples, not float seconds;
* gives devices whose one-qubit native is the phased rotation ``r(theta, phi)`` (IQM's prx) a
  **virtual** ``rz`` (error 0, duration 0): ``r(theta, phi) rz(lam) = rz(lam) r(theta, phi - lam)``,
  so every z rotation can be pushed through to the measurement and dropped, which is what IQM's
  own compiler does (qiskit-on-iqm's ``IQMOptimizeSingleQubitGates``). Circuits sent to the real
  device have them absorbed first (:func:`qflhw.circuits.iqm.absorb_virtual_rz`).

For speed the noise model is built on a Target restricted to the few physical qubits a circuit
uses: noise is local to each gate's qubits, so this gives the same channels as the full device.
Readout error is not put into the noise model: it is applied to exact probabilities afterwards,
with both asymmetric probabilities from the snapshot (the Target can only hold one number).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache

from qiskit.circuit import Delay, Gate, Instruction, Parameter
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import InstructionProperties, QubitProperties, Target

from qflhw.calibration.snapshot import Calibration
from qflhw.errors import CalibrationError

SYNTHETIC_DT = 1e-15
"""Sample time (s) of the Target of a device whose calibration has none: 1 fs, fine enough that
rounding durations to samples changes relaxation by less than 1e-10 (old IBM fake backends without
a dt have durations like 355.55... ns; IonQ's 600 us gates are 6e11 samples, exact in a float)."""

VIRTUAL_RZ_HOSTS = frozenset({"r"})
"""One-qubit natives that absorb z rotations as phase shifts, so ``rz`` is virtual next to them."""


@lru_cache(maxsize=1)
def gate_library() -> dict[str, Instruction]:
    """qiskit instruction objects by name: the standard library plus IonQ's native gates.

    IonQ's gates (qiskit_ionq) take turns, not radians: ``zz(t)`` = exp(-i pi t Z(x)Z) = ``rzz(2 pi t)``.
    """
    lib = dict(get_standard_gate_name_mapping())
    try:  # IonQ natives (gpi, gpi2, ms, zz) come with qiskit-braket-provider's dependency qiskit-ionq
        from qiskit.circuit import Parameter
        from qiskit_ionq.ionq_gates import GPI2Gate, GPIGate, MSGate, ZZGate

        lib["gpi"] = GPIGate(Parameter("phi"))
        lib["gpi2"] = GPI2Gate(Parameter("phi"))
        lib["ms"] = MSGate(Parameter("phi0"), Parameter("phi1"), Parameter("theta"))
        lib["zz"] = ZZGate(Parameter("theta"))
    except ImportError:  # pragma: no cover - only without the Braket extras
        pass
    return lib


def native_gates(cal: Calibration, *, virtual_rz: bool = True) -> tuple[str, ...]:
    """The instructions a compiled circuit may hold: the snapshot's natives, plus a virtual ``rz``
    next to an ``r`` native (module docstring) unless ``virtual_rz`` is False."""
    natives = tuple(cal.native_gates)
    if virtual_rz and "rz" not in natives and VIRTUAL_RZ_HOSTS & set(natives):
        natives = natives + ("rz",)
    return natives


def to_target(
    cal: Calibration,
    qubits: Sequence[int] | None = None,
    gates: Collection[str] | None = None,
    *,
    virtual_rz: bool = True,
    broken_gates: bool = False,
) -> Target:
    """The qiskit Target of a snapshot (module docstring), optionally restricted (and
    re-indexed) to ``qubits`` and to the native ``gates`` named (measurement and delay are
    always kept). ``broken_gates`` keeps gates calibrated with error 1 (for a device that has
    nothing else, like FakeKyoto, whose every ECR reports 1.0)."""
    keep = list(range(cal.num_qubits)) if qubits is None else list(qubits)
    index = {q: i for i, q in enumerate(keep)}
    qprops = [
        QubitProperties(t1=cal.qubits[q].t1, t2=cal.qubits[q].t2, frequency=cal.qubits[q].frequency)
        for q in keep
    ]
    target = Target(
        description=f"{cal.device} {cal.date}",
        num_qubits=len(keep),
        dt=cal.dt or SYNTHETIC_DT,
        qubit_properties=qprops,
    )
    ok = [q for q in keep if cal.qubits[q].operational]
    lib = gate_library()
    by_gate: dict[str, dict[tuple[int, ...], InstructionProperties]] = {}
    for g in cal.gates:
        usable = cal.usable(g) or (broken_gates and g.operational and all(cal.qubits[q].operational for q in g.qubits))
        if all(q in index for q in g.qubits) and usable:
            by_gate.setdefault(g.gate, {})[tuple(index[q] for q in g.qubits)] = InstructionProperties(
                duration=g.duration, error=g.error
            )
    natives = native_gates(cal, virtual_rz=virtual_rz)
    if "rz" in natives and "rz" not in cal.native_gates:  # virtual rz: a frame change, free and instant
        by_gate["rz"] = {(index[q],): InstructionProperties(duration=0.0, error=0.0) for q in ok}
    for name in natives:
        if name == "measure" or (gates is not None and name not in gates):
            continue
        if name not in lib:
            raise CalibrationError(
                f"calibration {cal.device}/{cal.date}: native gate {name!r} is unknown to qiskit; "
                f"use one of {sorted(lib)}"
            )
        props = by_gate.get(name)
        if props:
            target.add_instruction(lib[name], props)
    target.add_instruction(
        lib["measure"],
        {
            (index[q],): InstructionProperties(
                duration=cal.qubits[q].readout_length or 0.0, error=cal.qubits[q].readout_error
            )
            for q in ok
        },
    )
    target.add_instruction(Delay(Parameter("t")), {(index[q],): None for q in ok})
    return target


class TargetBackend(BackendV2):
    """The smallest BackendV2 around a Target, for ``NoiseModel.from_backend``; it cannot run."""

    def __init__(self, target: Target, name: str = "qflhw-target"):
        super().__init__(name=name)
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options()

    def run(self, run_input, **options):  # noqa: ANN001 - BackendV2 signature
        raise NotImplementedError("TargetBackend only describes a device; run on a qflhw Device")


def noise_model(target: Target):
    """Aer gate noise (depolarizing + thermal relaxation) of a Target, without readout error."""
    from qiskit_aer.noise import NoiseModel

    return NoiseModel.from_backend(TargetBackend(target), readout_error=False)


def is_two_qubit_gate(inst: Instruction) -> bool:
    return isinstance(inst, Gate) and inst.num_qubits == 2
