"""A spec with a model of one's own: it trains, and every engine and report sees the same model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import qflhw
from qflhw.circuits.custom import load_model
from qflhw.config.spec import parse_spec
from qflhw.execution.budget import Ledger
from qflhw.federation.assembly import Assembly
from qflhw.federation.estimate import estimate_spec
from qflhw.federation.quality import client_quality

OWN = "tests.unit.federation.custom_models"
BASE = {
    "name": "own-model",
    "seed": 2,
    "rounds": 2,
    "data": {"dataset": "digits", "classes": [0, 1], "max_train_per_client": 8},
    "model": {"circuit": f"{OWN}:shared_weights", "qubits": 2},
    "training": {"batch_size": 4, "learning_rate": 0.2, "shots": 200},
    "clients": [{"name": "a", "device": "fake_fez"}, {"name": "b", "device": "fake_iqm_garnet"}],
}


def _spec(**changes) -> qflhw.JobSpec:
    raw = copy.deepcopy(BASE)
    for table, values in changes.items():
        raw[table].update(values)
    return parse_spec(raw)


@pytest.mark.parametrize("gradient", ["parameter-shift", "spsa"])
def test_own_circuit_trains_end_to_end(gradient, tmp_path):
    spec = _spec(training={"gradient": gradient})
    start = Assembly(spec).global_model().get_flat()
    result = qflhw.run(spec, out=tmp_path / "run")
    s = result.summary
    assert s["rounds"] == 2 and all(c["rounds_ok"] == 2 for c in s["clients"].values())
    assert s["total_jobs"] == 2 * 2 * 2  # 2 rounds x 2 clients x 2 steps (8 rows, batches of 4)
    assert not np.allclose(s["final_parameters"], start) and np.isfinite(s["final_test_loss"])
    # rows per data point: parameter shift shifts w0's three gates (2 + 2 + 4 terms), 2 w1 + 0.3 and x0 w2 (2 each)
    rows = 1 + 2 + 2 + 4 + 2 + 2 if gradient == "parameter-shift" else 3
    assert s["total_shots"] == 2 * 2 * 8 * rows * 1 * 200  # one Z basis


def test_estimate_heterogeneity_and_sites_see_the_same_model(tmp_path):
    spec = _spec()
    model, _ = load_model(spec.model)
    quality = client_quality(spec)
    est = estimate_spec(spec)
    assembly = Assembly(spec)
    for k in range(len(spec.clients)):
        device = assembly.offline_device(k)
        client = assembly.client(k, device, ledger=Ledger(), runner=lambda *a: None)
        assert client.evaluator.model.circuit.num_qubits == model.circuit.num_qubits == 2
        assert quality[k].depth == device.transpile(model.circuit).depth
        assert est.clients[k].per_round.shots == 8 * 13 * 200  # the hand count above, per client and round
    from qflhw.flower.site import Site

    site = Site(spec, "b", source="test", run_dir=tmp_path / "site")
    assert [p.name for p in site.client.evaluator.model.weights] == ["w[0]", "w[1]", "w[2]"]


def test_pennylane_circuit_with_own_head_and_loss(tmp_path):
    spec = _spec(model={"circuit": f"{OWN}:pennylane_model", "head": f"{OWN}:mlp_head", "loss": f"{OWN}:margin_loss"},
                 training={"shots": 0})
    assembly = Assembly(spec)
    net = assembly.global_model()
    assert sum(p.numel() for p in net.head.parameters()) == 2 * 6 + 6 + 6 * 2 + 2  # the factory's MLP
    result = qflhw.run(spec, out=tmp_path / "run")
    assert len(result.summary["final_parameters"]) == 4 + 32  # 4 circuit weights + the MLP
    assert result.summary["total_jobs"] == 8
