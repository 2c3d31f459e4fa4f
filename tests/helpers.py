"""What several test modules share: a tiny spec that runs in seconds on two fake devices."""

from __future__ import annotations

from pathlib import Path

TINY_SPEC = """
name = "tiny"
seed = 3
rounds = 2

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 8

[model]
qubits = 2
layers = 1

[training]
batch_size = 4
learning_rate = 0.1
shots = 200

[[clients]]
name = "a"
device = "fake_fez"

[[clients]]
name = "b"
device = "fake_kyiv"
"""

ROOT = Path(__file__).resolve().parent.parent  # the repository: jobs/, backends/, calibration/


def esp_by_hand(isa, measured, raw: dict, scale: float = 1.0) -> float:  # noqa: ANN001
    """The scheduled ESP of a full-device ISA circuit measured on ``measured``, recomputed from a
    snapshot's raw JSON (scaled by ``scale`` as ``Calibration.scaled`` does) with qiskit's
    scheduler and Aer's channels only: per gate ``1 - error``, or the fidelity of its relaxation
    alone where that is worse (Aer then drops the depolarizing part); per idle window after a
    qubit's first gate its relaxation fidelity; per measured qubit ``1 -`` mean readout error."""
    import math

    from qiskit.circuit import Delay, Parameter, QuantumCircuit
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit.quantum_info import average_gate_fidelity
    from qiskit.transpiler import InstructionProperties, PassManager, Target
    from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay
    from qiskit_aer.noise import thermal_relaxation_error

    qubits = raw["qubits"]
    t1 = [q["t1"] / scale if q.get("t1") else math.inf for q in qubits]
    t2 = [min(q["t2"] / scale if q.get("t2") else 2 * a, 2 * a) for q, a in zip(qubits, t1)]
    gates = {(g["gate"], tuple(g["qubits"])): (min(g["error"] * scale, max(0.75, g["error"])), g["duration"]) for g in raw["gates"]}
    grow = lambda p: min(p * scale, max(0.5, p))  # noqa: E731 - towards the uninformative 0.5
    readout = [(grow(q["prob_meas1_prep0"]) + grow(q["prob_meas0_prep1"])) / 2 for q in qubits]
    n = len(qubits)
    target = Target(num_qubits=n, dt=raw.get("dt") or 1e-15)  # qflhw.calibration.target.SYNTHETIC_DT
    lib = get_standard_gate_name_mapping()
    by_name: dict = {}
    for (name, qs), (_, duration) in gates.items():
        by_name.setdefault(name, {})[qs] = InstructionProperties(duration=duration)
    used = {ci.operation.name for ci in isa.data}
    for name in used - {"barrier", "measure", "delay"}:
        target.add_instruction(lib[name], by_name.get(name) or {(q,): InstructionProperties(duration=0.0) for q in range(n)})
    target.add_instruction(lib["measure"], {(q,): InstructionProperties(duration=qubits[q].get("readout_length") or 0.0) for q in range(n)})
    target.add_instruction(Delay(Parameter("t")), {(q,): None for q in range(n)})
    circ = QuantumCircuit(n, len(measured))
    circ.compose(isa, inplace=True)
    for i, q in enumerate(measured):
        circ.measure(q, i)
    sched = PassManager([ALAPScheduleAnalysis(target=target), PadDelay(target=target)]).run(circ)

    def relax_fidelity(qs, seconds):  # noqa: ANN001, ANN202
        f_pro = 1.0
        for q in qs:
            if seconds and t1[q] != math.inf:
                f_pro *= (3 * average_gate_fidelity(thermal_relaxation_error(t1[q], t2[q], seconds)) - 1) / 2  # F_pro, d = 2
        d = 2 ** len(qs)
        return (d * f_pro + 1) / (d + 1)

    p, started = 1.0, set()
    for ci in sched.data:
        name, qs = ci.operation.name, tuple(sched.find_bit(q).index for q in ci.qubits)
        if name == "measure":
            p *= 1 - readout[qs[0]]
        elif name == "delay":
            if qs[0] in started:
                p *= relax_fidelity(qs, ci.operation.duration * target.dt)
        elif name != "barrier":
            started.update(qs)
            error, duration = gates.get((name, qs), (0.0, 0.0))
            f_relax = relax_fidelity(qs, duration)
            p *= 1 - error if error > 1 - f_relax else f_relax
    return p
