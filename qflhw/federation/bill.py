"""Estimate versus bill: what a run's ledger charged, what the providers reported, how long jobs waited.

A run's ``summary.json`` lists per client ``estimated_cost_usd`` (what the ledger charged before
each job, with the one cost model of :mod:`qflhw.execution.budget`) and ``actual_cost_usd`` (the
providers' own usage reports priced with the same model; null where nothing was reported, e.g.
fake twins or Runtime local mode). Its ``events.jsonl`` has every job's submission and state
changes with times, so the real queue waits (sent -> running) can be read back. ``qflhw report``
prints both; ``qflhw plan --calibrate-from RUN_DIR`` turns them into per-device corrections of
its cost and wall-time model (:func:`calibration_from`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qflhw.errors import ConfigError
from qflhw.execution.events import FILENAME as EVENTS_FILE
from qflhw.execution.events import parse_time, read_events
from qflhw.federation.outputs import read_summary


@dataclass(frozen=True)
class JobWait:
    """One provider job: how long it waited in the queue and how long until it was final."""

    client: str
    device: str
    job_id: str
    queued_s: float | None  # sent -> first 'running' (None: never seen running, e.g. a fast job)
    total_s: float | None  # sent -> done/failed/cancelled (None: not final yet)


def job_waits(events: Sequence[dict]) -> list[JobWait]:
    """Every submitted job of an event log with its queue wait and time to its final state."""
    sent: dict[tuple[str, str], tuple[dict, float]] = {}
    running: dict[tuple[str, str], float] = {}
    final: dict[tuple[str, str], float] = {}
    for e in events:
        if "time" not in e or not e.get("job_id"):
            continue
        key = (str(e.get("key")), str(e["job_id"]))
        t = parse_time(str(e["time"])).timestamp()
        kind = e.get("kind")
        if kind == "submit" and key not in sent:
            sent[key] = (e, t)
        elif kind == "state" and e.get("state") == "running":
            running.setdefault(key, t)
        elif (kind == "state" and e.get("state") in ("done", "failed", "cancelled")) or kind in ("result", "failed"):
            final.setdefault(key, t)
    out = []
    for key, (e, t0) in sent.items():
        q = running.get(key)
        f = final.get(key)
        out.append(JobWait(str(e.get("client", "")), str(e.get("device", "")), key[1],
                           None if q is None else max(0.0, q - t0), None if f is None else max(0.0, f - t0)))
    return out


def run_waits(run_dir: Path) -> list[JobWait]:
    """The job waits of a run directory (its own events and, for Flower simulations, its sites')."""
    run_dir = Path(run_dir)
    events = read_events(run_dir / EVENTS_FILE)
    for path in sorted(run_dir.glob(f"sites/*/*/{EVENTS_FILE}")):
        events.extend(read_events(path))
    return job_waits(sorted(events, key=lambda e: str(e.get("time", ""))))


@dataclass(frozen=True)
class BillRow:
    client: str
    device: str
    estimated_usd: float
    reported_usd: float | None
    jobs_waited: int  # jobs with a measured queue wait
    median_wait_s: float | None

    @property
    def ratio(self) -> float | None:
        """Reported over estimated (None: nothing reported, or nothing estimated)."""
        if self.reported_usd is None or self.estimated_usd <= 0:
            return None
        return self.reported_usd / self.estimated_usd


def bill_rows(summary: dict, waits: Iterable[JobWait] = ()) -> list[BillRow]:
    """Per client: estimated and provider-reported cost, and its jobs' measured queue waits."""
    by_client: dict[str, list[float]] = {}
    for w in waits:
        if w.queued_s is not None:
            by_client.setdefault(w.client, []).append(w.queued_s)
    rows = []
    for name, c in sorted((summary.get("clients") or {}).items()):
        est = c.get("estimated_cost_usd", c.get("cost_usd", 0.0)) or 0.0
        got = by_client.get(name, [])
        rows.append(BillRow(name, str(c.get("device", "")), float(est),
                            None if c.get("actual_cost_usd") is None else float(c["actual_cost_usd"]),
                            len(got), statistics.median(got) if got else None))
    return rows


def has_bill(summary: dict) -> bool:
    """Whether a run spent or reported anything worth reconciling (a paid or emulated device)."""
    return any((c.get("estimated_cost_usd") or c.get("cost_usd") or 0) > 0 or c.get("actual_cost_usd") is not None
               or c.get("emulated") for c in (summary.get("clients") or {}).values())


def format_bill(rows: Sequence[BillRow], emulated: Iterable[str] = ()) -> str:
    """The estimate-versus-bill table ``qflhw report`` prints."""
    emulated = set(emulated)
    head = f"{'client':<12} {'device':<26} {'estimated $':>11} {'reported $':>11} {'ratio':>6}  {'queue wait (median)':<20}"
    lines = ["estimate vs bill (estimated: the ledger's charge before each job; reported: the provider's usage)", head]
    for r in rows:
        rep = "-" if r.reported_usd is None else f"{r.reported_usd:.2f}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        wait = "-" if r.median_wait_s is None else f"{r.median_wait_s:.0f} s over {r.jobs_waited} jobs"
        note = "  emulated: nothing billed" if r.client in emulated else ""
        lines.append(f"{r.client:<12} {r.device:<26} {r.estimated_usd:>11.2f} {rep:>11} {ratio:>6}  {wait:<20}{note}".rstrip())
    return "\n".join(lines)


@dataclass
class ModelCalibration:
    """Corrections from earlier runs: reported/estimated cost and median queue wait per device."""

    cost_ratio: dict[str, float] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)  # jobs with a measured wait, per device

    def ratio(self, device: str) -> float:
        return self.cost_ratio.get(device, 1.0)

    def describe(self) -> str:
        if not self.cost_ratio and not self.waits:
            return f"calibrated from {len(self.runs)} run(s): nothing reported yet (no provider usage, no queue waits)"
        parts = [f"{d}: cost x{r:.3f}" for d, r in sorted(self.cost_ratio.items())]
        parts += [f"{d}: wait {w:.0f} s/job ({self.jobs.get(d, 0)} jobs)" for d, w in sorted(self.waits.items())]
        return f"calibrated from {len(self.runs)} run(s): " + ", ".join(parts)


def calibration_from(run_dirs: Iterable[str | Path]) -> ModelCalibration:
    """Per device profile: sum of reported over sum of estimated cost (clients whose provider
    reported usage), and the median measured queue wait of its jobs, over all ``run_dirs``."""
    est: dict[str, float] = {}
    rep: dict[str, float] = {}
    waits: dict[str, list[float]] = {}
    cal = ModelCalibration()
    for d in run_dirs:
        run = Path(d)
        summary = read_summary(run / "summary.json")
        if summary is None:
            raise ConfigError(f"--calibrate-from {run}: no summary.json there; pass a run directory `qflhw run` wrote")
        cal.runs.append(str(run))
        for c in (summary.get("clients") or {}).values():
            if c.get("actual_cost_usd") is None or not c.get("estimated_cost_usd"):
                continue
            device = str(c.get("device", ""))
            est[device] = est.get(device, 0.0) + float(c["estimated_cost_usd"])
            rep[device] = rep.get(device, 0.0) + float(c["actual_cost_usd"])
        for w in run_waits(run):
            if w.queued_s is not None and w.device:
                waits.setdefault(w.device, []).append(w.queued_s)
    cal.cost_ratio = {d: rep[d] / est[d] for d in est if est[d] > 0}
    cal.waits = {d: statistics.median(v) for d, v in waits.items()}
    cal.jobs = {d: len(v) for d, v in waits.items()}
    return cal
