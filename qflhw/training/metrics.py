"""Classification scores of a model on labelled rows: accuracy, cross-entropy, AUROC and AUPR.

AUROC and AUPR (scikit-learn's ``roc_auc_score`` and ``average_precision_score``, the positive
class being label 1) are defined for binary tasks whose rows hold both labels; otherwise they
are NaN. Pooling over clients is exact for accuracy and loss (every row counts once); for the
ranking metrics it is the row-weighted mean of the clients' values, because a client sends its
scores, not its rows' predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

NAN = float("nan")


@dataclass(frozen=True)
class Scores:
    rows: int
    accuracy: float = NAN
    loss: float = NAN
    auroc: float = NAN
    aupr: float = NAN

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scores:
        return cls(int(d["rows"]), float(d["accuracy"]), float(d["loss"]), float(d["auroc"]), float(d["aupr"]))


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def score(logits: torch.Tensor | np.ndarray, y: np.ndarray, loss_fn: Loss = torch.nn.functional.cross_entropy) -> Scores:
    """Scores of ``logits`` (rows x classes) against integer labels ``y``; ``loss`` by ``loss_fn``."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return Scores(0)
    t = torch.as_tensor(logits, dtype=torch.float64)
    with torch.no_grad():
        loss = float(loss_fn(t, torch.as_tensor(y)))
        probs = torch.softmax(t, dim=1).numpy()
    acc = float((probs.argmax(axis=1) == y).mean())
    auroc = aupr = NAN
    if probs.shape[1] == 2 and len(np.unique(y)) == 2:
        from sklearn.metrics import average_precision_score, roc_auc_score

        auroc = float(roc_auc_score(y, probs[:, 1]))
        aupr = float(average_precision_score(y, probs[:, 1]))
    return Scores(len(y), acc, loss, auroc, aupr)


def pooled(parts: Sequence[Scores]) -> Scores:
    """One score over several clients' rows (see the module docstring for the ranking metrics)."""
    parts = [p for p in parts if p.rows > 0]
    rows = sum(p.rows for p in parts)
    if rows == 0:
        return Scores(0)

    def mean(key: str) -> float:
        have = [(getattr(p, key), p.rows) for p in parts if math.isfinite(getattr(p, key))]
        n = sum(w for _, w in have)
        return sum(v * w for v, w in have) / n if n else NAN

    return Scores(rows, mean("accuracy"), mean("loss"), mean("auroc"), mean("aupr"))
