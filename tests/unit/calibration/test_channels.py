"""Calibrated gate channels against the calibration and against Aer's own device channels."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import PTM, SuperOp, average_gate_fidelity

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.channels import ChannelTable, flagged_gates, gate_channel
from qflhw.calibration.target import to_target


@pytest.fixture(scope="module")
def brisbane():
    return cal_mod.load("ibm_brisbane")


def _aer_errors(cal):
    from qiskit_aer.noise.device import basic_device_gate_errors

    return {(name, tuple(q)): e for name, q, e in basic_device_gate_errors(target=to_target(cal))}


def test_channels_are_aer_s_and_reproduce_the_calibration_where_they_can(brisbane):
    """A sample of gates, every flagged one included: the PTM equals Aer's basic_device_gate_errors
    channel; unflagged gates have average fidelity exactly 1 - error, flagged ones have Aer's
    (relaxation-only) fidelity, which is below 1 - error."""
    aer = _aer_errors(brisbane)
    table = ChannelTable(brisbane)
    flagged = {(c.name, c.qubits) for c in table.flagged()}
    rng = np.random.default_rng(0)
    keys = sorted(aer)
    sample = [keys[i] for i in rng.choice(len(keys), 40, replace=False)] + sorted(flagged)[:40]
    for key in sample:
        ch = table.gate(*key)
        ref = SuperOp(aer[key].to_quantumchannel())
        np.testing.assert_allclose(table.gate_ptm(*key), PTM(ref).data.real, atol=1e-12)
        f_aer = average_gate_fidelity(ref)
        assert ch.fidelity == pytest.approx(f_aer, abs=1e-12)
        g = next(g for g in brisbane.gates if (g.gate, g.qubits) == key)
        if key in flagged:
            assert ch.flagged and f_aer < 1 - g.error
        else:
            assert f_aer == pytest.approx(1 - g.error, abs=1e-12)


def test_flagged_gates_are_those_whose_relaxation_alone_is_worse_than_calibrated(brisbane):
    """Independently: relaxation for the gate's duration (Aer's thermal_relaxation_error, T2 at
    most 2 T1) has average infidelity at least the calibrated error."""
    from qiskit_aer.noise import thermal_relaxation_error

    flagged = {(c.name, c.qubits) for c in flagged_gates(brisbane)}
    assert len(flagged) > 100  # about a quarter of Brisbane's ECRs and a third of its 1q gates
    for g in brisbane.gates:
        if not (brisbane.usable(g) and g.error > 0 and g.duration > 0) or len(g.qubits) != 1:
            continue
        q = brisbane.qubits[g.qubits[0]]
        f = average_gate_fidelity(thermal_relaxation_error(q.t1, min(q.t2, 2 * q.t1), g.duration))
        assert ((g.gate, g.qubits) in flagged) == (1 - f >= g.error)


def test_channel_correction_reproduces_the_calibration_of_a_flagged_gate(brisbane):
    ch = next(c for c in flagged_gates(brisbane) if len(c.qubits) == 2)
    fixed = gate_channel(brisbane, ch.name, ch.qubits, correct=True)
    assert fixed.corrected and fixed.relaxation_time < ch.duration
    table = ChannelTable(brisbane, correct=True)
    assert average_gate_fidelity(PTM(table.gate_ptm(ch.name, ch.qubits))) == pytest.approx(1 - ch.calibrated_error, abs=1e-12)
    assert ch.deficit > 0 and fixed.deficit == pytest.approx(0, abs=1e-12)


def test_idle_channel_is_aer_s_relaxation():
    from qiskit_aer.noise import thermal_relaxation_error

    cal = cal_mod.load("ibm_torino")
    table = ChannelTable(cal)
    q = cal.qubits[7]
    ref = thermal_relaxation_error(q.t1, min(q.t2, 2 * q.t1), 3.2e-6)
    np.testing.assert_allclose(table.idle_ptm(7, 3.2e-6), PTM(ref.to_quantumchannel()).data.real, atol=1e-14)
    assert table.idle_fidelity(7, 3.2e-6) == pytest.approx(average_gate_fidelity(ref), abs=1e-14)


@pytest.mark.parametrize("device", ["ibm_torino", "ibm_brisbane", "iqm_garnet"])
def test_relaxation_ptm_is_the_ptm_of_aer_s_thermal_relaxation_error(device):
    from qiskit_aer.noise import thermal_relaxation_error

    from qflhw.calibration.channels import relaxation_ptm, relaxation_times

    cal = cal_mod.load(device)
    for q in range(0, cal.num_qubits, 7):
        for seconds in (20e-9, 660e-9, 37e-6):
            t1, t2 = relaxation_times(cal, q)
            ref = PTM(thermal_relaxation_error(t1, t2, seconds).to_quantumchannel()).data.real
            np.testing.assert_allclose(relaxation_ptm(cal, q, seconds), ref, atol=1e-14)
