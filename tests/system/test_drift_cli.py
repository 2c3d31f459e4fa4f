"""End to end through the command line: a drifted series written by `qflhw calibration drift`, then
a run that steps through it by glob, and the same drift given as [clients.drift]."""

from __future__ import annotations

import csv
import subprocess
import sys

from qflhw.calibration.snapshot import Calibration


def _qflhw(*args: str, cwd) -> subprocess.CompletedProcess:  # noqa: ANN001
    return subprocess.run([sys.executable, "-m", "qflhw.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_written_series_and_the_drift_table_give_the_same_run(tmp_path):
    from tests.helpers import TINY_SPEC

    done = _qflhw("calibration", "drift", "ibm_fez/2025-02-26", "--sigma", "0.6", "--tau", "2", "--steps", "2",
                  "--seed", "11", "--out", str(tmp_path / "series"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "series" / "ibm_fez").glob("*.json"))
    assert len(files) == 2
    glob_spec = TINY_SPEC.replace('device = "fake_fez"', f'device = "fake_fez"\ncalibration = "{tmp_path}/series/ibm_fez/*.json"')
    drift_spec = TINY_SPEC.replace('device = "fake_fez"', 'device = "fake_fez"\n[clients.drift]\nsigma = 0.6\ntau_rounds = 2\nseed = 11')
    outs = []
    for name, text in (("glob", glob_spec), ("drift", drift_spec)):
        (tmp_path / f"{name}.toml").write_text(text)
        done = _qflhw("run", f"{name}.toml", "--out", name, "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outs.append(list(csv.DictReader(open(tmp_path / name / "metrics.csv"))))
    ids = [Calibration.load(f).id for f in files]
    for rows in outs:
        assert [r["calibration_id"] for r in rows if r["client"] == "a"] == ids
    # same snapshots, same device seed: the same numbers
    assert [r["loss"] for r in outs[0]] == [r["loss"] for r in outs[1]]
    assert [r["esp"] for r in outs[0]] == [r["esp"] for r in outs[1]]
