"""A study's report: the markdown summary table and three plots, all from its tidy rows.

Rows are the ones :func:`qflhw.studies.sweep.tidy_rows` gives (one per cell, round and client). The
table has one line per setting (the sweep values other than the seed) with the mean and spread
of the final global test accuracy over seeds; the plots show how aggregators and noise compare.
A second table, from the cells' summaries, scores the clients' own test rows (global and
personalized models, AUROC/AUPR for binary tasks) with the model size and the epsilon spent.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_PANELS = 6


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def cell_finals(rows: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per cell: its sweep-independent facts and final accuracy/loss (last round of the cell)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = out.setdefault(r["cell"], {"row": r, "last": -1, "acc": {}, "gloss": {}, "noise": [], "esp": {}, "loss": {}})
        k = int(r["round"])
        c["acc"][k] = _float(r["global_test_accuracy"])
        c["gloss"][k] = _float(r["global_test_loss"])
        c["last"] = max(c["last"], k)
        c["noise"].append(_float(r["noise_scale"]))
        c["esp"][r["client"]] = _float(r["esp"])
        c["loss"].setdefault(r["client"], {})[k] = _float(r["loss"])
    for c in out.values():
        c["final_acc"] = c["acc"][c["last"]]
        c["final_loss"] = c["gloss"][c["last"]]
    return out


def _setting(row: dict, keys: Sequence[str], drop: Sequence[str] = ("seed",)) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in keys if k not in drop)


def _spread(xs: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray([x for x in xs if math.isfinite(x)], dtype=float)
    if not len(arr):
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def markdown_table(rows: Sequence[dict], keys: Sequence[str]) -> str:
    """One line per setting: seeds run, final accuracy mean ± sd and range, accuracy averaged over
    rounds (how fast it learned), final loss, and the lowest client ESP."""
    finals = cell_finals(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in finals.values():
        groups[_setting(c["row"], keys)].append(c)
    cols = [k for k in keys if k != "seed"]
    if "aggregation.method" not in cols:
        cols.append("aggregation")
    head = [
        *cols, "seeds", "final accuracy (mean ± sd)", "min–max", "accuracy averaged over rounds",
        "final loss (mean ± sd)", "lowest client ESP",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in groups.values():
        acc_m, acc_s = _spread([c["final_acc"] for c in cells])
        loss_m, loss_s = _spread([c["final_loss"] for c in cells])
        auc_m, auc_s = _spread([float(np.mean(list(c["acc"].values()))) for c in cells])
        accs = [c["final_acc"] for c in cells]
        low = min(min(c["esp"].values()) for c in cells)
        row = cells[0]["row"]
        vals = [str(row[k]) for k in cols]
        lines.append(
            "| " + " | ".join([
                *vals,
                str(len(cells)),
                f"{acc_m:.3f} ± {acc_s:.3f}" if math.isfinite(acc_s) else f"{acc_m:.3f}",
                f"{min(accs):.3f}–{max(accs):.3f}",
                f"{auc_m:.3f} ± {auc_s:.3f}" if math.isfinite(auc_s) else f"{auc_m:.3f}",
                f"{loss_m:.3f} ± {loss_s:.3f}" if math.isfinite(loss_s) else f"{loss_m:.3f}",
                f"{low:.3f}",
            ]) + " |"
        )
    return "\n".join(lines)


def clients_table(entries: Sequence[tuple[dict[str, Any], dict]], keys: Sequence[str]) -> str:
    """One line per setting from the cells' summaries: the clients' own test rows scored by the
    global model and (when personalized) by their own models, the model size and the epsilon spent;
    mean ± sd over seeds. Empty when no cell has per-client scores."""
    if not any("client_test" in summ for _, summ in entries):
        return ""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for values, summ in entries:
        groups[tuple(str(values[k]) for k in keys if k != "seed")].append(summ)
    cols = [k for k in keys if k != "seed"]
    metrics = [
        ("global model: accuracy", ("final", "accuracy")), ("AUROC", ("final", "auroc")), ("AUPR", ("final", "aupr")),
        ("personalized: accuracy", ("personal_final", "accuracy")), ("AUROC", ("personal_final", "auroc")),
        ("AUPR", ("personal_final", "aupr")),
    ]
    head = [*cols, "seeds", "parameters", *[m for m, _ in metrics], "epsilon spent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(xs: Sequence[float]) -> str:
        m, sd = _spread(xs)
        if not math.isfinite(m):
            return "–"
        return f"{m:.3f} ± {sd:.3f}" if math.isfinite(sd) else f"{m:.3f}"

    for setting, summs in groups.items():
        vals = [cell([_float(su.get("client_test", {}).get(a, {}).get(b)) for su in summs]) for _, (a, b) in metrics]
        eps = cell([_float(su["privacy"]["epsilon_spent_max"]) for su in summs if "privacy" in su])
        params = str(summs[0].get("model", {}).get("trainable_parameters", ""))
        lines.append("| " + " | ".join([*setting, str(len(summs)), params, *vals, eps]) + " |")
    return "\n".join(lines)


def _save(fig, path: Path) -> None:  # noqa: ANN001
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_per_round(path: Path, rows: Sequence[dict], keys: Sequence[str]) -> None:
    """Global test accuracy per round, one line per aggregator (mean ± sd over seeds).

    Each other setting of the sweep gets its own panel (up to six; beyond that they are pooled).
    """
    plt = _plt()
    finals = cell_finals(rows)
    other = [k for k in keys if k not in ("seed", "aggregation.method")]
    panels: dict[tuple, list[dict]] = defaultdict(list)
    for c in finals.values():
        panels[_setting(c["row"], other, drop=())].append(c)
    pooled = len(panels) > MAX_PANELS
    if pooled:
        panels = {(): [c for cs in panels.values() for c in cs]}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (setting, cells) in zip(axes[0], panels.items()):
        by_agg: dict[str, list[dict]] = defaultdict(list)
        for c in cells:
            by_agg[c["row"]["aggregation"]].append(c)
        for agg, cs in by_agg.items():
            rounds = sorted(set.intersection(*(set(c["acc"]) for c in cs)))
            acc = np.array([[c["acc"][k] for k in rounds] for c in cs])
            mean = acc.mean(axis=0)
            line = ax.plot(rounds, mean, marker="o", label=f"{agg} (n={len(cs)})")[0]
            if len(cs) > 1:
                sd = acc.std(axis=0, ddof=1)
                ax.fill_between(rounds, mean - sd, mean + sd, alpha=0.15, color=line.get_color())
        title = ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in zip(other, setting)) or "all cells"
        ax.set(xlabel="round", ylabel="global test accuracy", ylim=(0, 1.02),
               title=("pooled over settings" if pooled else title))
        ax.set_xticks(sorted({k for c in cells for k in c["acc"]}))
        ax.legend(fontsize=8)
    fig.suptitle("global test accuracy per aggregator (mean ± sd over seeds)", fontsize=11)
    _save(fig, path)


def noise_of(cell: dict, keys: Sequence[str]) -> tuple[str, float]:
    """The cell's noise scale: the swept noise_scale key's value, else its noisiest client's."""
    for k in keys:
        if k.endswith("noise_scale"):
            return k, _float(cell["row"][k])
    return "largest client noise_scale", max(cell["noise"])


