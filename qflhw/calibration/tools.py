"""Calibration tools for heterogeneity studies: compare two snapshots and write what-if scaled
copies. ``qflhw calibration diff|scale`` print what these functions return; what each client's
device does to a spec's circuit is :mod:`qflhw.federation.quality`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.snapshot import Calibration
from qflhw.errors import ConfigError

# ------------------------------------------------------------------------------ diff


@dataclass(frozen=True)
class QubitChange:
    """One per-qubit quantity (T1, T2 or readout error) in both snapshots."""

    metric: str
    higher_is_better: bool
    median_a: float
    median_b: float
    worse: int  # qubits (present in both) that got worse, better or stayed the same
    better: int
    same: int
    largest: tuple[int, float, float] | None  # (qubit, a, b) of the largest relative change


@dataclass(frozen=True)
class GateChange:
    """Median error of one native gate over every qubit (tuple) it is calibrated on."""

    gate: str
    count_a: int
    count_b: int
    median_a: float
    median_b: float


@dataclass(frozen=True)
class CalibrationDiff:
    a: Calibration
    b: Calibration
    qubits: tuple[QubitChange, ...]
    gates: tuple[GateChange, ...]
    couplings_added: tuple[tuple[int, int], ...]
    couplings_removed: tuple[tuple[int, int], ...]


def _median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def _qubit_change(a: Calibration, b: Calibration, metric: str) -> QubitChange:
    get = {
        "T1": lambda q: q.t1,
        "T2": lambda q: q.t2,
        "readout error": lambda q: q.readout_error,
    }[metric]
    higher_is_better = metric != "readout error"
    va = [get(q) for q in a.qubits]
    vb = [get(q) for q in b.qubits]
    worse = better = same = 0
    largest, biggest = None, 0.0
    for i, (x, y) in enumerate(zip(va, vb)):
        if x is None or y is None:
            continue
        if math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0):
            same += 1
            continue
        if (y > x) == higher_is_better:
            better += 1
        else:
            worse += 1
        change = abs(math.log(y / x)) if x > 0 and y > 0 else math.inf
        if change > biggest:
            largest, biggest = (i, x, y), change
    return QubitChange(
        metric,
        higher_is_better,
        _median([v for v in va if v is not None]),
        _median([v for v in vb if v is not None]),
        worse,
        better,
        same,
        largest,
    )


def _edges(c: Calibration) -> set[tuple[int, int]]:
    return {tuple(sorted(e)) for e in c.coupling_map}  # type: ignore[misc]


def diff(a: Calibration, b: Calibration) -> CalibrationDiff:
    """What changed from snapshot ``a`` to ``b``: per-qubit summaries, gate medians, couplings."""
    gates = []
    for name in sorted(set(a.native_gates) | set(b.native_gates)):
        if name == "measure":
            continue
        ea = [g.error for g in a.gates if g.gate == name]
        eb = [g.error for g in b.gates if g.gate == name]
        gates.append(GateChange(name, len(ea), len(eb), _median(ea), _median(eb)))
    edges_a, edges_b = _edges(a), _edges(b)
    return CalibrationDiff(
        a,
        b,
        tuple(_qubit_change(a, b, m) for m in ("T1", "T2", "readout error")),
        tuple(gates),
        tuple(sorted(edges_b - edges_a)),
        tuple(sorted(edges_a - edges_b)),
    )


def _ratio(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0:
        return "-" if a == b or not math.isfinite(a) else "new"
    return f"x{b / a:.3g}"


def _fmt(metric: str, v: float) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v * 1e6:.1f} us" if metric in ("T1", "T2") else f"{v:.3e}"


def format_diff(d: CalibrationDiff, label_a: str, label_b: str) -> str:
    """The terminal report of :func:`diff`."""
    a, b = d.a, d.b
    common = min(a.num_qubits, b.num_qubits)
    def origin(c: Calibration) -> str:
        notes = "; " + c.provenance.notes if c.provenance.notes else ""
        return f"{c.device} {c.date} ({c.provenance.kind}: {c.provenance.source}{notes})"

    lines = [f"A {label_a}: {origin(a)}", f"B {label_b}: {origin(b)}"]
    if a.id == b.id:
        lines.append("identical snapshots (same content hash)")
    added = sorted(set(b.native_gates) - set(a.native_gates))
    removed = sorted(set(a.native_gates) - set(b.native_gates))
    lines.append(
        f"qubits {a.num_qubits} -> {b.num_qubits}; native gates "
        + (f"added {', '.join(added)} " if added else "")
        + (f"removed {', '.join(removed)}" if removed else "" if added else "unchanged")
    )
    lines.append(
        f"{'per qubit (' + str(common) + ' in both)':<24} {'median A':>12} {'median B':>12} {'B/A':>8} "
        f"{'worse':>6} {'better':>6} {'same':>6}  largest change"
    )
    for q in d.qubits:
        big = "-"
        if q.largest:
            i, x, y = q.largest
            big = f"qubit {i}: {_fmt(q.metric, x)} -> {_fmt(q.metric, y)}"
        lines.append(
            f"  {q.metric:<22} {_fmt(q.metric, q.median_a):>12} {_fmt(q.metric, q.median_b):>12} "
            f"{_ratio(q.median_a, q.median_b):>8} {q.worse:>6} {q.better:>6} {q.same:>6}  {big}"
        )
    lines.append(f"{'gate error medians':<24} {'median A':>12} {'median B':>12} {'B/A':>8} {'n A':>6} {'n B':>6}")
    for g in d.gates:
        lines.append(
            f"  {g.gate:<22} {_fmt('', g.median_a):>12} {_fmt('', g.median_b):>12} "
            f"{_ratio(g.median_a, g.median_b):>8} {g.count_a:>6} {g.count_b:>6}"
        )
    show = lambda es: ", ".join(f"{x}-{y}" for x, y in es[:8]) + (" ..." if len(es) > 8 else "")  # noqa: E731
    lines.append(
        f"couplings: {len(_edges(a))} -> {len(_edges(b))} edges; "
        f"added {len(d.couplings_added)}{': ' + show(d.couplings_added) if d.couplings_added else ''}; "
        f"removed {len(d.couplings_removed)}{': ' + show(d.couplings_removed) if d.couplings_removed else ''}"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ scale


def write_scaled(ref: str, factor: float, out: str | Path) -> tuple[Path, Calibration, Calibration]:
    """Write a what-if copy of snapshot ``ref`` with errors x``factor`` to ``out``; never overwrites.

    ``out`` may not lie in the calibration folder: that holds measured snapshots only, and a scaled
    file there would shadow the real one as ``<device>/latest``. Returns (path, original, scaled).
    """
    original = cal_mod.load(ref)
    scaled = original.scaled(factor)
    path = Path(out)
    root = cal_mod.calibration_root().resolve()
    if path.resolve().is_relative_to(root):
        raise ConfigError(
            f"{path}: inside {root}, which holds measured snapshots only; write the scaled copy elsewhere "
            "and use its path as a client's calibration"
        )
    if path.suffix != ".json":
        raise ConfigError(f"{path}: give a .json file name for the scaled snapshot, e.g. {path}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(scaled.to_json() + "\n")
    except FileExistsError:
        raise ConfigError(f"{path}: exists already; scaled snapshots never overwrite a file, pick another --out") from None
    return path, original, scaled
