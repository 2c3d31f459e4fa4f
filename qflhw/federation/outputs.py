"""Run outputs: ``metrics.csv`` (one row per round and client), ``summary.json`` and plots.

Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from qflhw._util import atomic_write

METRIC_FIELDS = [
    "round",
    "client",
    "device",
    "status",
    "num_samples",
    "steps",
    "loss",
    "shots",
    "cost_usd",
    "esp",
    "variance",
    "calibration_id",
    "layout",
    "noise_estimate",
    "weight",
    "suppression",
    "decision",
    "job_ids",
    "seconds",
    "global_test_accuracy",
    "global_test_loss",
    "zne_fallbacks",
    "subchannel",
    "power_dbm",
    "rate_bps",
    "upload_s",
    "sum_rate_bps",
    "latency_s",
    "error",
]


def write_metrics(path: Path, rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_summary(path: Path, summary: dict) -> None:
    atomic_write(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def plot_learning_curve(path: Path, rows: Sequence[dict], title: str) -> None:
    """Global test accuracy and each client's training loss per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted({int(r["round"]) for r in rows})
    acc = {int(r["round"]): float(r["global_test_accuracy"]) for r in rows if r["global_test_accuracy"] != ""}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(sorted(acc), [acc[k] for k in sorted(acc)], marker="o")
    ax1.set(xlabel="round", ylabel="global test accuracy", ylim=(0, 1.02), title="global model")
    for client in sorted({r["client"] for r in rows}):
        pts = [(int(r["round"]), float(r["loss"])) for r in rows if r["client"] == client and _finite(r["loss"])]
        if pts:
            ax2.plot(*zip(*pts), marker=".", label=f"{client}")
    ax2.set(xlabel="round", ylabel="local training loss", title="clients (on their devices)")
    ax2.legend(fontsize=8)
    ax1.set_xticks(rounds)
    ax2.set_xticks(rounds)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def summary_table(summary: dict) -> str:
    """The terminal table printed at the end of a run and by `qflhw report`."""
    lines = [
        f"run {summary['run_id']}: {summary['rounds']} rounds, final test accuracy "
        f"{summary['final_test_accuracy']:.3f}, shots {summary['total_shots']}, cost ${summary['total_cost_usd']:.2f}",
        f"{'client':<12} {'device':<22} {'shots':>10} {'cost $':>9} {'esp':>6} {'rounds ok':>9}  note",
    ]
    for name, c in sorted(summary["clients"].items()):
        lines.append(
            f"{name:<12} {c['device']:<22} {c['shots']:>10} {c['cost_usd']:>9.2f} {c['esp']:>6.3f} "
            f"{c['rounds_ok']:>9}  {c.get('note', '')}"
        )
    return "\n".join(lines)


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
