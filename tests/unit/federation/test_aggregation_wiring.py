"""Aggregation through the spec: the server weighs each client by what its own device did.

The ESP an update carries is recomputed here from the raw calibration JSON (scaled by the
client's noise_scale) over the client's transpiled circuit, scheduled by qiskit
(``tests.helpers.esp_by_hand``), and the new global parameters from the hand-derived
noise-aware weights num_samples * ESP.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qflhw.calibration import snapshot as cal_mod
from qflhw.config.spec import parse_spec
from tests.helpers import esp_by_hand


class Recording:
    """Wraps the run's aggregator and keeps what it was given."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def aggregate(self, updates, current):
        self.calls.append((list(updates), np.array(current)))
        return self.inner.aggregate(updates, current)


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    import tomllib

    from qflhw.federation.loop import Federation
    from tests.helpers import TINY_SPEC

    raw = tomllib.loads(TINY_SPEC)
    raw["aggregation"] = {"method": "noise-aware"}
    raw["clients"][1]["noise_scale"] = 4.0
    raw["data"]["max_train_per_client"] = 4
    raw["rounds"] = 1
    fed = Federation(parse_spec(raw), tmp_path_factory.mktemp("wiring"), progress=False)
    fed.aggregator = Recording(fed.aggregator)
    fed.run_round(0)
    return fed


def test_noise_aware_weighs_by_samples_times_device_esp(one_round):
    fed = one_round
    (updates, current), = fed.aggregator.calls
    refs = {"a": ("ibm_fez/2025-02-26", 1.0), "b": ("ibm_kyiv/2025-02-26", 4.0)}
    for u, c in zip(updates, fed.clients):
        tc = c.evaluator.transpiled
        ref, scale = refs[u.client]
        raw = json.loads(cal_mod.resolve(ref).read_text())
        assert u.esp == pytest.approx(esp_by_hand(tc.isa, tc.final_physical, raw, scale), rel=1e-9)
        assert u.noise_level == pytest.approx(1 - u.esp)
        assert u.num_samples == 4
    assert updates[1].esp < updates[0].esp  # the 4x noisier client
    w = np.array([u.num_samples * u.esp for u in updates])
    w = w / w.sum()
    expected = current + sum(wi * (u.params - current) for wi, u in zip(w, updates))
    np.testing.assert_allclose(fed.params, expected)
    assert math.isclose(w.sum(), 1.0)


def test_aggregation_options_reach_the_aggregator():
    import tomllib

    from qflhw.federation.aggregation import from_spec
    from tests.helpers import TINY_SPEC

    raw = tomllib.loads(TINY_SPEC)
    raw["aggregation"] = {"method": "sporadic", "threshold": 0.3, "mode": "skip"}
    agg = from_spec(parse_spec(raw).aggregation)
    assert (agg.threshold, agg.mode) == (0.3, "skip")
    raw["aggregation"] = {"method": "trimmed-mean", "trim_fraction": 0.25}
    assert from_spec(parse_spec(raw).aggregation).trim_fraction == 0.25


def test_sporadic_threshold_of_one_is_a_spec_error():
    import tomllib

    from qflhw.errors import ConfigError
    from tests.helpers import TINY_SPEC

    raw = tomllib.loads(TINY_SPEC)
    raw["aggregation"] = {"method": "sporadic", "threshold": 1.0}
    with pytest.raises(ConfigError, match=r"job.toml: field aggregation.threshold"):
        parse_spec(raw, "job.toml")
