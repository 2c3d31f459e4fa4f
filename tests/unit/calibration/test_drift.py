"""Drifting calibrations: the OU model's statistics against its theory, seeds, series and the CLI.

Expected values come from the Ornstein-Uhlenbeck process itself: a process started at 0 has mean
0, variance sigma^2 (1 - a^(2t)) after t steps and lag-1 correlation a = exp(-1/tau) once
stationary; the figures of a drifted snapshot are the raw JSON's times exp(offset).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.drift import CalibrationSchedule, expand_refs, ou_path, write_series
from qflhw.cli import main
from qflhw.config.spec import DriftSpec
from qflhw.errors import ConfigError

REF = "ibm_fez/2025-02-26"


def test_ou_variance_follows_theory_step_by_step():
    sigma, tau, steps, size = 0.3, 4.0, 60, 4000
    x = ou_path(sigma, tau, steps, size, np.random.default_rng(11))
    a = math.exp(-1 / tau)
    assert np.all(x[0] == 0)  # the device was just calibrated
    for t in (1, 2, 5, 10, 30, 59):
        expected = sigma**2 * (1 - a ** (2 * t))
        # (size - 1) s^2 / var is chi-square with size - 1 degrees of freedom: a two-sided 99.9% band
        lo, hi = stats.chi2.ppf([0.0005, 0.9995], size - 1) / (size - 1)
        assert lo * expected <= x[t].var(ddof=1) <= hi * expected, t
        assert abs(x[t].mean()) < 4 * math.sqrt(expected / size), t


def test_ou_stationary_mean_variance_and_correlation_over_many_steps():
    sigma, tau = 0.25, 3.0
    x = ou_path(sigma, tau, 3000, 200, np.random.default_rng(5))[100:]  # past the transient
    a = math.exp(-1 / tau)
    # every element's time series: mean 0, variance sigma^2, lag-1 correlation a (within sampling error)
    assert abs(x.mean()) < 0.01
    assert x.var() == pytest.approx(sigma**2, rel=0.03)
    lag1 = np.mean([np.corrcoef(x[:-1, i], x[1:, i])[0, 1] for i in range(x.shape[1])])
    assert lag1 == pytest.approx(a, abs=0.01)
    lag3 = np.mean([np.corrcoef(x[:-3, i], x[3:, i])[0, 1] for i in range(x.shape[1])])
    assert lag3 == pytest.approx(a**3, abs=0.015)


def test_recalibration_resets_the_drift():
    x = ou_path(0.5, 10.0, 25, 300, np.random.default_rng(2), reset_every=8)
    assert np.all(x[[0, 8, 16, 24]] == 0)
    a = math.exp(-1 / 10)
    # one step after a reset the spread is that of one step from 0 again
    assert x[9].var() == pytest.approx(0.25 * (1 - a**2), rel=0.25)
    assert x[7].var() > 3 * x[9].var()


def _log_ratios(base: cal_mod.Calibration, drifted: cal_mod.Calibration) -> dict[str, np.ndarray]:
    g = np.array([math.log(d.error / b.error) for b, d in zip(base.gates, drifted.gates) if b.error > 0 and d.error < 0.75])
    p01 = np.array([math.log(d.prob_meas1_prep0 / b.prob_meas1_prep0) for b, d in zip(base.qubits, drifted.qubits)
                    if b.prob_meas1_prep0 > 0 and d.prob_meas1_prep0 < 0.5])
    t1 = np.array([math.log(b.t1 / d.t1) for b, d in zip(base.qubits, drifted.qubits) if b.t1])
    return {"gates": g, "p01": p01, "t1": t1}


def test_drifted_snapshot_figures_follow_the_model():
    base = cal_mod.load(REF)
    raw = json.loads(cal_mod.resolve(REF).read_text())
    sigma, tau = 0.2, 2.0
    sched = CalibrationSchedule([base], drift=DriftSpec(sigma=sigma, tau_rounds=tau), seed=9, rounds=40)
    pooled: dict[str, list] = {"gates": [], "p01": [], "t1": []}
    for r in range(15, 40, 5):  # rounds far apart (a^5 < 0.1), past the transient
        cal = sched.at(r)
        x = sched.offsets(r)
        # the first gate's error is the raw JSON's times exp(its offset)
        assert cal.gates[0].error == pytest.approx(min(raw["gates"][0]["error"] * math.exp(x[0]), 0.75), rel=1e-12)
        assert all(q.t2 <= max(2 * q.t1, b.t2 / b.t1 * q.t1) * (1 + 1e-12) for q, b in zip(cal.qubits, base.qubits) if q.t1 and q.t2)
        for k, v in _log_ratios(base, cal).items():
            pooled[k].extend(v)
    for k, v in pooled.items():
        v = np.asarray(v)
        assert abs(v.mean()) < 4 * sigma / math.sqrt(len(v) / 2), k  # elements are independent, rounds weakly correlated
        assert v.std() == pytest.approx(sigma, rel=0.15), k


def test_common_drift_correlates_the_figures_and_keeps_each_ones_statistics():
    base = cal_mod.load(REF)
    sigma, c = 0.4, 0.6
    sched = CalibrationSchedule([base], drift=DriftSpec(sigma=sigma, tau_rounds=1.5, common=c), seed=1, rounds=400)
    x = np.array([sched.offsets(r) for r in range(20, 400)])  # rounds x figures
    assert x.std() == pytest.approx(sigma, rel=0.1)  # marginal: still an OU process with this sigma
    pairs = [np.corrcoef(x[:, i], x[:, i + 1])[0, 1] for i in range(0, 200, 2)]
    assert np.mean(pairs) == pytest.approx(c, abs=0.08)  # two figures share c of their variance
    alone = CalibrationSchedule([base], drift=DriftSpec(sigma=sigma, tau_rounds=1.5), seed=1, rounds=400)
    y = np.array([alone.offsets(r) for r in range(20, 400)])
    assert abs(np.mean([np.corrcoef(y[:, i], y[:, i + 1])[0, 1] for i in range(0, 200, 2)])) < 0.05


def test_same_seed_same_series_other_seed_other_series():
    base = cal_mod.load(REF)
    d = DriftSpec(sigma=0.3, tau_rounds=3)
    one = [CalibrationSchedule([base], drift=d, seed=4, rounds=5).at(r).to_json() for r in range(5)]
    two = [CalibrationSchedule([base], drift=d, seed=4, rounds=5).at(r).to_json() for r in range(5)]
    other = [CalibrationSchedule([base], drift=d, seed=5, rounds=5).at(r).to_json() for r in range(5)]
    assert one == two
    assert all(a != b for a, b in zip(one[1:], other[1:]))
    # step 0 keeps the snapshot's figures (the device was just calibrated); later steps move them
    sched = CalibrationSchedule([base], drift=d, seed=4, rounds=5)
    assert sched.at(0).gates == base.gates and sched.at(0).qubits == base.qubits
    assert sched.at(2).gates != base.gates and sched.at(2).qubits != base.qubits


def test_series_steps_by_round_and_keeps_the_last(tmp_path):
    base = cal_mod.load(REF)
    snaps = [base, base.scaled(2.0), base.scaled(3.0)]
    sched = CalibrationSchedule(snaps, every=2, rounds=10)
    assert [sched.at(r).id for r in range(8)] == [snaps[i].id for i in (0, 0, 1, 1, 2, 2, 2, 2)]
    with pytest.raises(ConfigError, match="series mixes ibm_fez"):
        CalibrationSchedule([base, cal_mod.load("ibm_kyiv")])


def test_cli_writes_the_same_series_as_the_run_model(tmp_path, capsys):
    out = tmp_path / "drift"
    assert main(["calibration", "drift", REF, "--sigma", "0.3", "--tau", "2", "--steps", "4", "--seed", "7", "--out", str(out)]) == 0
    files = sorted((out / "ibm_fez").glob("*.json"))
    assert [f.stem for f in files] == ["2025-02-26", "2025-02-27", "2025-02-28", "2025-03-01"]
    sched = CalibrationSchedule([cal_mod.load(REF)], drift=DriftSpec(sigma=0.3, tau_rounds=2, seed=7), seed=7, rounds=4)
    assert [cal_mod.Calibration.load(f).id for f in files] == [sched.at(r).id for r in range(4)]
    # a glob steps through them in date order
    assert expand_refs([str(out / "ibm_fez" / "*.json")]) == [str(f) for f in files]
    # never overwrites: the second call fails before writing anything
    before = {f: f.read_bytes() for f in files}
    assert main(["calibration", "drift", REF, "--sigma", "0.5", "--steps", "6", "--seed", "1", "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert sorted((out / "ibm_fez").glob("*.json")) == files and all(f.read_bytes() == before[f] for f in files)


def test_cli_refuses_the_calibration_folder(capsys):
    root = cal_mod.calibration_root()
    assert main(["calibration", "drift", REF, "--sigma", "0.1", "--out", str(root / "whatif")]) == 2
    assert "holds measured snapshots only" in capsys.readouterr().err
    assert not (root / "whatif").exists()
    with pytest.raises(ConfigError, match="holds measured snapshots only"):
        write_series(REF, DriftSpec(sigma=0.1), 2, root)


def test_globs_over_the_calibration_folder_and_no_match():
    assert expand_refs(["ibm_fez/2025-*"]) == [str(cal_mod.resolve(REF))]
    assert expand_refs(["ibm_fez/2025-02-26"]) == ["ibm_fez/2025-02-26"]  # not a glob: unchanged
    with pytest.raises(ConfigError, match="matches no snapshot"):
        expand_refs(["ibm_fez/1999-*"])
