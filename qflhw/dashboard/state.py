"""What a run directory says about its run right now: rounds, accuracy, spend and each client's job.

Everything here only reads: ``events.jsonl`` (appended by the run, a line being written is
skipped), ``metrics.csv`` and ``summary.json`` (replaced atomically after every round) and the
spec the run keeps. None of them is locked, so a running, finished or crashed run can be read
from another terminal, or another machine with the directory mounted. Runs written before the
event log existed fall back to the journal's ``submissions`` table, read read-only
(:func:`qflhw.execution.journal.read_submissions`).

:func:`list_runs` and :func:`resolve_run` map names to run directories strictly inside one
folder, for the dashboard, which must never reach a file outside it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflhw.errors import ConfigError
from qflhw.execution.events import FILENAME as EVENTS_FILE
from qflhw.execution.events import parse_time, read_events
from qflhw.federation.outputs import SPEC_FILES, is_finished, read_metrics, read_summary

RUN_MARKERS = (*SPEC_FILES, EVENTS_FILE, "metrics.csv")
ACTIVE_STATES = frozenset({"submitted", "queued", "running"})
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass
class ClientView:
    """One client as the run directory shows it."""

    name: str
    device: str
    esp: float | None = None
    state: str = "idle"  # idle | submitted | queued | running | done | failed | cancelled
    job_id: str = ""
    since: _dt.datetime | None = None  # when the current job was sent
    ended: _dt.datetime | None = None  # when it finished
    queue_position: str | None = None
    shots: int = 0
    usd: float = 0.0
    rounds_ok: int = 0
    losses: list[float] = field(default_factory=list)  # training loss per round it reported
    last_error: str = ""
    jobs: int = 0

    def waited(self, now: _dt.datetime) -> float | None:
        """Seconds the current job has waited (or the last one took)."""
        if self.since is None:
            return None
        end = now if self.state in ACTIVE_STATES or self.ended is None else self.ended
        return max(0.0, (end - self.since).total_seconds())


@dataclass
class JobSpan:
    """One provider job on the timeline: sent at ``start``, final at ``end`` (None: not yet)."""

    client: str
    key: str
    job_id: str
    start: _dt.datetime
    end: _dt.datetime | None = None
    state: str = "submitted"


@dataclass
class RunState:
    """A snapshot of one run directory."""

    path: Path
    name: str
    run_id: str
    spec_name: str = ""
    planned_rounds: int | None = None
    budget_usd: float = 0.0
    rounds_done: int = 0
    finished: bool = False
    status: str = "unfinished"  # finished | running | stopped | unfinished | starting
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    clients: dict[str, ClientView] = field(default_factory=dict)
    jobs: list[JobSpan] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    summary: dict | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    updated: _dt.datetime | None = None
    now: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))

    @property
    def total_shots(self) -> int:
        return sum(c.shots for c in self.clients.values())

    @property
    def total_usd(self) -> float:
        return sum(c.usd for c in self.clients.values())

    @property
    def last_error(self) -> str:
        return next((e.get("error", "") for e in reversed(self.events) if e.get("kind") in ("retry", "failed", "dropout")), "")


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def read_state(run_dir: str | Path, name: str | None = None) -> RunState:
    """Everything the run directory says now; a folder that is not a run is a ConfigError."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise ConfigError(
            f"{run_dir}: not a run directory (no {', '.join(RUN_MARKERS)}); pass the folder `qflhw run` wrote"
        )
    spec = _read_spec(run_dir)
    st = RunState(path=run_dir, name=name or run_dir.name, run_id=run_dir.name)
    st.spec_name = str(spec.get("name", ""))
    st.planned_rounds = _int(spec.get("rounds"))
    st.budget_usd = float((spec.get("budget") or {}).get("max_usd", 0.0) or 0.0)
    st.settings = _settings(spec)
    for c in spec.get("clients") or []:
        if isinstance(c, dict) and c.get("name"):
            st.clients[str(c["name"])] = ClientView(str(c["name"]), str(c.get("device", "")))
    try:
        st.metrics = read_metrics(run_dir / "metrics.csv")
    except FileNotFoundError:
        st.metrics = []
    try:
        st.summary = read_summary(run_dir / "summary.json")
    except (json.JSONDecodeError, OSError):
        st.summary = None
    st.events = read_events(run_dir / EVENTS_FILE)
    sites = sorted(run_dir.glob(f"sites/*/*/{EVENTS_FILE}"))  # Flower simulation: each site logs its own jobs
    if sites:
        st.events = sorted(st.events + [e for path in sites for e in read_events(path)], key=lambda e: str(e.get("time", "")))
    _rounds(st)
    counted = _spend_before(st)
    if st.events:
        _follow_events(st, counted)
    else:
        _follow_journal(st)
    st.finished = is_finished(st.summary)
    st.status = "finished" if st.finished else _liveness(st.events)
    stamps = [parse_time(e["time"]) for e in st.events[-1:] if "time" in e]
    st.updated = stamps[0] if stamps else _mtime(run_dir)
    return st


