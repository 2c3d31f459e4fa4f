"""Per-client evaluation: each client scores the global model on its own test rows every round,
exactly (the default, which leaves training untouched) or on its own device (charged and
budgeted like training, one job per evaluation)."""

from __future__ import annotations

import csv
import math
import sqlite3
import tomllib

import numpy as np
import pytest

from qflhw.config.spec import parse_spec
from qflhw.devices.base import JobKey
from qflhw.federation.loop import Federation
from qflhw.training.local_eval import exact_logits
from qflhw.training.metrics import score
from tests.helpers import TINY_SPEC


def _run(tmp_path, name: str, extra: str = "", **tables):
    raw = tomllib.loads(TINY_SPEC + "\n" + extra)
    for k, v in tables.items():
        raw.setdefault(k, {}).update(v)
    fed = Federation(parse_spec(raw), tmp_path / name, progress=False)
    return fed, fed.run()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evals")
    return {
        "off": _run(tmp, "off", evaluation={"per_client": False}),
        "exact": _run(tmp, "exact"),
        "device": _run(tmp, "device", evaluation={"on_device": True, "shots": 50}),
    }


def test_client_rows_are_its_own_split_and_disjoint_from_its_training_rows(runs):
    fed, _ = runs["exact"]
    for k, c in enumerate(fed.clients):
        part = fed.data.clients[k]
        np.testing.assert_array_equal(c.x_test, part.X_test)
        np.testing.assert_array_equal(c.y_test, part.y_test)
        train_rows = part.train_index[: len(c.y)]  # the capped training rows the client trains on
        np.testing.assert_array_equal(c.x, fed.data.clients[k].X_train[: len(c.y)])
        assert len(c.y_test) > 0 and not set(part.test_index.tolist()) & set(train_rows.tolist())


def test_evaluation_does_not_change_training(runs):
    """Exact and on-device evaluation leave the trained parameters bit for bit as without it."""
    base = runs["off"][1]
    for kind in ("exact", "device"):
        assert runs[kind][1]["final_parameters"] == base["final_parameters"]
        assert runs[kind][1]["accuracy_per_round"] == base["accuracy_per_round"]
    assert runs["exact"][1]["total_shots"] == base["total_shots"]
    assert "client_test" not in base


def test_on_device_evaluation_is_one_charged_job_per_client_and_round(runs):
    fed, summary = runs["device"]
    base_shots = runs["off"][1]["total_shots"]
    rows = fed.rows
    # 2 qubits with Z on each: one measurement basis, so one circuit per test row, 50 shots each
    assert all(r["eval_shots"] == r["test_rows"] * 50 for r in rows)
    assert summary["total_shots"] == base_shots + sum(r["eval_shots"] for r in rows)
    assert summary["total_jobs"] == runs["off"][1]["total_jobs"] + len(rows)
    with sqlite3.connect(fed.run_dir / "journal.sqlite") as db:
        keys = [JobKey.parse(k) for (k,) in db.execute("SELECT key FROM submissions")]
    evals = sorted((k.round, k.client, k.step) for k in keys if k.phase == "e")
    assert evals == [(0, "a", 0), (0, "b", 0), (1, "a", 0), (1, "b", 0)]
    for r in rows:  # the noisy scores are near the exact ones
        exact = next(e for e in runs["exact"][0].rows if e["round"] == r["round"] and e["client"] == r["client"])
        assert abs(r["client_test_accuracy"] - exact["client_test_accuracy"]) <= 0.25


def test_scores_are_the_global_models_on_the_clients_rows(runs):
    fed, summary = runs["exact"]
    net = fed.global_model
    net.set_flat(np.asarray(summary["final_parameters"]))
    last = {r["client"]: r for r in fed.rows if r["round"] == 1}
    for c in fed.clients:
        s = score(exact_logits(net, fed.model_circuit, fed.observables, c.x_test), c.y_test)
        assert last[c.name]["client_test_accuracy"] == pytest.approx(s.accuracy)
        assert last[c.name]["client_test_auroc"] == pytest.approx(s.auroc)
        assert summary["client_test"]["clients"][c.name]["aupr"] == pytest.approx(s.aupr)
    n = sum(r["test_rows"] for r in last.values())
    pooled = summary["client_test"]["final"]
    assert pooled["rows"] == n
    assert pooled["accuracy"] == pytest.approx(sum(r["client_test_accuracy"] * r["test_rows"] for r in last.values()) / n)
    assert summary["client_test"]["per_round"][1] == pooled
    with open(fed.run_dir / "metrics.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert float(written[-1]["client_test_loss"]) == pytest.approx(fed.rows[-1]["client_test_loss"])
    assert math.isfinite(summary["final_test_auroc"]) and written[0]["personal_test_accuracy"] == ""


def test_evaluation_shots_count_against_the_round_budget(tmp_path):
    # a cap of exactly one round's training shots: training fits, the evaluation job after it does not
    fed0, s0 = _run(tmp_path, "probe", evaluation={"per_client": False})
    per_round = max(r["shots"] for r in fed0.rows)
    fed, summary = _run(tmp_path, "capped", evaluation={"on_device": True}, budget={"shots_per_round": per_round})
    assert summary["final_parameters"] == s0["final_parameters"]  # training was within the cap
    assert all("shots_per_round" in r["eval_error"] and r["eval_shots"] == 0 for r in fed.rows)
    assert all(r["client_test_accuracy"] == "" for r in fed.rows)
