"""Readout-aware transpilation: measured qubits with good readout, no broken qubits, IQM's virtual rz."""

from __future__ import annotations

import numpy as np
import pytest
import rustworkx as rx
from qiskit import QuantumCircuit
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import to_target
from qflhw.circuits.ansatz import build
from qflhw.circuits.transpile import MEASURE_BARRIER, transpile_for
from qflhw.config.profiles import available, load_profile
from qflhw.config.spec import load_spec
from qflhw.devices.factory import make_device
from tests.fake_backends import sdk_backends, sdk_twin
from tests.helpers import ROOT


def _quickstart_model():
    spec = load_spec(ROOT / "jobs" / "quickstart.toml")
    return build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)


def _good_region(cal: Calibration, good: set[int]) -> int:
    """Size of the largest connected set of good-readout qubits over usable couplers."""
    g = rx.PyGraph()
    g.add_nodes_from(sorted(good))
    node = {q: i for i, q in enumerate(sorted(good))}
    for gate in cal.gates:
        if len(gate.qubits) == 2 and cal.usable(gate) and set(gate.qubits) <= good:
            g.add_edge(node[gate.qubits[0]], node[gate.qubits[1]], None)
    return max((len(c) for c in rx.connected_components(g)), default=0)


def test_quickstart_measures_only_on_good_readout_qubits_on_every_fake_device():
    """Every shipped fake profile and every qiskit-ibm-runtime fake backend: each measured
    physical qubit of the quickstart model reads out with at most twice the device's median
    readout error, wherever the device has a connected region of such qubits large enough."""
    model = _quickstart_model()
    devices = [make_device(p) for p in available() if load_profile(p).provider == "fake"]
    devices += [sdk_twin(b.name) for b in sdk_backends() if b.num_qubits >= model.num_qubits]
    assert len(devices) >= 70
    bad, exempt = {}, []
    for dev in devices:
        cal = dev.calibration
        tc = dev.transpile(model.circuit)
        ro = np.array([q.readout_error for q in cal.qubits])
        limit = 2 * np.median(ro)
        good = {q for q in range(cal.num_qubits) if ro[q] <= limit and cal.qubits[q].operational}
        if _good_region(cal, good) < model.num_qubits:
            exempt.append(cal.device)  # e.g. FakeManila: a line whose middle qubit reads out badly
            continue
        worst = max(ro[p] for p in tc.final_physical) / np.median(ro)
        if worst > 2:
            bad[cal.device] = (tc.final_physical, round(float(worst), 2))
    assert not bad, bad
    assert len(exempt) <= 3, exempt


def test_measurements_move_the_layout_to_better_readout():
    """Brisbane: transpiled without measurements (as before) the model lands on qubits whose mean
    readout error is about three times what the readout-aware layout picks."""
    cal = cal_mod.load("ibm_brisbane")
    model = build("rot-crx", 4, 4)
    plain = generate_preset_pass_manager(optimization_level=3, target=to_target(cal), seed_transpiler=1234).run(model.circuit)
    blind = plain.layout.final_index_layout()
    aware = transpile_for(model.circuit, cal).final_physical
    mean = lambda qs: float(np.mean([cal.qubits[q].readout_error for q in qs]))  # noqa: E731
    assert mean(aware) < 0.5 * mean(blind)


def test_a_what_if_bad_readout_moves_the_readout_aware_layout_away():
    cal = cal_mod.load("ibm_torino")
    model = build("rot-crx", 4, 2)
    first = transpile_for(model.circuit, cal).final_physical
    qubits = list(cal.qubits)
    for q in first:
        qubits[q] = qubits[q].model_copy(update={"prob_meas1_prep0": 0.3, "prob_meas0_prep1": 0.3})
    moved = transpile_for(model.circuit, cal.model_copy(update={"qubits": tuple(qubits)})).final_physical
    assert not set(moved) & set(first)


def test_non_operational_qubits_are_never_used():
    cal = cal_mod.load("ibm_torino")
    model = build("rot-crx", 4, 2)
    first = transpile_for(model.circuit, cal)
    qubits = [q.model_copy(update={"operational": False}) if i in first.physical_qubits else q for i, q in enumerate(cal.qubits)]
    banned = cal.model_copy(update={"schema_": cal_mod.SCHEMA, "qubits": tuple(qubits)})
    tc = transpile_for(model.circuit, banned)
    used = {tc.isa.find_bit(q).index for ci in tc.isa.data for q in ci.qubits}
    assert used and not used & set(first.physical_qubits)


def test_diagonal_gates_before_the_measurements_are_kept_for_other_bases():
    """The measurements are compiled behind a barrier, so a final rz (invisible to Z, not to X)
    stays in the circuit; the barrier and the measurements are not in the ISA circuit."""
    cal = cal_mod.load("ibm_fez")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.rz(0.7, 0)
    tc = transpile_for(qc, cal)
    assert "rz" in tc.compact.count_ops()
    names = {ci.operation.name for ci in tc.isa.data}
    assert "measure" not in names and not any(getattr(ci.operation, "label", None) == MEASURE_BARRIER for ci in tc.isa.data)


@pytest.mark.parametrize("virtual_rz, r_gates", [(False, 128), (True, 100)])
def test_iqm_virtual_rz_saves_physical_r_gates(virtual_rz, r_gates):
    """The issue's count on Garnet: the 4-qubit, 2-layer model needs 128 physical prx without
    virtual rz and 100 with it; ESP rises accordingly."""
    cal = cal_mod.load("iqm_garnet")
    tc = transpile_for(build("rot-crx", 4, 2).circuit, cal, virtual_rz=virtual_rz)
    assert tc.compact.count_ops()["r"] == r_gates
    if virtual_rz:
        assert tc.esp > transpile_for(build("rot-crx", 4, 2).circuit, cal, virtual_rz=False).esp


def test_esp_follows_the_twins_channel_correction():
    """ESP uses the channel the twin simulates: with the correction on, each flagged gate in the
    circuit counts 1 - error instead of its relaxation-only fidelity."""
    from qflhw.calibration.channels import flagged_gates

    cal = cal_mod.load("ibm_brisbane")
    circuit = build("rot-crx", 4, 1).circuit
    plain = transpile_for(circuit, cal)
    fixed = transpile_for(circuit, cal, channel_correction=True)
    assert fixed.final_physical == plain.final_physical
    flagged = {(c.name, c.qubits): c for c in flagged_gates(cal)}
    ratio = 1.0
    for ci in plain.isa.data:
        c = flagged.get((ci.operation.name, tuple(plain.isa.find_bit(q).index for q in ci.qubits)))
        if c is not None:
            ratio *= (1 - c.calibrated_error) / (1 - c.relaxation_error)
    assert ratio > 1  # the circuit does use flagged gates
    assert fixed.esp == pytest.approx(plain.esp * ratio, rel=1e-12)