def summary_of(st: RunState) -> dict[str, Any]:
    """The run's summary.json, or for a run that has none (stopped before summaries were written
    per round) the same fields rebuilt from metrics.csv, marked unfinished."""
    if st.summary is not None:
        return st.summary
    return {
        "run_id": st.run_id,
        "name": st.spec_name,
        "rounds": st.rounds_done,
        "final_test_accuracy": st.accuracy[-1] if st.accuracy else math.nan,
        "final_test_loss": st.loss[-1] if st.loss else math.nan,
        "accuracy_per_round": list(st.accuracy),
        "total_shots": st.total_shots,
        "total_cost_usd": st.total_usd,
        "clients": {
            c.name: {"device": c.device, "shots": c.shots, "cost_usd": c.usd, "esp": math.nan if c.esp is None else c.esp,
                     "rounds_ok": c.rounds_ok, "note": c.last_error}
            for c in st.clients.values()
        },
        "finished": False,
    }


# ------------------------------------------------------------------------------ pieces
def _read_spec(run_dir: Path) -> dict[str, Any]:
    """The run's spec as plain data (not validated: a view must work even if qflhw changed since)."""
    for name in SPEC_FILES:
        path = run_dir / name
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
                return json.loads(text) if name.endswith(".json") else tomllib.loads(text)
            except (OSError, ValueError):
                return {}
    return {}


def _settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The knobs worth showing next to a run (no credentials live in a spec)."""
    t, m, a, d = (spec.get(k) or {} for k in ("training", "model", "aggregation", "data"))
    return {
        "dataset": d.get("dataset", "digits"), "qubits": m.get("qubits", 4), "layers": m.get("layers", 2),
        "learning_rate": t.get("learning_rate", 0.05), "optimizer": t.get("optimizer", "adam"),
        "shots": t.get("shots", 1000), "aggregation": a.get("method", "fedavg"), "seed": spec.get("seed", 0),
    }  # fmt: skip


def _rounds(st: RunState) -> None:
    by_round: dict[int, dict] = {}
    for row in st.metrics:
        r = _int(row.get("round"))
        if r is None:
            continue
        by_round.setdefault(r, row)
        c = st.clients.setdefault(row["client"], ClientView(row["client"], row.get("device", "")))
        c.device = c.device or row.get("device", "")
        if row.get("status") == "ok":
            c.rounds_ok += 1
        loss = _float(row.get("loss"))
        if loss is not None:
            c.losses.append(loss)
        esp = _float(row.get("esp"))
        if esp is not None:
            c.esp = esp
        if row.get("error"):
            c.last_error = f"round {r}: {row['error']}"
    st.rounds_done = len(by_round)
    st.accuracy = [_float(by_round[r].get("global_test_accuracy")) or 0.0 for r in sorted(by_round)]
    st.loss = [_float(by_round[r].get("global_test_loss")) or 0.0 for r in sorted(by_round)]
    if st.summary:
        st.rounds_done = max(st.rounds_done, int(st.summary.get("rounds", 0)))


def _spend_before(st: RunState) -> int:
    """Shots and USD up to the last finished round (the ledger's figures in summary.json, else
    metrics.csv); returns how many rounds they cover."""
    facts = (st.summary or {}).get("clients") or {}
    counted = int(st.summary.get("rounds", 0)) if st.summary else len({r.get("round") for r in st.metrics})
    for name, c in st.clients.items():
        f = facts.get(name)
        if f:
            c.shots, c.usd = int(f.get("shots", 0)), float(f.get("cost_usd", 0.0))
            c.esp = _float(f.get("esp")) if _float(f.get("esp")) is not None else c.esp
        else:
            mine = [r for r in st.metrics if r.get("client") == name]
            c.shots = sum(_int(r.get("shots")) or 0 for r in mine)
            c.usd = sum(_float(r.get("cost_usd")) or 0.0 for r in mine)
    return counted


def _follow_events(st: RunState, counted: int) -> None:
    spans: dict[tuple[str, str], JobSpan] = {}
    for e in st.events:
        kind, name = e.get("kind"), e.get("client")
        when = parse_time(e["time"]) if "time" in e else st.now
        c = st.clients.setdefault(str(name), ClientView(str(name), str(e.get("device", "")))) if name else None
        if kind == "submit" and c is not None:
            c.state, c.job_id, c.since, c.ended, c.queue_position = "submitted", str(e.get("job_id", "")), when, None, None
            c.jobs += 1
            if (_int(e.get("round")) or 0) >= counted:  # not yet in the ledger's figures
                c.shots += _int(e.get("shots")) or 0
                c.usd += _float(e.get("usd")) or 0.0
            spans[(str(e.get("key")), c.job_id)] = JobSpan(c.name, str(e.get("key")), c.job_id, when)
        elif kind == "state" and c is not None:
            state = str(e.get("state"))
            if e.get("job_id") == c.job_id:
                c.state, c.queue_position = state, e.get("queue_position")
                if state in ("done", "failed", "cancelled"):
                    c.ended = when
            span = spans.get((str(e.get("key")), str(e.get("job_id"))))
            if span is not None:
                span.state = state
                if state in ("done", "failed", "cancelled"):
                    span.end = span.end or when
        elif kind in ("result", "failed") and c is not None:
            span = spans.get((str(e.get("key")), str(e.get("job_id"))))
            if span is not None:
                span.end, span.state = span.end or when, "done" if kind == "result" else "failed"
            if e.get("job_id") in (c.job_id, None):
                c.state, c.ended = ("done" if kind == "result" else "failed"), when
            if kind == "failed":
                c.last_error = f"failed: {e.get('error', '')}"
        elif kind == "retry" and c is not None:
            c.last_error = f"retry {e.get('attempt')}: {e.get('error', '')}"
        elif kind == "dropout" and c is not None:
            c.last_error = f"round {e.get('round')} {e.get('status')}: {e.get('error', '')}"
    st.jobs = sorted(spans.values(), key=lambda s: s.start)


def _follow_journal(st: RunState) -> None:
    """A run without events.jsonl (written by an older qflhw): its journal's submissions."""
    from qflhw.execution.journal import read_submissions  # imports the device layer; only needed here

    for rec in read_submissions(st.path):
        name = str(rec.get("client") or "")
        c = st.clients.setdefault(name, ClientView(name, str(rec.get("device") or "")))
        start = _dt.datetime.fromtimestamp(rec["created"] or 0, _dt.UTC)
        end = _dt.datetime.fromtimestamp(rec["updated"] or 0, _dt.UTC)
        done = rec["status"] in ("done", "failed")
        c.state = str(rec["status"])
        c.job_id, c.since, c.ended = str(rec.get("job_id") or ""), start, end if done else None
        c.jobs += 1
        if rec.get("error"):
            c.last_error = str(rec["error"])
        st.jobs.append(JobSpan(name, str(rec["key"]), c.job_id, start, end if done else None, c.state))


