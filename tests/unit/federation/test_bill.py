"""Estimate versus bill: queue waits read from events.jsonl, reported/estimated ratios, the report table."""

from __future__ import annotations

import json

import pytest

from qflhw.cli import main
from qflhw.errors import ConfigError
from qflhw.federation.bill import bill_rows, calibration_from, format_bill, job_waits


def _events() -> list[dict]:
    e = lambda t, kind, **kw: {"time": f"2026-12-01T10:{t}Z", "kind": kind, **kw}  # noqa: E731
    a = {"client": "a", "key": "k/r0/a/s0", "job_id": "j1"}
    b = {"client": "b", "key": "k/r0/b/s0", "job_id": "t1"}
    return [
        e("00:00.000", "submit", device="ibm_kingston", **a),
        e("00:01.000", "state", state="queued", **a),
        e("02:30.000", "state", state="running", **a),  # 150 s in the queue
        e("03:00.000", "state", state="done", **a),
        e("03:00.500", "result", **a),
        e("00:10.000", "submit", device="iqm_garnet", **b),
        e("00:40.000", "state", state="running", **b),  # 30 s
        e("01:00.000", "failed", error="x", **b),
    ]


def test_job_waits_from_state_changes():
    waits = {w.job_id: w for w in job_waits(_events())}
    assert waits["j1"].queued_s == pytest.approx(150.0) and waits["j1"].total_s == pytest.approx(180.0)
    assert waits["t1"].queued_s == pytest.approx(30.0) and waits["t1"].total_s == pytest.approx(50.0)
    assert waits["j1"].device == "ibm_kingston"


def _run(tmp_path, name: str, est: float, rep: float | None, events: list[dict]):
    run = tmp_path / name
    run.mkdir()
    clients = {"a": {"device": "ibm_kingston", "estimated_cost_usd": est, "cost_usd": est, "actual_cost_usd": rep,
                     "shots": 10, "esp": 0.9, "rounds_ok": 1, "note": ""},
               "b": {"device": "iqm_garnet", "estimated_cost_usd": 2.0, "cost_usd": 2.0, "actual_cost_usd": None,
                     "shots": 10, "esp": 0.9, "rounds_ok": 1, "note": ""}}
    summary = {"run_id": name, "name": "k", "rounds": 1, "final_test_accuracy": 0.5, "total_shots": 20,
               "total_cost_usd": est + 2.0, "clients": clients, "finished": True, "accuracy_per_round": [0.5]}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / "metrics.csv").write_text("round,client,device,status,loss,global_test_accuracy,global_test_loss\n"
                                     "0,a,ibm_kingston,ok,0.5,0.5,0.7\n0,b,iqm_garnet,ok,0.5,0.5,0.7\n")
    return run


def test_calibration_is_reported_over_estimated_per_device(tmp_path):
    r1 = _run(tmp_path, "r1", 10.0, 8.0, _events())
    r2 = _run(tmp_path, "r2", 30.0, 33.0, _events()[:5])
    cal = calibration_from([r1, r2])
    assert cal.cost_ratio == {"ibm_kingston": pytest.approx(41.0 / 40.0)}  # garnet reported nothing
    assert cal.waits == {"ibm_kingston": pytest.approx(150.0), "iqm_garnet": pytest.approx(30.0)}
    assert cal.ratio("iqm_garnet") == 1.0 and "ibm_kingston: cost x1.025" in cal.describe()
    with pytest.raises(ConfigError, match="no summary.json"):
        calibration_from([tmp_path / "nothing"])


def test_report_prints_estimate_against_bill(tmp_path, capsys):
    run = _run(tmp_path, "r1", 10.0, 8.0, _events())
    rows = bill_rows(json.loads((run / "summary.json").read_text()), job_waits(_events()))
    assert [r.ratio for r in rows] == [pytest.approx(0.8), None]
    text = format_bill(rows)
    assert "0.800" in text and "150 s over 1 jobs" in text
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "estimate vs bill" in out and "10.00" in out and "8.00" in out
