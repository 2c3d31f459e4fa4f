"""Watching a live run: `qflhw watch --once` and `qflhw report` on a fake run in another process,
mid-run, show the rounds finished so far; the run's result is the same as an unwatched run's."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
import time

import pytest

from qflhw.cli import main

# The run pauses after its second round until the test lets it go: a deterministic "mid-run".
PAUSED_RUN = """
import sys, time
from pathlib import Path
from qflhw.config.spec import load_spec
from qflhw.federation.loop import Federation
from qflhw.federation.runs import keep_spec

spec_path, run_dir, gate = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
spec = load_spec(spec_path)
fed = Federation(spec, run_dir, progress=False)
fed.open_journal()
keep_spec(spec, run_dir, spec_path)

def pause(fed, r):
    if r == 1:
        gate.with_name("paused").write_text("after round 1")
        deadline = time.monotonic() + 300
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

fed.round_hooks.append(pause)
fed.run()
"""


def _qflhw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qflhw.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    from tests.helpers import TINY_SPEC

    p = tmp_path_factory.mktemp("spec") / "tiny.toml"
    p.write_text(TINY_SPEC.replace("rounds = 2", "rounds = 4"))
    return p


def _metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def test_watch_and_report_mid_run_and_the_result_is_unchanged(spec_path, tmp_path):
    base = tmp_path / "unwatched" / "run"
    assert main(["run", str(spec_path), "--out", str(base), "--quiet"]) == 0
    run_dir, gate = tmp_path / "watched" / "run", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, str(spec_path), str(run_dir), str(gate)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # while it runs, whatever it is doing, both commands succeed
        calls = []
        while not (tmp_path / "paused").exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            if (run_dir / "events.jsonl").exists() and len(calls) < 2:
                calls += [_qflhw("watch", str(run_dir), "--once"), _qflhw("report", str(run_dir))]
            time.sleep(0.05)
        assert all(c.returncode == 0 for c in calls), [c.stderr for c in calls]

        # paused after round 1: two of four rounds are done, and both commands say so
        with open(run_dir / "metrics.csv", newline="") as fh:
            acc = float(list(csv.DictReader(fh))[-1]["global_test_accuracy"])
        watch = _qflhw("watch", str(run_dir), "--once")
        assert watch.returncode == 0, watch.stderr
        assert "running" in watch.stdout and "rounds 2 of 4" in watch.stdout and f"test accuracy {acc:.3f}" in watch.stdout
        for client, device in (("a", "fake_fez"), ("b", "fake_kyiv")):  # a table row per client
            assert re.search(rf"│{client}\s+│ {device}\s+│ (done|submitted|queued|running)\s+│ fake-{device}-", watch.stdout)
        report = _qflhw("report", str(run_dir))
        assert report.returncode == 0, report.stderr
        assert f"(unfinished): 2 of 4 rounds done, test accuracy {acc:.3f} after round 2" in report.stdout
        assert "status: running" in report.stdout
        partial = json.loads((run_dir / "summary.json").read_text())
        assert partial["finished"] is False and partial["rounds"] == 2 and partial["accuracy_per_round"][-1] == acc
        assert (run_dir / "learning_curve.png").stat().st_size > 0  # drawn after every round

        # let it go and keep watching it while it finishes
        gate.write_text("go")
        during = []
        watcher = threading.Thread(target=lambda: during.extend(_qflhw("watch", str(run_dir), "--once") for _ in range(3)))
        watcher.start()
        assert proc.wait(300) == 0, proc.stdout.read().decode() if proc.stdout else ""
        watcher.join(300)
        assert during and all(c.returncode == 0 for c in during), [c.stderr for c in during]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    watched = json.loads((run_dir / "summary.json").read_text())
    unwatched = json.loads((base / "summary.json").read_text())
    for s in (watched, unwatched):
        s.pop("wall_seconds")
    assert watched == unwatched and watched["finished"] is True
    assert _metrics(run_dir) == _metrics(base)
    after = _qflhw("watch", str(run_dir), "--once")
    assert after.returncode == 0 and "finished" in after.stdout and "rounds 4 of 4" in after.stdout
    report = _qflhw("report", str(run_dir))
    assert report.returncode == 0 and f"4 rounds, final test accuracy {watched['final_test_accuracy']:.3f}" in report.stdout


def test_watch_and_report_on_a_stopped_run(spec_path, tmp_path):
    """A run killed after its first round: `watch` and `report` say it stopped and how far it got."""
    run_dir = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "qflhw.cli", "run", str(spec_path), "--out", str(run_dir), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (run_dir / "summary.json").exists():
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    done = json.loads((run_dir / "summary.json").read_text())["rounds"]
    assert 1 <= done < 4, "the run must be stopped mid-way"
    watch = _qflhw("watch", str(run_dir), "--once")
    assert watch.returncode == 0 and "stopped" in watch.stdout and f"rounds {done} of 4" in watch.stdout
    report = _qflhw("report", str(run_dir))
    assert report.returncode == 0 and f"{done} of 4 rounds done" in report.stdout
    assert f"qflhw resume {run_dir}" in report.stdout
    bad = _qflhw("watch", str(tmp_path))
    assert bad.returncode == 2 and "not a run directory" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
