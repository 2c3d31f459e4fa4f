"""The dashboard's form: its knobs make a valid spec on fake devices; a paid QPU is refused."""

from __future__ import annotations

import tomllib

import pytest

from qflhw.config.profiles import profile_dir
from qflhw.dashboard.launch import RunRequest, free_devices
from qflhw.errors import ConfigError


def test_only_fake_profiles_are_offered():
    providers = {p.stem: tomllib.loads(p.read_text())["provider"] for p in profile_dir().glob("*.toml")}
    assert free_devices() == sorted(name for name, provider in providers.items() if provider == "fake")
    assert "ibm_fez" in providers and "ibm_fez" not in free_devices()


def test_the_form_makes_a_spec_with_its_knobs():
    spec = RunRequest(name="demo", devices=["fake_fez", "fake_kyiv", "fake_fez"], rounds=4, learning_rate=0.2, qubits=3,
                      layers=2, shots=500, aggregation="median", optimizer="sgd", classes=[0, 1, 2]).spec()
    assert [(c.name, c.device) for c in spec.clients] == [("c1", "fake_fez"), ("c2", "fake_kyiv"), ("c3", "fake_fez")]
    assert (spec.rounds, spec.training.learning_rate, spec.model.qubits, spec.model.layers, spec.training.shots) == (4, 0.2, 3, 2, 500)
    assert (spec.aggregation.method, spec.training.optimizer, spec.data.classes) == ("median", "sgd", [0, 1, 2])
    assert spec.budget.max_usd == 0.0  # the ledger refuses any paid job


@pytest.mark.parametrize("device", ["ibm_fez", "ionq_forte-1", "../backends/ibm_fez", "nonexistent"])
def test_paid_or_unknown_devices_are_refused(device):
    with pytest.raises(ConfigError, match="not a fake device"):
        RunRequest(devices=["fake_fez", device]).spec()


def test_bad_knobs_are_one_line_errors():
    with pytest.raises(ConfigError, match="rounds"):
        RunRequest(devices=["fake_fez"], rounds=0).spec()
    with pytest.raises(ConfigError, match="at least one client"):
        RunRequest(devices=[]).spec()
