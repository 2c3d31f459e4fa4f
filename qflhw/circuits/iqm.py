"""IQM's virtual z rotations: absorb ``rz`` into the phases of the ``r`` (prx) gates that follow.

IQM QPUs execute ``prx(theta, phi)`` (qiskit's ``RGate``) and ``cz``; a z rotation is a change of
the phase reference of the later pulses, which IQM's own compiler does for free (qiskit-on-iqm's
``IQMOptimizeSingleQubitGates`` moves every ``rz`` to the end of the circuit, where a
computational-basis measurement cannot see it). Twins of IQM devices therefore compile with a
virtual ``rz`` (error 0, duration 0; see :mod:`qflhw.calibration.target`), and a circuit sent to
the real device has them absorbed here first, using

    r(theta, phi) rz(f) = rz(f) r(theta, phi - f)      (rz(f) first on the left-hand side)

and that ``cz`` commutes with z rotations.
"""

from __future__ import annotations

from typing import Any

from qflhw.errors import ConfigError


def absorb_virtual_rz(circuit: Any) -> tuple[Any, list[float]]:
    """``circuit`` (rz / r / cz / measure, parameters bound) without ``rz``: each z rotation shifts
    the phase of the later ``r`` gates on its qubit. Returns the new circuit and the z frame
    (radians) left on each qubit: the input equals the output followed by ``rz(frame[q])`` on each
    qubit, up to global phase, so the frames can be dropped before a measurement in the Z basis."""
    from qiskit.circuit import QuantumCircuit
    from qiskit.circuit.library import RGate

    out = QuantumCircuit(*circuit.qregs, *circuit.cregs, name=circuit.name, global_phase=circuit.global_phase)
    frame = [0.0] * circuit.num_qubits
    for ci in circuit.data:
        op, qs = ci.operation, [circuit.find_bit(q).index for q in ci.qubits]
        if op.name == "rz":
            frame[qs[0]] += float(op.params[0])
        elif op.name == "r":
            out.append(RGate(float(op.params[0]), float(op.params[1]) - frame[qs[0]]), list(ci.qubits))
        elif op.name == "reset":  # a fresh |0> has no phase reference to keep
            frame[qs[0]] = 0.0
            out.append(op, list(ci.qubits), list(ci.clbits))
        elif op.name in ("cz", "measure", "barrier", "delay", "id"):
            out.append(op, list(ci.qubits), list(ci.clbits))
        else:
            raise ConfigError(f"absorb_virtual_rz: gate {op.name!r} is not in IQM's basis r/cz (+ virtual rz)")
    return out, frame
