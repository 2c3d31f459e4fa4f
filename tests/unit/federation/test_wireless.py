"""The wireless uplink model: Shannon rates by hand, channel statistics from their formulas, and
power control that never lowers the sum rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qflhw.config.spec import SchedulingSpec
from qflhw.federation import wireless
from qflhw.federation.wireless import Uplink

B = 180e3
NOISE = 1e-20 * B  # -170 dBm/Hz over one sub-channel


def _link(gains) -> Uplink:
    return Uplink(np.asarray(gains, dtype=float), B, NOISE, 1e-3, 0.2512)


def test_two_device_sum_rate_by_hand():
    g = [[1e-10, 2e-10], [3e-10, 5e-11]]  # device n on sub-channel k
    p = np.array([0.1, 0.2])
    link = _link(g)
    # both on sub-channel 0: each is the other's interference
    r1 = B * math.log2(1 + 0.1 * 1e-10 / (0.2 * 3e-10 + NOISE))
    r2 = B * math.log2(1 + 0.2 * 3e-10 / (0.1 * 1e-10 + NOISE))
    np.testing.assert_allclose(wireless.rates(link, np.array([0, 0]), p), [r1, r2], rtol=1e-12)
    assert wireless.sum_rate(link, np.array([0, 0]), p) == pytest.approx(r1 + r2, rel=1e-12)
    # on different sub-channels: no interference, only noise
    r1 = B * math.log2(1 + 0.1 * 2e-10 / NOISE)
    r2 = B * math.log2(1 + 0.2 * 3e-10 / NOISE)
    assert wireless.sum_rate(link, np.array([1, 0]), p) == pytest.approx(r1 + r2, rel=1e-12)
    # a device that does not transmit has rate 0 and interferes with nobody
    np.testing.assert_allclose(wireless.rates(link, np.array([0, -1]), p), [B * math.log2(1 + 0.1 * 1e-10 / NOISE), 0.0])
    # upload time: bits / rate
    np.testing.assert_allclose(wireless.upload_seconds(np.array([2e6, 0.0]), 1_000_000), [0.5, np.inf])


def test_units_and_path_loss():
    assert float(wireless.dbm_to_w(24)) == pytest.approx(0.2511886, rel=1e-6)
    assert float(wireless.dbm_to_w(0)) == pytest.approx(1e-3)
    assert float(wireless.w_to_dbm(1.0)) == pytest.approx(30.0)
    spec = SchedulingSpec()
    assert float(wireless.path_loss_db(spec, np.array(1000.0))) == pytest.approx(128.1)
    assert float(wireless.path_loss_db(spec, np.array(100.0))) == pytest.approx(128.1 - 37.6)


def test_rician_power_has_unit_mean_and_the_rician_variance():
    # |h|^2 of Rician fading with K-factor K: mean 1, variance (1 + 2K) / (1 + K)^2
    rng = np.random.default_rng(0)
    for k in (0.0, 3.0, 10.0):
        x = wireless.rician_power(k, (200_000,), rng)
        assert x.mean() == pytest.approx(1.0, abs=0.01)
        assert x.var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, rel=0.03)


def test_uplink_is_seeded_distances_fixed_fading_per_round():
    spec = SchedulingSpec(subchannels=4)
    a, b = wireless.uplink(spec, 50, 7, 0), wireless.uplink(spec, 50, 7, 0)
    np.testing.assert_array_equal(a.gains, b.gains)
    d = wireless.distances(spec, 50, 7)
    assert d.min() >= 1.0 and d.max() <= 1800.0
    later = wireless.uplink(spec, 50, 7, 1)
    assert not np.array_equal(a.gains, later.gains)
    # the mean over sub-channels and rounds of gain / path gain is the fading's mean, 1
    ratios = np.concatenate([wireless.uplink(spec, 50, 7, r).gains / 10 ** (-wireless.path_loss_db(spec, d)[:, None] / 10)
                             for r in range(40)])
    assert ratios.mean() == pytest.approx(1.0, abs=0.05)
    assert a.noise_w == pytest.approx(10 ** ((-174 - 30) / 10) * 180e3)


def test_power_bcd_never_lowers_the_sum_rate_and_a_lone_device_goes_full_power():
    spec = SchedulingSpec(subchannels=3)
    link = wireless.uplink(spec, 12, 1, 0)
    rng = np.random.default_rng(3)
    for _ in range(5):
        assign = rng.integers(0, 3, size=12)
        p0 = wireless.dbm_to_w(rng.uniform(0, 24, size=12))
        p1 = wireless.power_bcd(link, assign, p0)
        assert wireless.sum_rate(link, assign, p1) >= wireless.sum_rate(link, assign, p0) * (1 - 1e-12)
        assert np.all(p1 >= link.p_min_w * (1 - 1e-9)) and np.all(p1 <= link.p_max_w * (1 + 1e-9))
    alone = wireless.power_bcd(link, np.array([0] + [1] * 11), np.full(12, link.p_min_w))
    assert alone[0] == pytest.approx(link.p_max_w)  # nobody to interfere with: its rate grows with power
