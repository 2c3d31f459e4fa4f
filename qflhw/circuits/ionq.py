"""IonQ natives: rewrite a circuit in the qiskit basis rz/sx/x/rxx (or rzz) into gpi/gpi2/ms (or zz).

IonQ twins are transpiled in that exactly equivalent qiskit basis (see
:mod:`qflhw.calibration.braket_import`); a real IonQ submission needs the native gates, which
this rewrite produces by tracking the virtual Z frame, as IonQ's own compiler does. Aria's
entangler is MS (from ``rxx``), Forte's is ZZ (from ``rzz``: ``rzz(t)`` = qiskit_ionq
``ZZGate(t / 2 pi)`` = Braket ``zz(t)``; it commutes with Z rotations, so the frame passes through).
"""

from __future__ import annotations

import math
from typing import Any

from qflhw.errors import ConfigError


def to_ionq_native(circuit: Any) -> tuple[Any, list[float]]:
    """Rewrite a circuit in rz/sx/x/rxx/rzz into IonQ natives gpi/gpi2/ms/zz (qiskit_ionq gates, turns).

    Z rotations are not emitted: they shift the phase frame of the later gates on that qubit
    (RZ(-f) R(theta, a) RZ(f) = R(theta, a - f)), as IonQ's compiler does. Returns the native
    circuit and the Z frame (radians) left on each qubit at the end: the input equals the output
    followed by ``rz(frame[q])`` on each qubit, up to global phase, so the frames can be dropped
    before a computational-basis measurement. Parameters must be bound.
    """
    from qiskit.circuit import QuantumCircuit
    from qiskit_ionq.ionq_gates import GPI2Gate, GPIGate, MSGate, ZZGate

    out = QuantumCircuit(*circuit.qregs, *circuit.cregs, name=circuit.name)
    frame = [0.0] * circuit.num_qubits
    turns = lambda rad: (rad / (2 * math.pi)) % 1.0  # noqa: E731
    for ci in circuit.data:
        op, qs = ci.operation, [circuit.find_bit(q).index for q in ci.qubits]
        name = op.name
        params = [float(p) for p in op.params] if name in ("rz", "rxx", "rzz") else []
        if name == "rz":
            frame[qs[0]] += params[0]
        elif name in ("sx", "x"):  # R(pi/2, 0) / R(pi, 0) up to phase, seen through the frame
            gate = GPI2Gate if name == "sx" else GPIGate
            out.append(gate(turns(-frame[qs[0]])), [ci.qubits[0]])
        elif name == "rxx":
            a, b = qs
            theta = math.remainder(params[0], 2 * math.pi)  # in [-pi, pi]
            if abs(theta) > math.pi / 2 + 1e-12:  # rxx(t) = rxx(t -+ pi) . (X (x) X) up to phase
                out.append(GPIGate(turns(-frame[a])), [ci.qubits[0]])
                out.append(GPIGate(turns(-frame[b])), [ci.qubits[1]])
                theta -= math.copysign(math.pi, theta)
            flip = math.pi if theta < 0 else 0.0  # XX -> -XX by turning qubit b's axis by pi
            out.append(MSGate(turns(-frame[a]), turns(flip - frame[b]), abs(theta) / (2 * math.pi)), list(ci.qubits))
        elif name == "rzz":  # diagonal: commutes with the Z frame
            out.append(ZZGate(math.remainder(params[0], 2 * math.pi) / (2 * math.pi)), list(ci.qubits))
        elif name in ("measure", "barrier", "delay", "reset"):
            out.append(op, list(ci.qubits), list(ci.clbits))
        else:
            raise ConfigError(f"to_ionq_native: gate {name!r} is not in the IonQ qiskit basis rz/sx/x/rxx/rzz")
    return out, frame


