"""The run's event log: ``events.jsonl``, one JSON object per line, written as things happen.

The execution layer (submissions, job states, retries, results, failures) and the round loop
(run start, dropouts, checkpoints, round summaries) report through the one-method
:class:`EventSink` interface, so nothing here knows about the layers above. :class:`EventLog`
appends each event to ``events.jsonl`` in the run directory, flushed at once, with a UTC
timestamp, and logs the same event with :mod:`logging` (logger ``qflhw.events``). Every string is
passed through :func:`qflhw.devices.remote.scrub` first, so no credential reaches the file or a log.

The journal is the source of truth; the event log is its readable history and stays consistent
with it across a SIGKILL: a line is written only after the journal committed what it reports, a
torn last line is cut off when the log is reopened, and a submission line is written at most
once per (key, job id). A job that reached the provider while its line was lost is logged when
the resumed run finds it again (``"recovered": true``). The schema is in ``docs/run-directory.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger("qflhw.events")

EventKind = Literal["run", "submit", "state", "retry", "result", "failed", "dropout", "checkpoint", "round", "finished"]
FILENAME = "events.jsonl"

_LEVEL = {"retry": logging.WARNING, "failed": logging.WARNING, "dropout": logging.WARNING, "result": logging.DEBUG,
          "checkpoint": logging.DEBUG}  # fmt: skip


class EventSink(Protocol):
    """Where the execution layer and the round loop report what happens."""

    def emit(self, kind: EventKind, /, **fields: Any) -> bool:
        """Record one event; returns False when it was already recorded (a submission seen before)."""
        ...


class NoEvents:
    """An event sink that records nothing (runs without a run directory, unit tests)."""

    def emit(self, kind: EventKind, /, **fields: Any) -> bool:
        return True


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. ``2026-12-01T10:00:00.123Z``."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> _dt.datetime:
    """An event's ``time`` back as an aware datetime."""
    return _dt.datetime.fromisoformat(text)


class EventLog:
    """``events.jsonl`` of one run directory; safe to share between a run's client threads."""

    FILENAME = FILENAME

    def __init__(self, run_dir: Path):
        from qflhw.devices.remote import scrub  # only the writer needs it (it imports qiskit)

        self._scrub = scrub
        self.path = Path(run_dir) / FILENAME
        self._lock = threading.Lock()
        earlier = repair(self.path)
        self.resumed = bool(earlier)
        self._submitted = {(e.get("key"), e.get("job_id")) for e in earlier if e.get("kind") == "submit"}
        self._rounds = {e.get("round") for e in earlier if e.get("kind") == "round"}
        self._fh = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def logged_rounds(self) -> set[int]:
        """Rounds whose summary line is in the log."""
        with self._lock:
            return {r for r in self._rounds if isinstance(r, int)}

    def emit(self, kind: EventKind, /, **fields: Any) -> bool:
        record = {"time": utc_now(), "kind": kind, **{k: self._clean(v) for k, v in fields.items()}}
        line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
        with self._lock:
            if kind == "submit":
                ident = (record.get("key"), record.get("job_id"))
                if ident in self._submitted:
                    return False
                self._submitted.add(ident)
            if kind == "round":
                self._rounds.add(record.get("round"))
            if self._fh.closed:  # a straggler thread after close(): the journal still has it
                return False
            self._fh.write(line)
            self._fh.flush()
        log.log(_LEVEL.get(kind, logging.INFO), "%s", describe(record))
        return True

    def _clean(self, value: Any) -> Any:
        """JSON-safe and secret-free: strings scrubbed, NaN/inf as null, decimals as floats."""
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, bool) or value is None or isinstance(value, int):
            return value
        if isinstance(value, float | Decimal):
            f = float(value)
            return f if math.isfinite(f) else None
        if isinstance(value, dict):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return self._scrub(str(value))


def repair(path: Path) -> list[dict]:
    """The events in ``path``; a torn last line (a write cut off by a kill) is removed from the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    good_end = 0
    events = []
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            events.append(json.loads(raw))
        except json.JSONDecodeError:
            break
        good_end += len(raw)
    if good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("%s: removed a torn last line (%d bytes) left by an interrupted write", path, len(data) - good_end)
    return events


def read_events(path: Path) -> list[dict]:
    """Every complete event line of ``path`` (read-only: a line being written is skipped)."""
    return list(iter_events(path))


def iter_events(path: Path) -> Iterator[dict]:
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # the writer is in the middle of this line
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def describe(e: dict) -> str:
    """One readable line for an event (what the log shows)."""
    kind = e.get("kind")
    where = " ".join(str(e[k]) for k in ("client", "key") if e.get(k))
    if kind == "submit":
        extra = " (recovered after a restart)" if e.get("recovered") else f" (attempt {e.get('attempt', 1)})"
        return f"{where}: sent job {e.get('job_id')}{extra}"
    if kind == "state":
        pos = f", queue position {e['queue_position']}" if e.get("queue_position") else ""
        return f"{where}: job {e.get('job_id')} {e.get('state')}{pos}"
    if kind == "retry":
        return f"{where}: attempt {e.get('attempt')} failed, retrying in {e.get('wait_s', 0):.1f} s: {e.get('error')}"
    if kind == "result":
        return f"{where}: result of job {e.get('job_id')}"
    if kind == "failed":
        return f"{where}: failed for good: {e.get('error')}"
    if kind == "dropout":
        return f"round {e.get('round')}: client {e.get('client')} {e.get('status')}: {e.get('error')}"
    if kind == "checkpoint":
        return f"round {e.get('round')}: checkpoint committed"
    if kind == "round":
        acc = e.get("test_accuracy")
        spent = f", ${e['spent_usd']:.2f} spent so far" if isinstance(e.get("spent_usd"), int | float) else ""
        return (f"round {e.get('round')} done: test accuracy {acc if acc is None else f'{acc:.3f}'}, "
                f"{e.get('clients_ok')}/{e.get('clients')} clients aggregated{spent}")
    if kind == "run":
        again = "resumed" if e.get("resumed") else "started"
        return f"run {e.get('run_id')} {again} at round {e.get('start_round')} of {e.get('rounds')} (pid {e.get('pid')})"
    if kind == "finished":
        acc = e.get("final_test_accuracy")
        return f"run {e.get('run_id')} finished: final test accuracy {acc if acc is None else f'{acc:.3f}'}"
    return json.dumps(e)
