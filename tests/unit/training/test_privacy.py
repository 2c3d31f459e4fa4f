"""Differential privacy of client updates: the accountant against published values, clipping,
the shot-noise credit against a fake twin's own estimates, and the depolarizing bound."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qflhw.config.spec import PrivacySpec, parse_spec
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.factory import make_device
from qflhw.errors import ConfigError
from qflhw.execution.budget import Ledger
from qflhw.execution.evaluator import direct_runner
from qflhw.training.privacy import (
    GaussianRelease,
    MeasuredRelease,
    PrivacyPlan,
    clip,
    depolarizing_round_epsilon,
    depolarizing_strength,
    gaussian_epsilon,
    gaussian_noise_multiplier,
    make_plan,
)
from tests.helpers import TINY_SPEC


# ------------------------------------------------------------------------------ the accountant
def test_accountant_matches_tensorflow_privacy_reference_value():
    """TensorFlow Privacy's own reference for its current RDP accountant (dp_accounting, the same
    RDP-to-DP conversion as Opacus): tensorflow/privacy, tensorflow_privacy/privacy/analysis/
    compute_dp_sgd_privacy_test.py, case 'Test0': n=60000, batch 150, noise multiplier 1.3,
    15 epochs (6000 steps at q = 150/60000), delta 1e-5 -> epsilon 0.7242234026109595."""
    eps = gaussian_epsilon(1.3, 150 / 60000, 15 * 60000 // 150, 1e-5)
    assert eps == pytest.approx(0.7242234026109595, rel=0.01)


@pytest.mark.parametrize(
    ("sigma", "q", "steps", "published"),
    [
        # Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, arXiv:1607.00133, sec. 3.1:
        # "if q = 0.01, sigma = 4, delta = 1e-5, and T = 10000, then we have epsilon ~ 1.26 using the moments accountant"
        (4.0, 0.01, 10000, 1.26),
        # tensorflow/privacy tutorials/README.md, "Select Parameters" table and the CLI example: noise multiplier
        # 1.1, batch 256 of N = 60000, 60 epochs (60000 // 256 = 234 steps each), delta 1e-5 -> epsilon 3.01
        (1.1, 256 / 60000, 60 * 234, 3.01),
        (1.3, 256 / 60000, 15 * 234, 1.19),  # same table, row 2
        (0.7, 256 / 60000, 45 * 234, 7.10),  # same table, row 4
    ],
)
def test_published_moments_accountant_values_and_the_tighter_conversion(sigma, q, steps, published):
    """These papers converted RDP with eps = min_a RDP(a) + log(1/delta)/(a-1) (Mironov 2017, Prop. 3)
    over TF-Privacy's 2018 orders; Opacus's RDP with that conversion gives the published value to 1%,
    and the accountant qflhw uses (the tighter conversion of Balle et al. 2020) never gives more."""
    from opacus.accountants.analysis.rdp import compute_rdp

    orders = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))
    rdp = compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    classic = min(r + math.log(1 / 1e-5) / (a - 1) for r, a in zip(rdp, orders))
    assert classic == pytest.approx(published, rel=0.01)
    assert gaussian_epsilon(sigma, q, steps, 1e-5) <= classic


def test_noise_multiplier_meets_epsilon_and_no_less_noise_does():
    z = gaussian_noise_multiplier(3.0, 1e-5, 1.0, 50)
    assert gaussian_epsilon(z, 1.0, 50, 1e-5) <= 3.0
    assert gaussian_epsilon(z * 0.97, 1.0, 50, 1e-5) > 3.0
    # one release of the Gaussian mechanism with sigma = 1 (no sampling): epsilon 4.73 at delta 1e-5
    assert gaussian_epsilon(1.0, 1.0, 1, 1e-5) == pytest.approx(4.7285, rel=1e-3)


# ------------------------------------------------------------------------------ clipping
@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)),
    st.floats(1e-3, 1e3),
)
def test_clipping_bounds_every_updates_norm(update, clip_norm):
    out = clip(update, clip_norm)
    norm = float(np.linalg.norm(update))
    assert np.linalg.norm(out) <= clip_norm * (1 + 1e-12)
    if norm <= clip_norm:
        np.testing.assert_array_equal(out, update)  # short updates pass unchanged
    else:
        np.testing.assert_allclose(out * norm / clip_norm, update, rtol=1e-9, atol=1e-9)  # same direction


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, 13, elements=st.floats(-50, 50, allow_nan=False)), st.integers(0, 10))
def test_a_released_update_is_the_clipped_one_plus_seeded_noise(update, round_):
    plan = PrivacyPlan(client="a", mechanism="gaussian", epsilon=5, delta=1e-5, clip_norm=0.5, participations=3,
                       dimension=13, headroom=2.0, gaussian_allowed=True, noise_multiplier=0.8)
    rel = GaussianRelease(plan, seed=4)
    out = rel.release(update, round_)
    noise = out.update - clip(update, 0.5)
    np.testing.assert_allclose(noise, rel.release(np.zeros(13), round_).update, rtol=0, atol=1e-12)  # data-independent noise
    assert out.gaussian_std == pytest.approx(0.8 * 2 * 0.5)


# ------------------------------------------------------------------------------ quantum noise
def _measured(device: str, mechanism: str = "shot-noise", shots: int = 20, p: float = 0.0, z: float = 0.5) -> MeasuredRelease:
    plan = PrivacyPlan(client="a", mechanism=mechanism, epsilon=10, delta=1e-5, clip_norm=1.0, participations=1,
                       dimension=4, headroom=2.0, gaussian_allowed=True, noise_multiplier=z, shots=shots, depolarizing=p)
    return MeasuredRelease(plan, make_device(device, seed=1), client="a", run_id="t", ledger=Ledger(), runner=direct_runner, seed=1)


@pytest.mark.parametrize("device", ["fake_torino", "fake_iqm_garnet"])
def test_shot_noise_credit_is_a_floor_of_the_twins_own_estimates(device):
    """At the most extreme encodings (u = +C and -C, <Z> = +-1/headroom) the variance of 4000 of the
    twin's 20-shot estimates is what binomial shot noise predicts from the twin's exact value, and
    the credited variance is below it but within 15%."""
    rel, shots, n = _measured(device), 20, 4000
    credited = (1 - rel.m_max**2) / shots  # in read-out units; rel.credited_variance scales it to the update's
    assert rel.credited_variance(shots) == pytest.approx(credited * rel.scale**2)
    se = math.sqrt(2 / (n - 1))  # relative standard error of a sample variance
    for sign in (1, -1):
        theta = np.full((n, 1), math.acos(sign / 2))
        item = BatchItem(rel.transpiled, (rel.theta,), theta, (rel.observable,))
        estimates = rel.device.run(Batch((item,)), shots).items[0].values[:, 0]
        exact = rel.device.run(Batch((BatchItem(rel.transpiled, (rel.theta,), theta[:1], (rel.observable,)),)), None).items[0].values[0, 0]
        empirical = float(np.var(estimates, ddof=1))
        assert exact == pytest.approx(rel.gain * sign / 2 + rel.offset, abs=3e-3)  # the readout model unbiasing uses
        assert abs(exact) <= rel.m_max
        assert empirical == pytest.approx((1 - exact**2) / shots, rel=4 * se)
        assert credited * (1 - 4 * se) <= empirical <= credited * 1.15


def test_measured_release_is_unbiased_on_the_twin():
    rel = _measured("fake_torino", shots=4000, z=1e-3)  # shot noise alone covers this tiny noise multiplier
    assert rel.gaussian_std == 0
    u = np.array([0.6, -0.5, 0.1, 0.0])  # norm 0.787 < C = 1
    out = rel.release(u, 0)
    np.testing.assert_allclose(out.update, u, atol=5 * rel.quantum_std + 0.02)  # 0.02: gate error the unbiasing ignores
    dep = _measured("fake_torino", mechanism="depolarizing", shots=4000, p=0.3)
    np.testing.assert_allclose(dep.release(u, 0).update, u, atol=0.12)  # 1/(1-p) more noise, same mean


def test_depolarizing_bound_holds_for_the_exact_outcome_distributions():
    """Brute force: for random neighbouring clipped updates, the largest log-ratio of the exact
    one-shot outcome probabilities after the depolarizing channel, summed over coordinates, never
    exceeds the epsilon the plan charges per shot."""
    rng = np.random.default_rng(0)
    p, d, kappa, c = 0.4, 6, 2.0, 1.0
    bound = depolarizing_round_epsilon(p, 1, d, kappa)

    def prob0(u):  # RY(theta)|0> with cos(theta) = u / (kappa C), then D_p, then Z
        theta = np.arccos(u / (kappa * c))
        return (1 - p) * np.cos(theta / 2) ** 2 + p / 2

    worst = 0.0
    for _ in range(3000):
        a, b = (clip(rng.normal(size=d) * rng.uniform(0.1, 3), c) for _ in range(2))
        pa, pb = prob0(a), prob0(b)
        worst = max(worst, float(np.sum(np.maximum(np.abs(np.log(pa / pb)), np.abs(np.log((1 - pa) / (1 - pb)))))))
    assert 0 < worst <= bound
    assert depolarizing_strength(bound, 1, d, kappa) == pytest.approx(p)


# ------------------------------------------------------------------------------ plans and refusals
def test_depolarizing_shots_are_one_at_a_tight_budget_and_many_at_a_loose_one():
    tight = make_plan(PrivacySpec(epsilon=2.0, mechanism="depolarizing"), client="a", participations=4, dimension=26)
    loose = make_plan(PrivacySpec(epsilon=1e4, mechanism="depolarizing"), client="a", participations=4, dimension=26)
    assert tight is not None and loose is not None
    assert tight.shots == 1 and loose.shots is not None and loose.shots > 100
    for plan in (tight, loose):  # whatever the shots, the plan spends exactly its budget
        assert plan.epsilon_after(4) == pytest.approx(plan.epsilon, rel=1e-9)

    def var(s):  # the estimate's variance, up to a constant
        return 1 / (s * (1 - depolarizing_strength(1e4 / 4, s, 26, 2.0)) ** 2)

    assert var(loose.shots) <= min(var(1), var(loose.shots // 2), var(loose.shots * 2))
    huge = make_plan(PrivacySpec(epsilon=1e5, mechanism="depolarizing", shots=1), client="a", participations=4, dimension=26)
    assert huge is not None and 0 < huge.depolarizing < 1e-100 and huge.epsilon_after(4) <= 1e5  # no overflow


def test_plans_refuse_an_epsilon_the_stated_settings_cannot_meet():
    with pytest.raises(ConfigError, match=r"noise_multiplier = 0.5 over 4 rounds gives epsilon .* raise it to >= "):
        make_plan(PrivacySpec(epsilon=2.0, noise_multiplier=0.5), client="a", participations=4, dimension=10)
    # d = 10, headroom 2: eta = 1/sqrt(10 * 3) = 0.1826; epsilon 2 over 4 rounds = 0.5 a round;
    # 2 (1-p)/p * eta = expm1(0.5 / 10) = 0.05127 -> p = 1 / (1 + 0.05127 / 0.3651) = 0.8769
    with pytest.raises(ConfigError, match=r"privacy.depolarizing = 0.1 .* raise it to >= 0.876"):
        make_plan(PrivacySpec(epsilon=2.0, mechanism="depolarizing", depolarizing=0.1, shots=1), client="a", participations=4,
                  dimension=10)
    plan = make_plan(PrivacySpec(epsilon=2.0, noise_multiplier=30.0), client="a", participations=4, dimension=10)
    assert plan is not None and plan.epsilon_after(4) <= 2.0
    assert make_plan(PrivacySpec(), client="a", participations=4, dimension=10) is None


def test_shot_noise_without_gaussian_refuses_when_shots_cannot_reach_the_noise(tmp_path):
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(TINY_SPEC)
    raw["privacy"] = {"epsilon": 1.0, "mechanism": "shot-noise", "gaussian": False}
    with pytest.raises(ConfigError, match=r"client a: the shot noise of 1 shot\(s\) .* privacy.gaussian = false"):
        Federation(parse_spec(raw), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_refuses_to_start_when_epsilon_cannot_be_met(tmp_path, capsys):
    from qflhw.cli import main

    spec = tmp_path / "dp.toml"
    spec.write_text(TINY_SPEC + "\n[privacy]\nepsilon = 0.5\nnoise_multiplier = 1.0\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "privacy.noise_multiplier = 1.0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_epsilon_per_round_and_in_total_reach_metrics_and_summary(tmp_path):
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(TINY_SPEC)  # 2 rounds, both clients every round
    raw["privacy"] = {"epsilon": 8.0, "clip_norm": 0.5}
    fed = Federation(parse_spec(raw), tmp_path / "run", progress=False)
    summary = fed.run()
    plan = fed.assembly.privacy["a"]
    assert plan is not None
    z = plan.noise_multiplier
    rows = [r for r in fed.rows if r["client"] == "a"]
    assert [r["dp_epsilon"] for r in rows] == pytest.approx([gaussian_epsilon(z, 1.0, k, 1e-5) for k in (1, 2)])
    assert rows[1]["dp_epsilon"] <= 8.0 and rows[0]["dp_epsilon_round"] == pytest.approx(rows[0]["dp_epsilon"])
    assert rows[0]["dp_gaussian_std"] == pytest.approx(z * 2 * 0.5)
    priv = summary["privacy"]
    assert priv["clients"]["a"]["epsilon_spent"] == pytest.approx(rows[1]["dp_epsilon"])
    assert priv["epsilon_per_round"]["b"] == pytest.approx(rows[0]["dp_epsilon_round"])
    assert priv["clients"]["a"]["guarantee"] == "proven"
    head = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "dp_epsilon" in head and "dp_epsilon_round" in head
