"""Run outputs: ``metrics.csv`` (one row per round and client), ``summary.json`` and plots.

Files are written to a temporary name and renamed, so a crash never leaves half a file, and a
reader (``qflhw watch``, ``qflhw report``, the dashboard) sees the old file or the new one. The
loop rewrites all three after every round; ``summary.json`` says ``"finished": false`` until the
last round is done.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from qflhw._util import atomic_write

#: The spec a run directory keeps (the original TOML, or JSON for a spec built in Python); it
#: marks the directory as a run that ``qflhw resume`` can continue.
SPEC_FILES = ("spec.toml", "spec.json")
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
    # the global model on the global test set (binary tasks), then each client's own test rows
    # ([evaluation]), its personalized model ([personalization]) and its privacy spend ([privacy])
    "global_test_auroc",
    "global_test_aupr",
    "test_rows",
    "client_test_accuracy",
    "client_test_loss",
    "client_test_auroc",
    "client_test_aupr",
    "personal_test_accuracy",
    "personal_test_loss",
    "personal_test_auroc",
    "personal_test_aupr",
    "eval_shots",
    "eval_job_ids",
    "eval_error",
    "dp_epsilon",
    "dp_epsilon_round",
    "dp_noise_std",
    "dp_quantum_std",
    "dp_gaussian_std",
    "dp_shots",
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


def read_summary(path: Path) -> dict | None:
    """``summary.json`` (final or partial), or None when there is none yet."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def is_finished(summary: dict | None) -> bool:
    """Whether a summary is a finished run's (summaries written before partial ones existed are)."""
    return summary is not None and bool(summary.get("finished", True))


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
    # a private temporary name: the run and a `qflhw report` may draw the same file at once
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def summary_table(summary: dict, planned: int | None = None) -> str:
    """The terminal table printed at the end of a run and by `qflhw report` (``planned``: the
    spec's rounds, shown for an unfinished run)."""
    if is_finished(summary):
        head = f"run {summary['run_id']}: {summary['rounds']} rounds, final test accuracy {summary['final_test_accuracy']:.3f}"
    else:
        of = f" of {planned}" if planned is not None else ""
        head = (f"run {summary['run_id']} (unfinished): {summary['rounds']}{of} rounds done, test accuracy "
                f"{summary['final_test_accuracy']:.3f} after round {summary['rounds']}")
    lines = [
        f"{head}, shots {summary['total_shots']}, cost ${summary['total_cost_usd']:.2f}",
        f"{'client':<12} {'device':<22} {'shots':>10} {'cost $':>9} {'esp':>6} {'rounds ok':>9}  note",
    ]
    for name, c in sorted(summary["clients"].items()):
        note = c.get("note", "")
        if c.get("emulated"):  # a dress rehearsal: charged as for real, nothing was paid
            note = ("emulated (no money spent)" + (f"; {note}" if note else ""))
        lines.append(
            f"{name:<12} {c['device']:<22} {c['shots']:>10} {c['cost_usd']:>9.2f} {c['esp']:>6.3f} "
            f"{c['rounds_ok']:>9}  {note}"
        )
    lines.extend(extra_lines(summary))
    return "\n".join(lines)


def extra_lines(summary: dict) -> list[str]:
    """Lines for what a run asked for beyond the defaults: the classical model, personalization, privacy."""
    lines = []
    model = summary.get("model", {})
    if model.get("kind") == "classical":
        lines.append(f"model: classical MLP, {model['trainable_parameters']} trainable parameters "
                     f"(the quantum model has {model['quantum_trainable_parameters']})")
    ct = summary.get("client_test", {})
    if "personalization" in summary and "personal_final" in ct:
        g, p = ct["final"], ct["personal_final"]
        lines.append(f"clients' own test rows ({summary['personalization']['method']}): global accuracy {g['accuracy']:.3f}, "
                     f"AUROC {g['auroc']:.3f}; personalized accuracy {p['accuracy']:.3f}, AUROC {p['auroc']:.3f}")
    if "privacy" in summary:
        pr = summary["privacy"]
        mech = sorted({c["mechanism"] for c in pr["clients"].values()})
        lines.append(f"privacy ({', '.join(mech)}): epsilon spent up to {pr['epsilon_spent_max']:.3g} per client")
    return lines


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
