"""Server-side evaluation of the global model on held-out data, and the clients' own scores.

The server has no QPU of its own: it evaluates the global model with exact noiseless expectations
(qiskit's ``StatevectorEstimator``), which shows what the federation learned independent of any one
client's noise. Each client also scores the global model (and its personalized one) on its own
test rows every round (:mod:`qflhw.training.local_eval`); :func:`client_eval_columns` and
:func:`client_eval_summary` turn those reports into ``metrics.csv`` columns and the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.ansatz import ModelCircuit
from qflhw.circuits.exact import ideal_expectations
from qflhw.training.classical import Model
from qflhw.training.local_eval import ClientEval, exact_logits
from qflhw.training.metrics import Loss, Scores, pooled, score

__all__ = ["ideal_expectations", "evaluate", "evaluate_scores", "client_eval_columns", "client_eval_summary"]

EVAL_FIELDS = ("accuracy", "loss", "auroc", "aupr")


def evaluate_scores(
    net: Model,
    model: ModelCircuit,
    observables: Sequence[SparsePauliOp],
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Loss = torch.nn.functional.cross_entropy,
) -> Scores:
    """Accuracy, loss (the spec's), and for binary tasks AUROC and AUPR, with ideal circuit evaluation."""
    return score(exact_logits(net, model, observables, x), np.asarray(y, dtype=int), loss_fn)


def evaluate(
    net: Model,
    model: ModelCircuit,
    observables: Sequence[SparsePauliOp],
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Loss = torch.nn.functional.cross_entropy,
) -> tuple[float, float]:
    """(accuracy, mean loss; cross-entropy unless the spec names another) with ideal circuit evaluation."""
    s = evaluate_scores(net, model, observables, x, y, loss_fn)
    return s.accuracy, s.loss


def client_eval_columns(ev: ClientEval | None) -> dict:
    """The ``metrics.csv`` columns of one client's evaluation (empty strings when it did not evaluate)."""
    out: dict = {"test_rows": "", "eval_shots": "", "eval_job_ids": "", "eval_error": ""}
    for who in ("client", "personal"):
        out.update({f"{who}_test_{k}": "" for k in EVAL_FIELDS})
    if ev is None:
        return out
    out.update({"test_rows": ev.scores.rows, "eval_shots": ev.cost.shots, "eval_job_ids": " ".join(ev.job_ids),
                "eval_error": ev.error or ""})
    for who, s in (("client", ev.scores), ("personal", ev.personal)):
        if s is not None and s.rows and math.isfinite(s.accuracy):  # an evaluation that failed leaves them empty
            out.update({f"{who}_test_{k}": getattr(s, k) for k in EVAL_FIELDS})
    return out


def _scores(row: dict, who: str) -> Scores | None:
    if row.get(f"{who}_test_accuracy", "") in ("", None) or not row.get("test_rows"):
        return None
    return Scores(int(row["test_rows"]), *(float(row[f"{who}_test_{k}"]) for k in EVAL_FIELDS))


def client_eval_summary(rows: Sequence[dict], rounds: int) -> dict:
    """Per-client and pooled scores of the global and personalized models: per round and final."""
    per_round, personal_round = [], []
    for r in range(rounds):
        mine = [row for row in rows if int(row["round"]) == r]
        per_round.append(pooled([s for row in mine if (s := _scores(row, "client"))]).as_dict())
        personal_round.append(pooled([s for row in mine if (s := _scores(row, "personal"))]).as_dict())
    last: dict[str, dict] = {}
    for row in rows:  # rows are in round order: the last evaluated round of each client wins
        g = _scores(row, "client")
        if g is not None:
            entry = {"round": int(row["round"]), **g.as_dict()}
            p = _scores(row, "personal")
            if p is not None:
                entry.update({f"personal_{k}": getattr(p, k) for k in EVAL_FIELDS})
            last[row["client"]] = entry
    final_global = pooled([Scores(**{k: v for k, v in e.items() if k in ("rows", *EVAL_FIELDS)}) for e in last.values()])
    out = {"per_round": per_round, "clients": last, "final": final_global.as_dict()}
    if any(math.isfinite(p["accuracy"]) for p in personal_round if p["rows"]):
        out["personal_per_round"] = personal_round
        out["personal_final"] = pooled([
            Scores(e["rows"], *(e[f"personal_{k}"] for k in EVAL_FIELDS)) for e in last.values() if "personal_accuracy" in e
        ]).as_dict()
    return out
