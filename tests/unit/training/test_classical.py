"""The classical federated baseline: an MLP of about the quantum model's size, same federation."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch

from qflhw.circuits.ansatz import build, weights_per_layer
from qflhw.config.spec import load_spec, parse_spec
from qflhw.federation.assembly import Assembly
from qflhw.training.classical import ClassicalModel, make_model
from tests.helpers import ROOT, TINY_SPEC


@pytest.mark.parametrize("job", ["quickstart", "seed-case-study-sgd", "heterogeneity", "anomaly-pqfl"])
def test_parameter_count_is_within_25_percent_of_the_quantum_models(job):
    from qflhw.studies.sweep import load_base_spec

    spec = load_base_spec(ROOT / "jobs" / f"{job}.toml")
    m = spec.model
    n_weights = m.layers * weights_per_layer(m.ansatz, m.qubits)
    assert len(build(m.ansatz, m.qubits, m.layers).weights) == n_weights
    classes = Assembly(spec).n_classes  # 2 for the one-vs-rest anomaly task
    quantum = n_weights + m.qubits * classes + classes  # circuit weights, head weights, head biases
    net = make_model(spec.model_copy(update={"model": m.model_copy(update={"kind": "classical"})}), n_weights, m.qubits, classes)
    assert isinstance(net, ClassicalModel)
    print(f"{job}: quantum {quantum} trainable parameters, classical MLP {net.num_parameters} "
          f"({net.num_parameters / quantum - 1:+.0%})")
    assert abs(net.num_parameters - quantum) <= 0.25 * quantum


def test_classical_run_trains_the_same_split_with_no_device_job(tmp_path):
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(TINY_SPEC)
    quantum = Assembly(parse_spec(raw))
    raw["model"]["kind"] = "classical"
    spec = parse_spec(raw)
    fed = Federation(spec, tmp_path / "run", progress=False)
    for k, c in enumerate(fed.clients):  # same rows as the quantum model's clients
        np.testing.assert_array_equal(c.x, quantum.data.clients[k].X_train[: len(c.y)])
    summary = fed.run()
    assert summary["total_shots"] == 0 and summary["total_jobs"] == 0
    assert summary["model"] == {"kind": "classical", "trainable_parameters": 12, "quantum_trainable_parameters": 13}
    assert summary["rounds"] == spec.rounds and summary["aggregation"] == "fedavg"
    assert summary["final_test_accuracy"] > summary["accuracy_per_round"][0] - 0.2  # it ran; accuracy is a number
    assert all(r["esp"] == 1.0 and r["steps"] == 2 for r in fed.rows)  # 8 rows, batch 4: two steps, as the quantum one


def test_qfl_versus_fl_is_one_study_over_model_kind(tmp_path):
    from qflhw.studies.sweep import expand

    raw = tomllib.loads(TINY_SPEC)
    raw["sweep"] = {"model": {"kind": ["quantum", "classical"]}}
    study = expand(raw)
    assert [c.spec.model.kind for c in study.cells] == ["quantum", "classical"]
    assert study.cells[0].spec.model_copy(update={"model": study.cells[1].spec.model}) == study.cells[1].spec


def test_shipped_qfl_vs_fl_study_sweeps_model_kind():
    from qflhw.studies.sweep import load_study

    study = load_study(ROOT / "jobs" / "qfl-vs-fl.toml")
    assert {c.values["model.kind"] for c in study.cells} == {"quantum", "classical"}
    assert load_spec(ROOT / "jobs" / "seed-case-study-sgd.toml").data == study.cells[0].spec.data


def test_set_flat_copies_so_training_leaves_the_callers_array_alone():
    net = ClassicalModel(4, 5, 3, seed=1)
    flat = np.linspace(-1, 1, net.num_parameters)
    before = flat.copy()
    net.set_flat(flat)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # what an optimizer step does, in place
    np.testing.assert_array_equal(flat, before)
    np.testing.assert_allclose(net.get_flat(), before + 1.0)


def test_a_classical_round_is_the_same_trained_concurrently_or_one_client_after_another(tmp_path):
    """The loop trains clients in threads from one global array; each client's first-round result
    must equal the same client trained alone (it did not when parameters were views of that array)."""
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(TINY_SPEC)
    raw["model"]["kind"] = "classical"
    raw["rounds"] = 1
    spec = parse_spec(raw)
    alone = Federation(spec, tmp_path / "alone", progress=False)
    expected = {c.name: c.train_round(alone.params.copy(), 0).params for c in alone.clients}
    together = Federation(spec, tmp_path / "together", progress=False)
    together.run()
    import json

    final = np.asarray(json.loads((tmp_path / "together" / "summary.json").read_text())["final_parameters"])
    fedavg = np.average([expected[c.name] for c in alone.clients], axis=0, weights=[len(c.y) for c in alone.clients])
    np.testing.assert_allclose(final, fedavg, atol=1e-12)
