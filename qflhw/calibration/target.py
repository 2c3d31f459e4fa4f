"""From a calibration snapshot to what qiskit understands: a ``Target`` and an Aer noise model.

The transpiler reads gate errors from the Target for its noise-aware layout; Aer's
``NoiseModel.from_backend`` turns the same Target into depolarizing + thermal-relaxation errors.
For speed the noise model is built on a Target restricted to the few physical qubits a circuit
uses: noise is local to each gate's qubits, so this gives the same channels as the full device.
Readout error is not put into the noise model: it is applied to exact probabilities afterwards,
with both asymmetric probabilities from the snapshot (the Target can only hold one number).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache

from qiskit.circuit import Gate, Instruction
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import InstructionProperties, QubitProperties, Target

from qflhw.calibration.snapshot import Calibration
from qflhw.errors import CalibrationError


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


def to_target(cal: Calibration, qubits: Sequence[int] | None = None, gates: Collection[str] | None = None) -> Target:
    """The qiskit Target of a snapshot, optionally restricted (and re-indexed) to ``qubits``
    and to the native ``gates`` named (measurement is always kept)."""
    keep = list(range(cal.num_qubits)) if qubits is None else list(qubits)
    index = {q: i for i, q in enumerate(keep)}
    qprops = [
        QubitProperties(t1=cal.qubits[q].t1, t2=cal.qubits[q].t2, frequency=cal.qubits[q].frequency)
        for q in keep
    ]
    target = Target(
        description=f"{cal.device} {cal.date}",
        num_qubits=len(keep),
        dt=cal.dt,
        qubit_properties=qprops,
    )
    lib = gate_library()
    by_gate: dict[str, dict[tuple[int, ...], InstructionProperties]] = {}
    for g in cal.gates:
        if all(q in index for q in g.qubits):
            by_gate.setdefault(g.gate, {})[tuple(index[q] for q in g.qubits)] = InstructionProperties(
                duration=g.duration, error=g.error
            )
    for name in cal.native_gates:
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
                duration=cal.qubits[q].readout_length, error=cal.qubits[q].readout_error
            )
            for q in keep
        },
    )
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


def gate_errors(target: Target) -> dict:
    """The same gate noise as :func:`noise_model`, as ``{(gate, qubits): QuantumError}``.

    Built by Aer's own ``basic_device_gate_errors`` (what ``NoiseModel.from_backend`` calls),
    with ideal errors dropped and repeated ones composed, as ``NoiseModel.add_quantum_error`` does.
    """
    from qiskit_aer.noise.device import basic_device_gate_errors

    out: dict = {}
    for name, qubits, error in basic_device_gate_errors(target=target):
        if error.ideal():
            continue
        key = (name, tuple(qubits))
        out[key] = out[key].compose(error) if key in out else error
    return out


def is_two_qubit_gate(inst: Instruction) -> bool:
    return isinstance(inst, Gate) and inst.num_qubits == 2
