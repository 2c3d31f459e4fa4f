"""Accuracy, loss, AUROC and AUPR of a client's scores, against hand computation and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from qflhw.training.metrics import Scores, pooled, score


def _logits(p1: np.ndarray) -> np.ndarray:
    """Two-class logits whose softmax gives P(label 1) = p1."""
    return np.stack([np.zeros_like(p1), np.log(p1 / (1 - p1))], axis=1)


def test_auroc_and_aupr_of_a_hand_made_example():
    # positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of the 4 (positive, negative) pairs are
    # ordered right, so AUROC = 3/4; ranked 0.8+, 0.4-, 0.35+, 0.1-: precision 1 at recall 1/2 and
    # 2/3 at recall 1, so average precision = 1/2 * 1 + 1/2 * 2/3 = 5/6
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    s = score(_logits(p1), y)
    assert s.auroc == pytest.approx(3 / 4, abs=1e-12)
    assert s.aupr == pytest.approx(5 / 6, abs=1e-12)
    assert s.accuracy == pytest.approx(3 / 4)  # 0.4 -> 0 (right), 0.35 -> 0 (wrong), the others right
    assert s.loss == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])), abs=1e-12)
    assert s.rows == 4


def test_scores_equal_scikit_learn_on_random_rows():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=40)
    p1 = np.clip(rng.random(40) * 0.6 + 0.4 * y, 0.01, 0.99)
    s = score(_logits(p1), y)
    assert s.auroc == pytest.approx(roc_auc_score(y, p1), abs=1e-12)
    assert s.aupr == pytest.approx(average_precision_score(y, p1), abs=1e-12)
    assert s.loss == pytest.approx(log_loss(y, np.stack([1 - p1, p1], axis=1)), abs=1e-12)


def test_ranking_metrics_are_nan_for_multiclass_or_one_label():
    three = score(np.eye(3)[[0, 1, 2, 1]], np.array([0, 1, 2, 1]))
    assert three.accuracy == 1.0 and math.isnan(three.auroc) and math.isnan(three.aupr)
    one = score(_logits(np.array([0.2, 0.7])), np.array([1, 1]))
    assert one.accuracy == 0.5 and math.isnan(one.auroc)


def test_pooled_accuracy_and_loss_count_every_row_once():
    a = Scores(rows=10, accuracy=0.9, loss=0.2, auroc=0.8, aupr=0.7)
    b = Scores(rows=30, accuracy=0.5, loss=0.6, auroc=float("nan"), aupr=float("nan"))
    p = pooled([a, b, Scores(0)])
    assert p.rows == 40
    assert p.accuracy == pytest.approx((10 * 0.9 + 30 * 0.5) / 40)
    assert p.loss == pytest.approx((10 * 0.2 + 30 * 0.6) / 40)
    assert p.auroc == pytest.approx(0.8) and p.aupr == pytest.approx(0.7)  # only the client that has them
