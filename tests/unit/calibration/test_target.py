"""The Target of a snapshot: what the transpiler and the scheduler may use, checked against the snapshot."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator

from qflhw.calibration import snapshot as calibration
from qflhw.calibration.target import SYNTHETIC_DT, native_gates, to_target
from qflhw.circuits.iqm import absorb_virtual_rz


@pytest.fixture(scope="module")
def torino():
    return calibration.load("ibm_torino")


def test_non_operational_qubits_and_broken_gates_get_no_instruction(torino):
    qubits = list(torino.qubits)
    qubits[7] = qubits[7].model_copy(update={"operational": False})
    cal = torino.model_copy(update={"schema_": calibration.SCHEMA, "qubits": tuple(qubits)})
    target = to_target(cal)
    for name in target.operation_names:
        assert all(7 not in qargs for qargs in target[name]), name
    broken = {g.qubits for g in torino.gates if g.gate == "cz" and g.error >= 1.0}
    assert broken and not broken & set(target["cz"])
    assert (8,) in target["measure"] and (8,) in target["delay"]


def test_measure_has_the_readout_duration_and_mean_error_and_delay_is_everywhere(torino):
    target = to_target(torino)
    for q in (0, 50, 132):
        props = target["measure"][(q,)]
        assert props.error == pytest.approx(0.5 * (torino.qubits[q].prob_meas1_prep0 + torino.qubits[q].prob_meas0_prep1))
        assert props.duration == torino.qubits[q].readout_length
    assert len(target["delay"]) == torino.num_qubits and target.dt == torino.dt


def test_devices_without_dt_get_the_synthetic_sample_time():
    cal = calibration.load("iqm_garnet")
    assert cal.dt is None and to_target(cal).dt == SYNTHETIC_DT


def test_iqm_gets_a_virtual_rz_that_costs_nothing():
    cal = calibration.load("iqm_garnet")
    assert "rz" not in cal.native_gates and "rz" in native_gates(cal)
    target = to_target(cal)
    assert all(p.error == 0 and p.duration == 0 for p in target["rz"].values())
    assert "rz" not in to_target(cal, virtual_rz=False).operation_names
    ibm = calibration.load("ibm_fez")
    assert native_gates(ibm) == ibm.native_gates  # rz is already native there


def test_absorbing_virtual_rz_is_exact_up_to_the_final_frame():
    rng = np.random.default_rng(4)
    qc = QuantumCircuit(2)
    for _ in range(3):
        qc.rz(rng.uniform(-3, 3), 0)
        qc.r(rng.uniform(-3, 3), rng.uniform(-3, 3), 0)
        qc.rz(rng.uniform(-3, 3), 1)
        qc.cz(0, 1)
        qc.r(rng.uniform(-3, 3), rng.uniform(-3, 3), 1)
    qc.rz(0.4, 1)
    out, frame = absorb_virtual_rz(qc)
    assert "rz" not in out.count_ops() and out.count_ops()["r"] == qc.count_ops()["r"]
    check = out.copy()
    for q, f in enumerate(frame):
        check.rz(f, q)
    assert Operator(check).equiv(Operator(qc))