def plot_accuracy_vs_noise(path: Path, rows: Sequence[dict], keys: Sequence[str]) -> None:
    """Final global test accuracy against noise scale, one line per aggregator (mean ± sd)."""
    plt = _plt()
    finals = cell_finals(rows)
    pts: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    label = "noise scale"
    for c in finals.values():
        label, x = noise_of(c, keys)
        pts[c["row"]["aggregation"]][x].append(c["final_acc"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for agg, by_x in pts.items():
        xs = sorted(by_x)
        stats = [_spread(by_x[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[0 if math.isnan(s) else s for _, s in stats],
                    marker="o", capsize=3, label=agg)
    ax.set(xlabel=label, ylabel="final global test accuracy", ylim=(0, 1.02),
           title="final accuracy against noise scale (mean ± sd)")
    xs_all = sorted({x for by_x in pts.values() for x in by_x})
    if len(xs_all) > 1 and xs_all[0] > 0:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
    elif xs_all and math.isfinite(xs_all[0]):
        ax.set_xlim(0, 2 * xs_all[0] or 1)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_esp_vs_accuracy(path: Path, rows: Sequence[dict]) -> None:
    """Each client's ESP against its cell's final accuracy, and against its final local loss."""
    plt = _plt()
    finals = cell_finals(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    clients = sorted({cl for c in finals.values() for cl in c["esp"]})
    for name in clients:
        xs, acc, loss = [], [], []
        for c in finals.values():
            if name in c["esp"]:
                xs.append(c["esp"][name])
                acc.append(c["final_acc"])
                loss.append(c["loss"][name].get(c["last"], float("nan")))
        ax1.scatter(xs, acc, label=name, alpha=0.7)
        ax2.scatter(xs, loss, label=name, alpha=0.7)
    ax1.set(xlabel="client ESP (estimated success probability)", ylabel="final global test accuracy",
            ylim=(0, 1.02), title="device quality vs the federation's accuracy")
    ax2.set(xlabel="client ESP", ylabel="final-round local training loss (on device)",
            title="device quality vs the client's own loss")
    ax1.legend(fontsize=8)
    _save(fig, path)


def write_report(out: Path, rows: Sequence[dict], keys: Sequence[str]) -> list[Path]:
    """All three plots into ``out``; returns their paths (nothing is drawn without rows)."""
    if not rows:
        return []
    paths = [out / "accuracy_per_round.png", out / "accuracy_vs_noise.png", out / "esp_vs_accuracy.png"]
    plot_accuracy_per_round(paths[0], rows, keys)
    plot_accuracy_vs_noise(paths[1], rows, keys)
    plot_esp_vs_accuracy(paths[2], rows)
    return paths
