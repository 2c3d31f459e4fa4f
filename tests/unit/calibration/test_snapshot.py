"""Calibration snapshots, Targets and per-device transpilation, checked against the SDKs' own data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

from qflhw.calibration import snapshot as calibration
from qflhw.calibration.qiskit_import import from_fake_backend_name
from qflhw.calibration.snapshot import Calibration, calibration_root
from qflhw.calibration.target import SYNTHETIC_DT, native_gates, to_target
from qflhw.circuits.ansatz import build
from qflhw.circuits.transpile import TranspileCache, transpile_for
from qflhw.errors import CalibrationError, CircuitTooWide
from tests.helpers import esp_by_hand


@pytest.fixture(scope="module")
def torino():
    return calibration.load("ibm_torino")


def test_shipped_snapshot_matches_the_fake_backend(torino):
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    b = FakeTorino()
    props = b.properties()
    for q in (0, 17, 132):
        assert torino.qubits[q].t1 == pytest.approx(b.qubit_properties(q).t1)
        assert torino.qubits[q].prob_meas1_prep0 == pytest.approx(props.qubit_property(q, "prob_meas1_prep0")[0])
        assert torino.qubits[q].prob_meas0_prep1 == pytest.approx(props.qubit_property(q, "prob_meas0_prep1")[0])
    cz = {g.qubits: g for g in torino.gates if g.gate == "cz"}
    for qargs, ip in list(b.target["cz"].items())[:10]:
        assert cz[qargs].error == pytest.approx(ip.error) and cz[qargs].duration == pytest.approx(ip.duration)
    assert torino.provenance.kind == "exported" and "FakeTorino" in torino.provenance.source
    assert torino.date.isoformat() == calibration.resolve("ibm_torino").stem


def test_every_shipped_snapshot_loads_and_builds_a_target():
    devices = calibration.devices()
    assert {"ibm_torino", "ibm_fez", "ibm_brisbane", "ibm_sherbrooke", "ibm_kyiv"} <= set(devices)
    assert {"ionq_forte-1", "iqm_garnet", "rigetti_ankaa-3"} <= set(devices)
    for dev in devices:
        cal = calibration.load(dev)
        target = to_target(cal)
        assert target.num_qubits == cal.num_qubits
        assert set(target.operation_names) <= set(native_gates(cal)) | {"delay"}
        assert target.dt == (cal.dt or SYNTHETIC_DT)


def test_target_restriction_keeps_errors_and_reindexes(torino):
    full = to_target(torino)
    small = to_target(torino, [5, 6, 7])
    assert small.num_qubits == 3
    for (a, b) in small["cz"]:
        assert small["cz"][(a, b)].error == full["cz"][([5, 6, 7][a], [5, 6, 7][b])].error
    assert small["measure"][(1,)].error == pytest.approx(torino.qubits[6].readout_error)


def test_corrupt_and_incomplete_files_name_file_and_field(tmp_path, torino):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(CalibrationError, match="bad.json: not valid JSON"):
        Calibration.load(bad)
    raw = json.loads(torino.to_json())
    raw["gates"][4]["error"] = 1.7
    bad.write_text(json.dumps(raw))
    with pytest.raises(CalibrationError, match=r"bad.json: field gates\.4\.error"):
        Calibration.load(bad)
    raw = json.loads(torino.to_json())
    raw["qubits"] = raw["qubits"][:-1]
    bad.write_text(json.dumps(raw))
    with pytest.raises(CalibrationError, match="qubits has 132 entries but num_qubits is 133"):
        Calibration.load(bad)


def test_save_round_trips_and_never_overwrites(tmp_path, torino):
    path = torino.save(tmp_path)
    assert Calibration.load(path) == torino
    with pytest.raises(CalibrationError, match="never overwritten"):
        torino.save(tmp_path)


def test_exporter_works_for_any_fake_backend(tmp_path):
    cal = from_fake_backend_name("FakeAthensV2")
    assert cal.num_qubits == 5 and cal.device == "ibm_athens"
    assert calibration.load(str(cal.save(tmp_path))).num_qubits == 5


def test_scaled_snapshot_scales_errors_and_coherence(torino):
    s = torino.scaled(2.0)
    assert s.gates[10].error == pytest.approx(min(2 * torino.gates[10].error, 0.75))
    assert s.qubits[3].t1 == pytest.approx(torino.qubits[3].t1 / 2)
    assert s.provenance.kind == "scaled" and s.id != torino.id


def test_noise_scale_zero_is_an_ideal_twin(torino):
    """No gate or readout error, no relaxation; the same qubits, couplings and durations."""
    from qflhw.errors import ConfigError

    s = torino.scaled(0)
    assert all(g.error == 0 for g in s.gates) and all(q.readout_error == 0 for q in s.qubits)
    assert all(q.t1 is None and q.t2 is None for q in s.qubits)
    assert s.coupling_map == torino.coupling_map and [g.duration for g in s.gates] == [g.duration for g in torino.gates]
    assert s.provenance.notes.startswith("ideal")
    with pytest.raises(ConfigError, match=">= 0"):
        torino.scaled(-1)


@pytest.mark.parametrize("device", ["ibm_torino", "ibm_brisbane", "iqm_garnet"])
def test_esp_by_hand(device):
    """ESP = gates x idle windows x readouts of the ALAP-scheduled circuit, recomputed from the
    raw JSON with qiskit's scheduler and Aer's relaxation (tests.helpers.esp_by_hand)."""
    cal = calibration.load(device)
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.cx(0, 1)  # qubit 2 idles while this runs
    tc = transpile_for(qc, cal)
    raw = json.loads(calibration.resolve(device).read_text())
    assert tc.esp == pytest.approx(esp_by_hand(tc.isa, tc.final_physical, raw), rel=1e-9)
    assert tc.meta["idle_s"] > 0  # the schedule has idle windows, and ESP counts them
    gates_and_readout = np.prod([1 - g for g in _gate_errors(tc, cal)]) * np.prod(
        [1 - cal.qubits[p].readout_error for p in tc.final_physical]
    )
    assert tc.esp < gates_and_readout


def _gate_errors(tc, cal):
    errors = {(g.gate, g.qubits): g.error for g in cal.gates}
    return [errors.get((ci.operation.name, tuple(tc.isa.find_bit(q).index for q in ci.qubits)), 0.0) for ci in tc.isa.data]


def test_noise_aware_layout_beats_the_trivial_one(torino):
    model = build("rot-crx", 4, 2)
    tc = transpile_for(model.circuit, torino)
    trivial = generate_preset_pass_manager(
        optimization_level=3, target=to_target(torino), initial_layout=[0, 1, 2, 3], seed_transpiler=1234
    ).run(model.circuit)
    raw = json.loads(calibration.resolve("ibm_torino").read_text())
    trivial_esp = esp_by_hand(trivial, list(trivial.layout.final_index_layout()), raw)
    assert tc.esp > trivial_esp  # qubit 0 of Torino reads out with 17% error


def test_transpile_cache_and_width_check(torino):
    cache = TranspileCache(torino)
    c1 = build("hardware-efficient", 3, 1).circuit
    assert cache.get(c1) is cache.get(build("hardware-efficient", 3, 1).circuit)
    assert len(cache) == 1
    with pytest.raises(CircuitTooWide, match="needs 134 qubits but device ibm_torino has 133"):
        transpile_for(QuantumCircuit(134), torino)


def test_readout_matrix_columns_sum_to_one(torino):
    for q in range(0, 133, 11):
        np.testing.assert_allclose(torino.readout_matrix(q).sum(axis=0), [1, 1])


def test_version_1_files_load_with_their_labels_and_write_back_unchanged():
    """A v1 file kept Braket labels in the notes: they load as qubit_labels, the text round-trips."""
    path = calibration_root() / "iqm_garnet" / "2026-11-22.json"
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    assert raw["schema"] == "qflhw.calibration/1" and "qubit_labels" not in raw
    cal = Calibration.load(path)
    assert cal.labels == list(range(1, 21))  # the notes say braket_qubit_labels=1..20
    assert cal.to_json() + "\n" == text  # so its content hash (the id seeding shot noise) is unchanged
    ibm = Calibration.load(calibration_root() / "ibm_fez" / "2025-02-26.json")
    assert ibm.labels == list(range(ibm.num_qubits))


def test_version_2_keeps_labels_as_a_field(tmp_path):
    v1 = Calibration.load(calibration_root() / "iqm_garnet" / "2026-11-22.json")
    v2 = v1.model_copy(update={"schema_": "qflhw.calibration/2", "provenance": v1.provenance.model_copy(update={"notes": ""})})
    raw = json.loads(v2.to_json())
    assert raw["schema"] == "qflhw.calibration/2" and raw["qubit_labels"] == list(range(1, 21))
    again = Calibration.model_validate(raw)
    assert again.labels == list(range(1, 21)) and again.same_figures(v1)
    raw["qubit_labels"] = [1] * 20
    with pytest.raises(ValidationError, match="each of the 20 qubits once"):
        Calibration.model_validate(raw)


# ------------------------------------------------------------------------------ dating and same-day captures
def _capture(cal: Calibration, when: str, bump: float = 0.0) -> Calibration:
    """``cal`` as captured at ``when`` (UTC), with its first gate error raised by ``bump``."""
    import datetime as dt

    captured = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    gates = list(cal.gates)
    gates[0] = gates[0].model_copy(update={"error": gates[0].error + bump})
    return cal.model_copy(update={"schema_": "qflhw.calibration/2", "date": captured.date(), "captured": captured,
                                  "gates": tuple(gates)})


def test_a_changed_capture_of_the_same_day_is_a_new_file(tmp_path, torino):
    first = _capture(torino, "2026-12-01T08:00:00")
    kept, path, new = calibration.save_capture(first, tmp_path)
    assert new and path.name == "2026-12-01.json" and kept is first
    again, path2, new2 = calibration.save_capture(_capture(torino, "2026-12-01T09:30:00"), tmp_path)
    assert not new2 and path2 == path and again.id == first.id  # same figures: the stored one is reused
    changed = _capture(torino, "2026-12-01T14:05:09", bump=1e-4)
    kept3, path3, new3 = calibration.save_capture(changed, tmp_path)
    assert new3 and path3.name == "2026-12-01T140509Z.json" and kept3.id != first.id
    assert path.read_text() == first.to_json() + "\n"  # the day's first file is untouched
    # <device>/<date> names the day's first snapshot, <device>/latest the newest, the stamp the later one
    assert calibration.resolve("ibm_torino/2026-12-01", tmp_path) == path
    assert calibration.resolve("ibm_torino/latest", tmp_path) == path3
    assert calibration.resolve("ibm_torino/2026-12-01T140509Z", tmp_path) == path3
    assert Calibration.load(path3).captured == changed.captured
    later_day = _capture(torino, "2026-12-02T00:00:01")
    assert calibration.save_capture(later_day, tmp_path)[1].name == "2026-12-02.json"
    assert calibration.resolve("ibm_torino/latest", tmp_path).name == "2026-12-02.json"


def test_captured_is_optional_and_v1_files_refuse_it(tmp_path, torino):
    raw = json.loads(torino.to_json())
    assert "captured" not in raw  # files without a capture time write back without one
    raw["captured"] = "2026-12-01T00:00:00Z"
    with pytest.raises(ValidationError, match="captured is a field of qflhw.calibration/2"):
        Calibration.model_validate(raw)


def test_braket_snapshots_are_dated_by_their_figures_not_the_service_listing():
    from qflhw.calibration.braket_import import from_braket_properties
    from qflhw.calibration.published import properties_path

    raw = json.loads(properties_path("iqm_garnet").read_text())
    raw["service"]["updatedAt"] = "2020-01-01T00:00:00"  # the listing changed long ago
    cal = from_braket_properties(raw, device="iqm_x", source="test")
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    assert cal.date != dt.date(2020, 1, 1) and abs((now - cal.captured).total_seconds()) < 120  # captured now
    ionq = json.loads(properties_path("ionq_forte-1").read_text())
    ionq["standardized"]["updatedAt"] = "2026-11-30T17:45:00"  # the calibration time the figures carry
    cal = from_braket_properties(ionq, device="ionq_x", source="test")
    assert cal.date == dt.date(2026, 11, 30) and cal.stamp == "2026-11-30T174500Z"
# ------------------------------------------------------------------------------ schema version 2
def test_readout_above_one_half_is_kept_in_version_2_and_refused_in_version_1(tmp_path):
    """FakeTorino's qubit 86 reads 0 after a 1 with probability 0.916: the exporter keeps it (the
    version 1 exporter clipped it to 0.5); a version 1 file cannot hold it."""
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    props = FakeTorino().properties()
    cal = from_fake_backend_name("FakeTorino")
    assert cal.schema_ == calibration.SCHEMA
    assert cal.qubits[86].prob_meas0_prep1 == pytest.approx(props.qubit_property(86, "prob_meas0_prep1")[0])
    assert cal.qubits[86].prob_meas0_prep1 > 0.9
    again = Calibration.load(cal.save(tmp_path))
    assert again == cal and again.qubits[86].prob_meas0_prep1 > 0.9
    raw = json.loads(cal.to_json())
    raw["schema"] = calibration.SCHEMA_V1
    del raw["qubit_labels"]
    raw.pop("captured", None)
    with pytest.raises(ValidationError, match=r"qubits\[86\]: readout probabilities above 0.5 need qflhw.calibration/2"):
        Calibration.model_validate(raw)


def test_shipped_version_1_ibm_files_round_trip_unchanged():
    for device in ("ibm_torino", "ibm_brisbane", "ibm_fez", "ibm_kyiv", "ibm_sherbrooke"):
        path = calibration.resolve(device)
        text = path.read_text(encoding="utf-8")
        assert json.loads(text)["schema"] == calibration.SCHEMA_V1
        assert Calibration.load(path).to_json() + "\n" == text


def test_operational_flags_zz_and_readout_pairs_are_version_2_fields(torino):
    qubits = list(torino.qubits)
    qubits[5] = qubits[5].model_copy(update={"operational": False})
    gates = list(torino.gates)
    gates[0] = gates[0].model_copy(update={"operational": False})
    v2 = torino.model_copy(
        update={
            "schema_": calibration.SCHEMA,
            "qubits": tuple(qubits),
            "gates": tuple(gates),
            "zz": (calibration.CouplingZZ(qubits=(0, 1), zz=-25e3),),
            "readout_pairs": (calibration.PairReadout(qubits=(0, 1), matrix=tuple(map(tuple, np.eye(4)))),),
        }
    )
    raw = json.loads(v2.to_json())
    assert raw["qubits"][5]["operational"] is False and "operational" not in raw["qubits"][4]  # written only when false
    assert raw["gates"][0]["operational"] is False and raw["zz"] == [{"qubits": [0, 1], "zz": -25e3}]
    again = Calibration.model_validate(raw)
    assert again.same_figures(v2) and again.operational_qubits == tuple(q for q in range(133) if q != 5)
    assert not again.usable(again.gates[0])
    assert not any(again.usable(g) for g in again.gates if 5 in g.qubits)
    raw["schema"] = calibration.SCHEMA_V1
    del raw["qubit_labels"]
    raw.pop("captured", None)
    with pytest.raises(ValidationError, match="operational is a field of qflhw.calibration/2"):
        Calibration.model_validate(raw)
    bad = json.loads(v2.to_json())
    bad["readout_pairs"][0]["matrix"][0][0] = 0.5  # a column no longer sums to one
    with pytest.raises(ValidationError, match="each column must sum to 1"):
        Calibration.model_validate(bad)


def test_gate_error_one_is_not_usable(torino):
    broken = [g for g in torino.gates if g.error >= 1.0]
    assert broken  # FakeTorino reports 1.0 for its broken couplers
    assert not any(torino.usable(g) for g in broken)


def test_scaling_keeps_readout_above_one_half_and_broken_gates_broken():
    cal = from_fake_backend_name("FakeTorino")
    s = cal.scaled(3.0)
    assert s.qubits[86].prob_meas0_prep1 == cal.qubits[86].prob_meas0_prep1  # already past 0.5: stays
    assert s.qubits[0].prob_meas1_prep0 == pytest.approx(min(3 * cal.qubits[0].prob_meas1_prep0, 0.5))
    assert all(g.error == 1.0 for g, h in zip(s.gates, cal.gates) if h.error == 1.0)
    assert s.id != cal.id  # a copy gets its own content hash, even once the original's is cached


def test_readout_outliers_are_above_twice_the_median(torino):
    ro = np.array([q.readout_error for q in torino.qubits])
    assert set(torino.readout_outliers()) == set(np.flatnonzero(ro > 2 * np.median(ro)).tolist())
