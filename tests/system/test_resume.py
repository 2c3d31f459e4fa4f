"""Crash safety: SIGKILL at random points, resume, and get the uninterrupted result, paying once;
the event log holds every submission exactly once, in order, one valid JSON object per line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from qflhw.cli import main
from qflhw.execution.journal import Journal

SPEC_EXTRA = "\n[resilience]\nbackoff_initial_s = 0\nbackoff_max_s = 0\n"


def _cli(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()}
    return subprocess.Popen(
        [sys.executable, "-m", "qflhw.cli", *args, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _submitted_keys(run_dir) -> list[str]:
    keys = []
    for log in run_dir.glob("fake-provider/*/submissions.log"):
        keys += [line.split("\t")[0] for line in log.read_text().splitlines() if line.strip()]
    return keys


def _provider_log(run_dir) -> dict[str, list[tuple[str, str]]]:
    """Per client, the (key, job id) of every job the fake provider accepted, in the order it did."""
    out = {}
    for log in sorted(run_dir.glob("fake-provider/*/submissions.log")):
        out[log.parent.name] = [tuple(line.split("\t")) for line in log.read_text().splitlines() if line.strip()]
    return out


def _check_event_log(run_dir, rounds: int) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line is one complete JSON object
    assert all(isinstance(e, dict) and e["time"].endswith("Z") for e in events)
    submits = [e for e in events if e["kind"] == "submit"]
    pairs = [(e["key"], e["job_id"]) for e in submits]
    assert max(Counter(pairs).values()) == 1, "a submission was logged twice"
    provider = _provider_log(run_dir)
    assert sorted(pairs) == sorted(p for jobs in provider.values() for p in jobs)  # each submission, exactly once
    for client, jobs in provider.items():  # in the order the provider received them
        assert [(e["key"], e["job_id"]) for e in submits if e["client"] == client] == jobs
    assert [e["round"] for e in events if e["kind"] == "round"] == list(range(rounds))
    assert [e["kind"] for e in events].count("finished") == 1 and events[-1]["kind"] == "finished"
    return events


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    from tests.helpers import TINY_SPEC

    p = tmp_path_factory.mktemp("spec") / "tiny.toml"
    p.write_text(TINY_SPEC.replace("rounds = 2", "rounds = 4") + SPEC_EXTRA)
    return p


@pytest.fixture(scope="module")
def uninterrupted(spec_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["run", str(spec_path), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text()), out


def test_sigkill_and_resume_pay_once_and_match(spec_path, uninterrupted, tmp_path):
    base, base_dir = uninterrupted
    run_dir = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    proc = _cli("run", str(spec_path), "--out", str(run_dir))
    kills = 0
    while True:
        # kill after a random number (1-3) of new jobs reached the provider: mid-round, mid-run
        target = len(_submitted_keys(run_dir)) + int(rng.integers(1, 4))
        deadline = time.monotonic() + 300
        while proc.poll() is None and len(_submitted_keys(run_dir)) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            time.sleep(float(rng.uniform(0, 0.05)))  # a job takes tens of ms: land anywhere in the next one
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        if (run_dir / "summary.json").is_file() and proc.returncode == 0:
            break
        assert kills < 30, "the run never finished"
        if not (run_dir / "spec.toml").is_file():  # killed before the run directory existed
            proc = _cli("run", str(spec_path), "--out", str(run_dir))
        else:
            proc = _cli("resume", str(run_dir))
    assert kills >= 2, "the test must actually interrupt the run"
    summary = json.loads((run_dir / "summary.json").read_text())
    np.testing.assert_array_equal(summary["final_parameters"], base["final_parameters"])
    assert summary["final_test_accuracy"] == base["final_test_accuracy"]
    # no idempotency key was sent twice: the fake provider's own log and the journal agree
    sent = _submitted_keys(run_dir)
    assert sent and max(Counter(sent).values()) == 1
    assert sorted(sent) == sorted(_submitted_keys(base_dir))
    j = Journal(run_dir)
    # the journal knows every job; an attempt cut off before the provider got it may be counted
    # twice there, but it never reached the provider twice (checked above)
    assert set(j.attempts()) == set(sent)
    j.close()
    events = _check_event_log(run_dir, rounds=4)
    # every process started the log with a "run" line: each killed one had sent a job, then the last one
    assert [e["kind"] for e in events].count("run") == kills + 1
    _check_event_log(base_dir, rounds=4)


def test_resume_of_finished_run_sends_nothing(uninterrupted, capsys):
    base, base_dir = uninterrupted
    before = _submitted_keys(base_dir)
    assert main(["resume", str(base_dir), "--quiet"]) == 0
    assert _submitted_keys(base_dir) == before
    assert json.loads((base_dir / "summary.json").read_text())["final_parameters"] == base["final_parameters"]