def _liveness(events: list[dict]) -> str:
    """running / stopped when the run's process is on this machine, else unfinished."""
    start = next((e for e in reversed(events) if e.get("kind") == "run"), None)
    if start is None or start.get("host") != socket.gethostname() or not isinstance(start.get("pid"), int):
        return "unfinished"
    try:
        os.kill(start["pid"], 0)
    except ProcessLookupError:
        return "stopped"
    except PermissionError:
        return "running"
    return "running"


def _mtime(run_dir: Path) -> _dt.datetime | None:
    stamps = [(run_dir / m).stat().st_mtime for m in RUN_MARKERS if (run_dir / m).is_file()]
    return _dt.datetime.fromtimestamp(max(stamps), _dt.UTC) if stamps else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------------------ folders of runs
def resolve_run(runs_dir: Path, name: str) -> Path | None:
    """The run directory ``name`` (a relative path like ``quickstart-…`` or ``study/cells/x``)
    strictly inside ``runs_dir``, or None: no ``..``, no absolute or hidden parts, no symlink
    that leads out, and it must be a run directory."""
    root = Path(runs_dir).resolve()
    parts = name.split("/")
    if not name or len(parts) > 4 or not all(_PART.match(p) for p in parts):
        return None
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root) or path == root or not is_run_dir(path):
        return None
    return path


def list_runs(runs_dir: Path, depth: int = 3) -> list[str]:
    """Names (relative paths) of the run directories under ``runs_dir``, newest first."""
    root = Path(runs_dir).resolve()
    found: list[tuple[float, str]] = []

    def walk(folder: Path, level: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if child.name.startswith(".") or not child.is_dir() or child.is_symlink():
                continue
            rel = child.relative_to(root).as_posix()
            if is_run_dir(child) and resolve_run(root, rel) is not None:
                found.append((max((child / m).stat().st_mtime for m in RUN_MARKERS if (child / m).is_file()), rel))
            elif level < depth:
                walk(child, level + 1)

    if root.is_dir():
        walk(root, 1)
    return [rel for _, rel in sorted(found, key=lambda t: (-t[0], t[1]))]


def sparkline(values: list[float], width: int = 24, lo: float | None = None, hi: float | None = None) -> str:
    """Unicode block sparkline of the last ``width`` values (``lo``/``hi`` fix the scale)."""
    blocks = "▁▂▃▄▅▆▇█"
    vals = [v for v in values[-width:] if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    if hi - lo < 1e-12:
        return blocks[len(blocks) // 2] * len(vals)
    return "".join(blocks[max(0, min(len(blocks) - 1, round((v - lo) / (hi - lo) * (len(blocks) - 1))))] for v in vals)
