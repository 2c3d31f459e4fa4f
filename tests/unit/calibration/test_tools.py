"""Calibration tools: diff against a scaled copy (expected medians from the raw JSON), scale never
overwrites."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.tools import diff
from qflhw.cli import main

REF = "ibm_fez/2025-02-26"


@pytest.fixture
def raw() -> dict:
    return json.loads(cal_mod.resolve(REF).read_text())


@pytest.fixture
def doubled(tmp_path) -> Path:
    out = tmp_path / "fez-x2.json"
    assert main(["calibration", "scale", REF, "2", "--out", str(out)]) == 0
    return out


def test_diff_of_a_2x_copy_reports_doubled_medians(raw, doubled, capsys):
    # by hand from the file: errors double (readout probabilities capped at 0.5, gate errors at 0.75),
    # T1 and T2 halve
    cz = [g["error"] for g in raw["gates"] if g["gate"] == "cz"]
    sx = [g["error"] for g in raw["gates"] if g["gate"] == "sx"]
    ro = [(q["prob_meas1_prep0"] + q["prob_meas0_prep1"]) / 2 for q in raw["qubits"]]
    ro2 = [(min(2 * q["prob_meas1_prep0"], 0.5) + min(2 * q["prob_meas0_prep1"], 0.5)) / 2 for q in raw["qubits"]]
    t1 = [q["t1"] for q in raw["qubits"] if q["t1"]]

    d = diff(cal_mod.load(REF), Calibration.load(doubled))
    gates = {g.gate: g for g in d.gates}
    assert gates["cz"].median_a == pytest.approx(statistics.median(cz))
    assert gates["cz"].median_b == pytest.approx(statistics.median(min(2 * e, 0.75) for e in cz))
    assert gates["cz"].median_b == pytest.approx(2 * statistics.median(cz))
    assert gates["sx"].median_b == pytest.approx(2 * statistics.median(sx))
    assert gates["rz"].median_a == gates["rz"].median_b == 0
    q = {c.metric: c for c in d.qubits}
    assert q["readout error"].median_a == pytest.approx(statistics.median(ro))
    assert q["readout error"].median_b == pytest.approx(statistics.median(ro2))
    assert q["T1"].median_b == pytest.approx(statistics.median(t1) / 2)
    assert q["T1"].worse == len(t1) and q["T1"].better == 0
    assert d.couplings_added == d.couplings_removed == ()

    assert main(["calibration", "diff", REF, str(doubled)]) == 0
    out = capsys.readouterr().out
    cz_line = next(line for line in out.splitlines() if line.strip().startswith("cz "))
    assert f"{statistics.median(cz):.3e}" in cz_line and f"{2 * statistics.median(cz):.3e}" in cz_line
    assert "x2" in cz_line
    assert "added 0; removed 0" in out


def test_scale_never_overwrites(doubled, capsys):
    before = doubled.read_bytes()
    assert main(["calibration", "scale", REF, "3", "--out", str(doubled)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(doubled) in err and "never overwrite" in err and "\n" not in err
    assert doubled.read_bytes() == before
    scaled = Calibration.load(doubled)
    assert scaled.provenance.kind == "scaled" and "x2" in scaled.provenance.notes


def test_scale_refuses_the_calibration_folder(capsys):
    target = cal_mod.calibration_root() / "ibm_fez" / "what-if.json"
    assert main(["calibration", "scale", REF, "2", "--out", str(target)]) == 2
    assert "measured snapshots only" in capsys.readouterr().err
    assert not target.exists()
