"""End to end through the command line on fake devices: outputs, determinism, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from qflhw.cli import main


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from tests.helpers import TINY_SPEC

    base = tmp_path_factory.mktemp("runs")
    spec = base / "tiny.toml"
    spec.write_text(TINY_SPEC)
    assert main(["run", str(spec), "--out", str(base / "r1"), "--quiet"]) == 0
    assert main(["run", str(spec), "--out", str(base / "r2"), "--quiet"]) == 0
    return base / "r1", base / "r2"


def test_run_writes_outputs(two_runs):
    r1, _ = two_runs
    for name in ("spec.toml", "metrics.csv", "summary.json", "learning_curve.png"):
        assert (r1 / name).is_file(), name
    summary = json.loads((r1 / "summary.json").read_text())
    for key in ("final_test_accuracy", "rounds", "total_shots", "total_cost_usd"):
        assert key in summary
    assert set(summary["clients"]) == {"a", "b"}
    assert summary["clients"]["a"]["device"] == "fake_fez"
    assert 0 < summary["clients"]["b"]["esp"] < 1
    rows = list(csv.DictReader(open(r1 / "metrics.csv")))
    assert len(rows) == 2 * 2  # rounds x clients
    # shots by hand: 2 qubits x 1 layer = RX/RY/RZ on 2 qubits (6 two-term weights) + 1 CRX
    # (four-term): 1 + 6*2 + 1*4 = 17 bindings per point, 8 points, 1 Z basis, 200 shots, 2 rounds
    assert summary["clients"]["a"]["shots"] == 2 * 8 * 17 * 200
    assert summary["total_shots"] == sum(int(r["shots"]) for r in rows)


def test_same_spec_same_seed_same_numbers(two_runs):
    r1, r2 = two_runs
    s1 = json.loads((r1 / "summary.json").read_text())
    s2 = json.loads((r2 / "summary.json").read_text())
    for s in (s1, s2):
        s.pop("run_id"), s.pop("wall_seconds")
    assert s1 == s2
    assert np.isfinite(s1["final_parameters"]).all()


def test_existing_run_dir_is_refused_and_untouched(two_runs, capsys):
    r1, _ = two_runs
    snapshot = lambda: {p: p.read_bytes() for p in r1.rglob("*") if p.is_file()}  # noqa: E731
    before = snapshot()
    assert main(["run", str(r1 / "spec.toml"), "--out", str(r1)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and is not empty" in err and "\n" not in err
    assert snapshot() == before


def test_unknown_device_is_one_line_exit_2(tmp_path, tiny_spec_text, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(tiny_spec_text.replace('"fake_kyiv"', '"fake_nowhere"'))
    assert main(["run", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "fake_nowhere" in err and "known:" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
