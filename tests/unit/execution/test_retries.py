"""Provider faults: transient errors are retried to the same result; a broken client drops out."""

from __future__ import annotations

import numpy as np
import pytest

from qflhw.config.spec import load_spec
from qflhw.devices.factory import make_device
from qflhw.devices.faulty import FaultyDevice
from qflhw.execution.events import read_events
from qflhw.execution.journal import Journal
from qflhw.federation.loop import Federation

NO_WAIT = "\n[resilience]\nretries = 8\nbackoff_initial_s = 0\nbackoff_max_s = 0\n"


@pytest.fixture
def spec(tmp_path, tiny_spec_text):
    p = tmp_path / "spec.toml"
    p.write_text(tiny_spec_text + NO_WAIT)
    return load_spec(p)


def _devices(spec, **faults):
    from qflhw._util import stable_seed

    out = {}
    for cs in spec.clients:
        dev = make_device(cs.device, seed=stable_seed(spec.seed, cs.name, "device"))
        out[cs.name] = FaultyDevice(dev, seed=1, **faults.get(cs.name, {})) if cs.name in faults else dev
    return out


def test_thirty_percent_transient_failures_give_identical_results(spec, tmp_path):
    clean = Federation(spec, tmp_path / "clean", progress=False).run()
    flaky = {"a": {"submit_rate": 0.3, "timeout_rate": 0.3}, "b": {"submit_rate": 0.3, "timeout_rate": 0.3}}
    devices = _devices(spec, **flaky)
    fed = Federation(spec, tmp_path / "flaky", devices=devices, progress=False)
    out = fed.run()
    injected = sum(sum(d.injected.values()) for d in devices.values())
    assert injected >= 5, "the fault injector must actually fire"
    np.testing.assert_array_equal(out["final_parameters"], clean["final_parameters"])
    j = Journal(tmp_path / "flaky")
    retries = j.events("retry")
    assert len(retries) == injected  # every injected fault was retried and journaled
    # a failed submission is sent (and charged) again; a failed wait is not
    assert out["total_shots"] > clean["total_shots"]
    j.close()


def test_permanently_failing_client_drops_out_and_run_completes(spec, tmp_path):
    fed = Federation(spec, tmp_path / "broken", devices=_devices(spec, b={"permanent_rate": 1.0}), progress=False)
    out = fed.run()
    assert out["clients"]["b"]["rounds_ok"] == 0
    assert "failed on the device" in out["clients"]["b"]["note"]
    assert out["clients"]["a"]["rounds_ok"] == spec.rounds
    assert all(r["status"] == "dropped" for r in fed.rows if r["client"] == "b")
    events = read_events(tmp_path / "broken" / "events.jsonl")
    dropouts = [e for e in events if e["kind"] == "dropout"]
    assert [(e["round"], e["client"], e["status"]) for e in dropouts] == [(r, "b", "dropped") for r in range(spec.rounds)]
    assert all("failed on the device" in e["error"] for e in dropouts)
    assert {e["client"] for e in events if e["kind"] == "failed"} == {"b"}
    rounds = [e for e in events if e["kind"] == "round"]
    assert [(e["round"], e["clients_ok"], e["clients"]) for e in rounds] == [(r, 1, 2) for r in range(spec.rounds)]


def test_min_clients_not_met_keeps_global_model(spec, tmp_path):
    strict = spec.model_copy(update={"aggregation": spec.aggregation.model_copy(update={"min_clients": 2})})
    fed = Federation(strict, tmp_path / "strict", devices=_devices(strict, b={"permanent_rate": 1.0}), progress=False)
    start = fed.params.copy()
    fed.run()
    np.testing.assert_array_equal(fed.params, start)
    assert {r["status"] for r in fed.rows} == {"dropped", "not-aggregated"}
