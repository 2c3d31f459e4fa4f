"""Reading a run directory: client states, waits and spend from a hand-written event log, run
status, the terminal view, names that must stay inside a folder, and a journal read that never
blocks its writer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from qflhw.dashboard.state import list_runs, read_state, resolve_run, sparkline, summary_of
from qflhw.dashboard.terminal import render
from qflhw.errors import ConfigError

T0 = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
SPEC = """
name = "demo"
rounds = 3
[budget]
max_usd = 10.0
[[clients]]
name = "a"
device = "ibm_fez"
[[clients]]
name = "b"
device = "fake_kyiv"
"""
COLUMNS = ["round", "client", "device", "status", "loss", "shots", "cost_usd", "esp", "global_test_accuracy",
           "global_test_loss", "error"]  # fmt: skip


def _t(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_run(path, events, *, summary=True):
    path.mkdir(parents=True)
    (path / "spec.toml").write_text(SPEC)
    with open(path / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerow({"round": 0, "client": "a", "device": "ibm_fez", "status": "ok", "loss": 0.7, "shots": 1000,
                    "cost_usd": 1.5, "esp": 0.8, "global_test_accuracy": 0.625, "global_test_loss": 0.66, "error": ""})
        w.writerow({"round": 0, "client": "b", "device": "fake_kyiv", "status": "ok", "loss": 0.9, "shots": 800,
                    "cost_usd": 0.0, "esp": 0.9, "global_test_accuracy": 0.625, "global_test_loss": 0.66, "error": ""})
    if summary:
        (path / "summary.json").write_text(json.dumps({
            "run_id": path.name, "rounds": 1, "finished": False, "final_test_accuracy": 0.625, "total_shots": 1800,
            "total_cost_usd": 1.5, "clients": {"a": {"device": "ibm_fez", "shots": 1000, "cost_usd": 1.5, "esp": 0.8},
                                               "b": {"device": "fake_kyiv", "shots": 800, "cost_usd": 0.0, "esp": 0.9}},
        }))  # fmt: skip
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _events(pid: int, host: str) -> list[dict]:
    return [
        {"time": _t(-200), "kind": "run", "run_id": "r", "rounds": 3, "start_round": 0, "pid": pid, "host": host},
        {"time": _t(-100), "kind": "submit", "client": "a", "key": "demo-seed0/r0/a/s0", "round": 0, "job_id": "j0",
         "shots": 1000, "usd": 1.5},  # already in summary.json's figures
        {"time": _t(-50), "kind": "result", "client": "a", "key": "demo-seed0/r0/a/s0", "job_id": "j0"},
        {"time": _t(0), "kind": "submit", "client": "a", "key": "demo-seed0/r1/a/s0", "round": 1, "job_id": "j1",
         "shots": 500, "usd": 0.75},
        {"time": _t(1), "kind": "state", "client": "a", "key": "demo-seed0/r1/a/s0", "job_id": "j1", "state": "queued",
         "queue_position": "12"},
        {"time": _t(2), "kind": "retry", "client": "b", "key": "demo-seed0/r1/b/s0", "attempt": 1, "error": "throttled"},
        {"time": _t(3), "kind": "submit", "client": "b", "key": "demo-seed0/r1/b/s0", "round": 1, "job_id": "j2",
         "shots": 400, "usd": 0.0},
        {"time": _t(4), "kind": "state", "client": "b", "key": "demo-seed0/r1/b/s0", "job_id": "j2", "state": "done"},
        {"time": _t(4.5), "kind": "result", "client": "b", "key": "demo-seed0/r1/b/s0", "job_id": "j2"},
        {"time": _t(60), "kind": "state", "client": "a", "key": "demo-seed0/r1/a/s0", "job_id": "j1", "state": "running"},
    ]  # fmt: skip


def test_clients_jobs_and_spend_from_the_event_log(tmp_path):
    _write_run(tmp_path / "r", _events(os.getpid(), socket.gethostname()))
    st = read_state(tmp_path / "r")
    st.now = T0 + dt.timedelta(seconds=90)
    assert (st.spec_name, st.planned_rounds, st.budget_usd, st.rounds_done, st.finished) == ("demo", 3, 10.0, 1, False)
    assert st.status == "running"  # its process (this one) is alive on this machine
    assert st.accuracy == [0.625]
    a, b = st.clients["a"], st.clients["b"]
    assert (a.device, a.state, a.job_id, a.waited(st.now)) == ("ibm_fez", "running", "j1", 90.0)
    assert (a.shots, a.usd) == (1000 + 500, 1.5 + 0.75)  # the ledger's round 0, plus the job in flight
    assert (b.state, b.job_id, b.waited(st.now), b.shots) == ("done", "j2", 1.5, 800 + 400)
    assert b.last_error == "retry 1: throttled" and a.esp == 0.8 and a.losses == [0.7]
    assert st.total_usd == 2.25
    assert [(j.job_id, j.end is None) for j in st.jobs] == [("j0", False), ("j1", True), ("j2", False)]

    text = _render(st)
    for piece in ("run r (demo)", "running", "rounds 1 of 3", "test accuracy 0.625", "spent $2.25 of $10.00 budget",
                  "j1", "1 min 30 s", "1,500", "retry 1: throttled"):  # fmt: skip
        assert piece in text, piece


def test_a_queued_job_shows_its_queue_position(tmp_path):
    _write_run(tmp_path / "r", _events(os.getpid(), socket.gethostname())[:5])
    st = read_state(tmp_path / "r")
    assert (st.clients["a"].state, st.clients["a"].queue_position) == ("queued", "12")
    assert "queued #12" in _render(st)


def test_status_of_stopped_and_foreign_runs(tmp_path):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_run(tmp_path / "dead", _events(int(child.stdout), socket.gethostname()))
    _write_run(tmp_path / "elsewhere", _events(os.getpid(), "another-machine"))
    assert read_state(tmp_path / "dead").status == "stopped"
    assert read_state(tmp_path / "elsewhere").status == "unfinished"


def test_a_run_without_summary_is_summarized_from_its_metrics(tmp_path):
    _write_run(tmp_path / "r", [], summary=False)
    s = summary_of(read_state(tmp_path / "r"))
    assert s["finished"] is False and s["rounds"] == 1 and s["final_test_accuracy"] == 0.625
    assert s["total_shots"] == 1800 and s["clients"]["a"]["cost_usd"] == 1.5 and s["clients"]["b"]["rounds_ok"] == 1


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        read_state(tmp_path)


def test_names_resolve_strictly_inside_the_folder(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    for d in (runs / "a", runs / "study" / "cells" / "x", runs / ".hidden", outside / "run"):
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text("round\n")
    (runs / "link").symlink_to(outside, target_is_directory=True)
    assert resolve_run(runs, "a") == (runs / "a").resolve()
    assert resolve_run(runs, "study/cells/x") == (runs / "study/cells/x").resolve()
    for bad in ("", "..", "a/..", "a/../a", "/etc", "../outside/run", "link/run", ".hidden", "study", "a\\b", "%2e%2e", "a//"):
        assert resolve_run(runs, bad) is None, bad
    assert sorted(list_runs(runs)) == ["a", "study/cells/x"]


def test_sparkline():
    assert sparkline([0.0, 0.5, 1.0], lo=0.0, hi=1.0) == "▁▅█"  # 0, round(3.5) = 4, 7 of the 8 blocks
    assert sparkline([2.0, 2.0]) == "▅▅"
    assert sparkline([3.0, 1.0, float("nan"), 2.0]) == "█▁▅"
    assert sparkline([]) == ""


def test_reading_the_journal_never_blocks_its_writer(tmp_path):
    """A reader in a loop and a writer committing 300 submissions: no 'database is locked', and
    the reader sees the table grow."""
    from qflhw.execution.journal import Journal, read_submissions

    journal = Journal(tmp_path)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                seen.append(len(read_submissions(tmp_path)))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for k in range(300):
            journal.pending(f"run/r0/a/s{k}", "a", "fake_fez")
            journal.submitted(f"run/r0/a/s{k}", f"job-{k}")
    finally:
        done.set()
        t.join()
        journal.close()
    assert not errors, errors
    assert seen == sorted(seen) and len(read_submissions(tmp_path)) == 300 and len(seen) > 1
    assert read_submissions(tmp_path / "nowhere") == []


def _render(st) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render(st))
    return console.export_text()


def test_flower_simulation_sites_are_merged_in(tmp_path):
    """With --engine flower-sim the jobs are logged by each site under sites/: the view shows them."""
    events = _events(os.getpid(), socket.gethostname())
    server = [e for e in events if "client" not in e]
    _write_run(tmp_path / "r", server)
    for client in ("a", "b"):
        site = tmp_path / "r" / "sites" / client / "flower-run-7"
        site.mkdir(parents=True)
        (site / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events if e.get("client") == client))
    st = read_state(tmp_path / "r")
    assert [e["time"] for e in st.events] == sorted(e["time"] for e in events)
    assert (st.clients["a"].state, st.clients["a"].job_id, st.clients["b"].last_error) == ("running", "j1", "retry 1: throttled")
