"""Aggregators: weights derived by hand, invariants checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qflhw.config.spec import AGGREGATION_METHODS, AggregationSpec
from qflhw.errors import ConfigError, InvalidUpdate
from qflhw.federation.aggregation import (
    AGGREGATORS,
    Aggregator,
    ClientUpdate,
    FedAvg,
    InverseVariance,
    Median,
    NoiseAwareESP,
    SpoQFL,
    Sporadic,
    TrimmedMean,
    WeightedAggregator,
    from_spec,
    make_aggregator,
    validate_update,
)

W0 = np.array([1.0, -2.0, 0.5])
W1 = np.array([3.0, 4.0, -1.5])
ZERO = np.zeros(3)


def _u(name: str, params, n: int = 1, **meta) -> ClientUpdate:
    return ClientUpdate(name, np.asarray(params, dtype=float), n, **meta)


# --- by hand -------------------------------------------------------------------------------------


def test_fedavg_weights_by_samples():
    updates = [_u("a", W0, 1), _u("b", W1, 2)]
    np.testing.assert_allclose(FedAvg().weights(updates), [1 / 3, 2 / 3])
    np.testing.assert_allclose(FedAvg().aggregate(updates, ZERO), (W0 * 1 + W1 * 2) / 3)
    np.testing.assert_allclose(FedAvg().aggregate(updates, W1), (W0 * 1 + W1 * 2) / 3)


def test_noise_aware_weights_by_samples_times_esp():
    updates = [_u("a", W0, 10, esp=0.9), _u("b", W1, 30, esp=0.1)]
    # raw 9 and 3
    np.testing.assert_allclose(NoiseAwareESP().weights(updates), [0.75, 0.25])
    np.testing.assert_allclose(NoiseAwareESP().aggregate(updates, ZERO), 0.75 * W0 + 0.25 * W1)


def test_inverse_variance_with_a_missing_variance():
    updates = [_u("a", W0, variance=1.0), _u("b", W1, variance=4.0), _u("c", ZERO, variance=None)]
    # raw 1, 0.25 and the mean of those, 0.625; total 1.875
    np.testing.assert_allclose(InverseVariance().weights(updates), np.array([1.0, 0.25, 0.625]) / 1.875)


def test_inverse_variance_without_any_variance_is_fedavg():
    updates = [_u("a", W0, 1), _u("b", W1, 3)]
    np.testing.assert_allclose(InverseVariance().weights(updates), [0.25, 0.75])


def test_median_and_trimmed_mean_coordinatewise():
    updates = [_u(str(i), [v, -v]) for i, v in enumerate([0.0, 1.0, 2.0, 3.0, 100.0])]
    np.testing.assert_allclose(Median().aggregate(updates, np.zeros(2)), [2.0, -2.0])
    np.testing.assert_allclose(TrimmedMean(0.2).aggregate(updates, np.zeros(2)), [2.0, -2.0])  # mean of 1, 2, 3
    np.testing.assert_allclose(TrimmedMean(0.0).aggregate(updates, np.zeros(2)), [21.2, -21.2])
    np.testing.assert_allclose(Median().aggregate(updates[:2], np.zeros(2)), [0.5, -0.5])


def test_sporadic_skip_drops_noisy_clients():
    current = np.ones(3)
    updates = [_u("quiet", W0, 2, noise=0.1), _u("noisy", W1, 2, noise=0.5), _u("esp", ZERO, 2, esp=0.9)]
    agg = Sporadic(threshold=0.3, mode="skip")
    np.testing.assert_allclose(agg.weights(updates), [0.5, 0.0, 0.5])  # "esp": noise 1 - 0.9 = 0.1
    np.testing.assert_allclose(agg.aggregate(updates, current), (W0 + ZERO) / 2)


def test_sporadic_scale_damps_noisy_deltas():
    current = np.ones(3)
    updates = [_u("quiet", W0, 1, noise=0.1), _u("noisy", W1, 3, noise=0.5)]
    agg = Sporadic(threshold=0.3, mode="scale")
    np.testing.assert_allclose(agg.scales(updates), [1.0, 0.5 / 0.7])
    expected = current + 0.25 * (W0 - current) + 0.75 * (0.5 / 0.7) * (W1 - current)
    np.testing.assert_allclose(agg.aggregate(updates, current), expected)


def test_spoqfl_suppresses_by_its_own_noise_estimate_and_skips_below_the_threshold():
    current = np.ones(3)
    updates = [
        _u("quiet", W0, 1, noise_estimate=0.1),
        _u("noisy", W1, 3, noise_estimate=0.5),
        _u("esp-only", ZERO, 2, esp=0.4),  # no estimate: xi = 1 - esp = 0.6
    ]
    agg = SpoQFL(gamma=2.0, skip_below=0.35)
    s = np.exp(-2.0 * np.array([0.1, 0.5, 0.6]))  # 0.819, 0.368, 0.301: the last one is skipped
    np.testing.assert_allclose(agg.suppression(updates), s)
    np.testing.assert_allclose(agg.weights(updates), [0.25, 0.75, 0.0])  # FedAvg over the clients kept
    expected = current + 0.25 * s[0] * (W0 - current) + 0.75 * s[1] * (W1 - current)
    np.testing.assert_allclose(agg.aggregate(updates, current), expected)
    rows = agg.decisions(updates)
    assert [r["decision"] for r in rows] == ["scaled", "scaled", "skipped"]
    np.testing.assert_allclose([r["weight"] for r in rows], [0.25 * s[0], 0.75 * s[1], 0.0])
    np.testing.assert_allclose([r["suppression"] for r in rows], s)
    with pytest.raises(InvalidUpdate, match="noise_estimate=-1"):
        _u("bad", W0, 1, noise_estimate=-1.0)


def test_decisions_report_each_clients_weight():
    updates = [_u("a", W0, 1, esp=0.5), _u("b", W1, 3, esp=1.0)]
    np.testing.assert_allclose([r["weight"] for r in NoiseAwareESP().decisions(updates)], [0.5 / 3.5, 3 / 3.5])
    assert [r["weight"] for r in Median().decisions(updates)] == ["", ""]  # no weighted mean to report


def test_everyone_skipped_keeps_current():
    current = np.array([0.3, 0.2, 0.1])
    updates = [_u("a", W0, noise=0.9), _u("b", W1, noise=0.8)]
    np.testing.assert_array_equal(Sporadic(threshold=0.5, mode="skip").aggregate(updates, current), current)
    np.testing.assert_array_equal(FedAvg().aggregate([], current), current)
    np.testing.assert_array_equal(Median().aggregate([_u("a", W0, 0)], current), current)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan, 0.0]), np.array([np.inf, 0.0, 0.0])])
@pytest.mark.parametrize("aggregator", [FedAvg(), Median(), Sporadic(threshold=0.5, mode="skip")])
def test_non_finite_update_rejected_naming_the_client(bad, aggregator):
    with pytest.raises(InvalidUpdate, match="client 'ibm_fez-3': params has NaN, infinite"):
        aggregator.aggregate([_u("ok", W0), _u("ibm_fez-3", bad)], ZERO)


def test_wrong_shape_rejected():
    with pytest.raises(InvalidUpdate, match=r"client 'c': params has shape \(2,\), expected \(3,\)"):
        validate_update(_u("c", [1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        validate_update(_u("c", [W0]), 3)
    validate_update(_u("c", W0), 3)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"n": -1}, "num_samples=-1"),
        ({"esp": 1.5}, "esp=1.5"),
        ({"variance": 0.0}, "variance=0.0"),
        ({"noise": -0.1}, "noise=-0.1"),
    ],
)
def test_bad_metadata_rejected(meta, match):
    with pytest.raises(InvalidUpdate, match=f"client 'x': {match}"):
        _u("x", W0, **meta)


def test_registry():
    assert set(AGGREGATORS) == {"fedavg", "noise-aware", "inverse-variance", "median", "trimmed-mean", "sporadic", "spoqfl"}
    assert set(AGGREGATORS) == set(AGGREGATION_METHODS)  # the spec's vocabulary, declared once
    assert make_aggregator("trimmed-mean", trim_fraction=0.25) == TrimmedMean(0.25)
    assert make_aggregator("sporadic", threshold=0.2, mode="scale") == Sporadic(0.2, "scale")
    assert isinstance(make_aggregator("noise-aware"), NoiseAwareESP)
    with pytest.raises(ConfigError, match="unknown aggregator 'krum'; choose one of fedavg, noise-aware"):
        make_aggregator("krum")
    with pytest.raises(ConfigError, match="'median' has no option trim_fraction; its options are: none"):
        make_aggregator("median", trim_fraction=0.1)
    with pytest.raises(ConfigError, match="'sporadic' has no option mu; its options are: threshold, mode"):
        make_aggregator("sporadic", mu=0.1)
    with pytest.raises(ConfigError, match=r"trim_fraction=0.5: must be in \[0, 0.5\)"):
        make_aggregator("trimmed-mean", trim_fraction=0.5)
    with pytest.raises(ConfigError, match="mode='drop'"):
        Sporadic(0.3, mode="drop")


# --- properties ----------------------------------------------------------------------------------

ALL = [
    FedAvg(),
    NoiseAwareESP(),
    InverseVariance(),
    Median(),
    TrimmedMean(0.2),
    Sporadic(0.3, "skip"),
    Sporadic(0.3, "scale"),
    SpoQFL(1.0, 0.3),
    SpoQFL(3.0, 0.5),
]
WEIGHTED = [a for a in ALL if isinstance(a, WeightedAggregator)]
FLOATS = st.floats(-10, 10, allow_nan=False)


@st.composite
def rounds(draw, min_clients: int = 1, quiet: bool = False) -> tuple[list[ClientUpdate], np.ndarray]:
    """A round of updates with random metadata; ``quiet``: every client has samples, esp 1, no noise."""
    dim = draw(st.integers(1, 4))
    vector = st.lists(FLOATS, min_size=dim, max_size=dim).map(np.array)
    updates = [
        ClientUpdate(
            f"c{i}",
            draw(vector),
            draw(st.integers(1, 50) if quiet else st.integers(0, 50)),
            esp=1.0 if quiet else draw(st.floats(0, 1)),
            variance=draw(st.none() | st.floats(0.01, 100)),
            noise=None if quiet else draw(st.none() | st.floats(0, 1)),
        )
        for i in range(draw(st.integers(min_clients, 6)))
    ]
    return updates, draw(vector)


def _close(a: np.ndarray, b: np.ndarray, aggregator: Aggregator) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=repr(aggregator))


@given(data=rounds())
def test_weights_nonnegative_and_sum_to_one_or_zero(data):
    updates, _ = data
    for aggregator in WEIGHTED:
        w = aggregator.weights(updates)
        assert w.shape == (len(updates),) and (w >= 0).all(), aggregator
        assert np.isclose(w.sum(), 1.0) or (w == 0).all(), aggregator


@given(data=rounds(quiet=True))
def test_weights_sum_to_one_when_clients_count(data):
    for aggregator in WEIGHTED:
        assert np.isclose(aggregator.weights(data[0]).sum(), 1.0), aggregator


@given(data=rounds(), order=st.randoms(use_true_random=False))
def test_client_order_does_not_matter(data, order):
    updates, current = data
    shuffled = order.sample(updates, len(updates))
    for aggregator in ALL:
        _close(aggregator.aggregate(shuffled, current), aggregator.aggregate(updates, current), aggregator)


@given(data=rounds(quiet=True))
def test_identical_updates_aggregate_to_themselves(data):
    updates, current = data
    same = [ClientUpdate(u.client, updates[0].params, u.num_samples, u.esp, u.variance) for u in updates]
    for aggregator in ALL:
        _close(aggregator.aggregate(same, current), updates[0].params, aggregator)


@given(data=rounds(), extra=st.lists(FLOATS, min_size=4, max_size=4))
def test_client_with_zero_samples_has_no_effect(data, extra):
    updates, current = data
    idle = ClientUpdate("idle", np.array(extra[: len(current)]), 0)
    for aggregator in ALL:
        _close(aggregator.aggregate([*updates, idle], current), aggregator.aggregate(updates, current), aggregator)


@given(data=rounds())
def test_zero_weight_clients_can_be_dropped(data):
    """E.g. esp 0 under NoiseAwareESP, or a skipped client under Sporadic."""
    updates, current = data
    for aggregator in WEIGHTED:
        kept = [u for u, w in zip(updates, aggregator.weights(updates)) if w > 0]
        _close(aggregator.aggregate(kept, current), aggregator.aggregate(updates, current), aggregator)


@given(data=rounds())
def test_noise_aware_ignores_a_device_with_esp_zero(data):
    updates, current = data
    dead = ClientUpdate("dead", current + 5.0, 40, esp=0.0)
    aggregator = NoiseAwareESP()
    _close(aggregator.aggregate([dead, *updates], current), aggregator.aggregate(updates, current), aggregator)


def test_sporadic_defaults_are_the_specs():
    """One default for the sporadic rule, whether built from a spec or from Python."""
    spec = AggregationSpec(method="sporadic")
    assert Sporadic() == Sporadic(spec.threshold, spec.mode) == from_spec(spec)
    spec = AggregationSpec(method="spoqfl", gamma=1.5, skip_below=0.1)
    assert from_spec(spec) == SpoQFL(1.5, 0.1) and SpoQFL() == from_spec(AggregationSpec(method="spoqfl"))
