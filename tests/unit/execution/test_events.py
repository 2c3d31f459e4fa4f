"""The event log: one valid JSON line per event, flushed at once, UTC times, no secrets, each
submission once across restarts, torn tails repaired; and the runner's events under faults."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
from decimal import Decimal

import numpy as np
import pytest

from qflhw.execution.events import EventLog, parse_time, read_events, repair

TOKEN = "ibmtok-PLANTED-abc123"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_event_is_one_flushed_json_line_with_a_utc_time(tmp_path):
    log = EventLog(tmp_path)
    before = dt.datetime.now(dt.UTC)
    log.emit("round", round=0, test_accuracy=float("nan"), cost_usd=Decimal("0.125"), note="ok")
    # readable by another process before close: the line was flushed
    (e,) = _lines(tmp_path / "events.jsonl")
    log.close()
    assert e["kind"] == "round" and e["round"] == 0 and e["note"] == "ok"
    assert e["test_accuracy"] is None  # NaN is not JSON
    assert e["cost_usd"] == 0.125
    t = parse_time(e["time"])
    assert e["time"].endswith("Z") and t.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=1) <= t <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_secrets_are_scrubbed_from_every_field(tmp_path, monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    log = EventLog(tmp_path)
    log.emit("failed", client="a", error=f"401 for token {TOKEN}", detail={"auth": f"Authorization: Bearer {TOKEN}"})
    log.emit("retry", client="a", error="throttled; api_key=sk-live-0000 AKIAABCDEFGHIJKLMNOP")
    log.close()
    text = (tmp_path / "events.jsonl").read_text()
    for secret in (TOKEN, "sk-live-0000", "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in text
    assert text.count("***") >= 3


def test_a_submission_is_logged_once_per_key_and_job_even_after_reopening(tmp_path):
    log = EventLog(tmp_path)
    assert log.emit("submit", key="r/r0/a/s0", job_id="j1")
    assert not log.emit("submit", key="r/r0/a/s0", job_id="j1")
    log.close()
    again = EventLog(tmp_path)  # a resumed run
    assert again.resumed
    assert not again.emit("submit", key="r/r0/a/s0", job_id="j1", recovered=True)
    assert again.emit("submit", key="r/r0/a/s0", job_id="j2")  # sent again under the same key: a new job
    again.emit("round", round=0)
    assert again.logged_rounds() == {0}
    again.close()
    lines = _lines(tmp_path / "events.jsonl")
    assert [(e["key"], e["job_id"]) for e in lines if e["kind"] == "submit"] == [("r/r0/a/s0", "j1"), ("r/r0/a/s0", "j2")]


def test_a_torn_last_line_is_cut_off_when_the_log_is_reopened(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"time":"2026-01-01T00:00:00.000Z","kind":"run"}\n{"time":"2026-01-01T00:0')
    assert [e["kind"] for e in read_events(path)] == ["run"]  # a reader skips the partial line
    log = EventLog(tmp_path)
    log.emit("checkpoint", round=0)
    log.close()
    assert [e["kind"] for e in _lines(path)] == ["run", "checkpoint"]  # every line valid JSON again
    assert repair(path) == _lines(path)


def test_events_go_to_the_qflhw_logger(tmp_path):
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("qflhw.events")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        log = EventLog(tmp_path)
        log.emit("submit", client="a", key="r/r0/a/s0", job_id="job-7", attempt=1)
        log.emit("retry", client="a", key="r/r0/a/s0", attempt=1, error="throttled", wait_s=0.5)
        log.close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "a r/r0/a/s0: sent job job-7 (attempt 1)"),
        (logging.WARNING, "a r/r0/a/s0: attempt 1 failed, retrying in 0.5 s: throttled"),
    ]


# ---------------------------------------------------------------------- the runner's events
@pytest.fixture
def fake_device():
    from qflhw.devices.factory import make_device

    return make_device("fake_fez", seed=5)


@functools.cache
def _model():
    from qflhw.circuits.ansatz import build

    return build("rot-crx", 2, 1)


def _batch(device, key):
    from qflhw.circuits.ansatz import z_observables
    from qflhw.devices.base import Batch, BatchItem, JobKey

    model = _model()
    item = BatchItem(device.transpile(model.circuit), model.parameters, np.zeros((2, len(model.parameters))), tuple(z_observables(2)))
    return Batch((item,), key=JobKey.parse(key))


def test_runner_logs_submissions_retries_and_results_as_the_journal_has_them(tmp_path, fake_device):
    from qflhw.devices.faulty import FaultyDevice
    from qflhw.execution.budget import Cost, Ledger
    from qflhw.execution.journal import Journal
    from qflhw.execution.retries import JournaledRunner

    flaky = FaultyDevice(fake_device, submit_rate=0.5, timeout_rate=0.3, seed=4)
    journal, events = Journal(tmp_path), EventLog(tmp_path)
    runner = JournaledRunner(journal, retries=20, backoff_initial=0, backoff_max=0, events=events)
    ledger = Ledger()
    keys = [f"run/r0/a/s{k}" for k in range(6)]
    for key in keys:
        runner(flaky, _batch(fake_device, key), 100, lambda: ledger.charge("a", 0, Cost(shots=1)))
    journal_retries = len(journal.events("retry"))
    journal.close()
    events.close()
    log = read_events(tmp_path / "events.jsonl")
    assert sum(flaky.injected.values()) >= 3, "the fault injector must fire"
    assert len([e for e in log if e["kind"] == "retry"]) == journal_retries == flaky.injected["submit"] + flaky.injected["timeout"]
    submits = [e for e in log if e["kind"] == "submit"]
    # one line per job the provider accepted (a throttled attempt never reached it), in step order
    assert [e["key"] for e in submits] == keys and fake_device.submissions == len(keys)
    assert all(e["shots"] == 2 * 1 * 100 and e["client"] == "a" for e in submits)
    results = [e for e in log if e["kind"] == "result"]
    assert [(e["key"], e["job_id"]) for e in results] == [(e["key"], e["job_id"]) for e in submits]
    # the job state was reported once per job (a fake job is done when it exists), retries of the wait included
    assert [e["state"] for e in log if e["kind"] == "state"] == ["done"] * len(keys)


def test_a_job_found_again_after_a_crash_is_logged_once_as_recovered(tmp_path, fake_device):
    """Killed after the provider took the job but before anything was journaled: the resumed
    runner finds it by its key, journals its id and logs the submission it never logged."""
    from qflhw.devices.factory import make_device
    from qflhw.execution.journal import Journal
    from qflhw.execution.retries import JournaledRunner

    store = tmp_path / "provider"
    first = make_device("fake_fez", seed=5, store=store)
    journal = Journal(tmp_path)
    journal.pending("run/r0/a/s0", "a", first.name)
    sent = first.submit(_batch(first, "run/r0/a/s0"), 100)  # ... and the process died here
    journal.close()

    again = make_device("fake_fez", seed=5, store=store)
    journal, events = Journal(tmp_path), EventLog(tmp_path)
    result = JournaledRunner(journal, events=events)(again, _batch(again, "run/r0/a/s0"), 100, lambda: None)
    assert result.job_id == sent.job_id and again.submissions == 0  # fetched, not sent again
    assert journal.submission("run/r0/a/s0").job_id == sent.job_id
    journal.close()
    events.close()
    (submit,) = [e for e in read_events(tmp_path / "events.jsonl") if e["kind"] == "submit"]
    assert submit["job_id"] == sent.job_id and submit["recovered"] is True


def test_runner_without_an_event_log_still_works(tmp_path, fake_device):
    from qflhw.execution.journal import Journal
    from qflhw.execution.retries import JournaledRunner

    journal = Journal(tmp_path)
    res = JournaledRunner(journal)(fake_device, _batch(fake_device, "run/r0/a/s0"), None, lambda: None)
    journal.close()
    assert res.shots is None and not (tmp_path / "events.jsonl").exists()
    assert all(math.isfinite(v) for v in res.items[0].values.ravel())
