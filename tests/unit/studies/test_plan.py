"""`qflhw plan`: one cost model with `qflhw estimate` and the ledger, never over budget, a spread
that holds for fresh seeds, and the Pareto front and choice computed by hand.

Twin accuracies are never asserted as numbers (they change with the twins); only relations are.
"""

from __future__ import annotations

import json
import socket
import tomllib
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import t as student_t

import qflhw.execution.evaluator as evaluator_mod
import qflhw.federation.estimate as estimate_mod
from qflhw.cli import main
from qflhw.config.profiles import load_profile
from qflhw.config.spec import PlanSpec, load_plan_spec, parse_plan, parse_spec
from qflhw.errors import ConfigError
from qflhw.execution.budget import Cost, job_cost
from qflhw.federation.estimate import estimate_spec
from qflhw.federation.loop import Federation
from qflhw.studies import plan as plan_mod
from qflhw.studies.plan import (
    Candidate,
    Setting,
    choose,
    device_options,
    make_plan,
    pareto_front,
    plan_spec,
    prediction_interval,
    price_all,
    rehearse,
    resolve_device,
)

LIVE = """
name = "priced-plan"
seed = 4
rounds = 1

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 6

[model]
qubits = 2
layers = 1
ansatz = "hardware-efficient"

[training]
batch_size = 4
shots = 10

[[clients]]
name = "q"
device = "iqm_garnet"

[[clients]]
name = "i"
device = "ibm_kingston"

[plan]
gradients = ["parameter-shift"]
shots = [10]
adaptive_shots = [false]
batch_sizes = [4]
local_epochs = [1]
client_fractions = [1.0]
max_rounds = 1
mitigation = ["none"]
"""

TWINS = """
name = "twin-plan"
seed = 7
rounds = 2

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 16

[model]
qubits = 2
layers = 1

[training]
batch_size = 8
learning_rate = 0.1

[[clients]]
name = "torino"
device = "fake_torino"

[[clients]]
name = "garnet"
device = "fake_iqm_garnet"

[plan]
gradients = ["spsa"]
shots = [10, 100]
batch_sizes = [8, 16]
local_epochs = [1]
client_fractions = [1.0]
max_rounds = 3
mitigation = ["none"]
finalists = 1
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Planning never connects: sockets and the real-device connectors fail the test."""

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("tried to connect to a real device or the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("qflhw.devices.ibm.connect", refuse)
    monkeypatch.setattr("qflhw.devices.braket.connect", refuse)


def _load(text: str, tmp_path, name: str = "spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_plan_spec(path)


def test_plan_estimate_and_ledger_share_one_cost_model(tmp_path):
    """The plan's price of its chosen spec, `qflhw estimate` of that spec, and the ledger of the
    same spec run on the devices' emulations are equal, and equal to job_cost by hand."""
    assert evaluator_mod.job_cost is job_cost  # the evaluator (hence estimate and plan) prices with budget.job_cost
    assert plan_mod.step_costs is estimate_mod.step_costs
    spec, plan = _load(LIVE, tmp_path)
    cands, _ = price_all(spec, plan, Decimal(1000))
    assert len(cands) == 1
    c = cands[0]
    live = plan_spec(spec, c.setting, c.rounds, device_options(spec, plan), budget=Decimal(1000))
    est = estimate_spec(live)
    assert est.total == c.cost  # usd, jobs, shots and QPU seconds
    # Garnet by hand: rows 6 in batches of 4 -> 4 and 2 points x 9 circuits x 10 shots, one task each
    q = next(x for x in est.clients if x.client == "q")
    assert q.per_round.usd == Decimal("0.30") * 2 + Decimal("0.00145") * (6 * 9 * 10)
    # the ledger: the same spec on the emulated profiles (same prices and snapshots), really run
    raw = live.model_dump(mode="json")
    for cl in raw["clients"]:
        cl["device"] += "_emulated"
    fed = Federation(parse_spec(raw), tmp_path / "run", progress=False)
    summary = fed.run()
    assert fed.ledger.spent.usd == c.cost.usd == est.total.usd
    assert fed.ledger.spent.shots == c.cost.shots and fed.ledger.spent.tasks == c.cost.tasks
    # `qflhw report` shows the estimate against the provider-reported cost (Braket's emulator reports usage)
    assert main(["report", str(tmp_path / "run")]) == 0
    assert summary["clients"]["q"]["actual_cost_usd"] == pytest.approx(float(q.total.usd))


_PAID = ["iqm_garnet", "ibm_kingston", "ionq_forte-1", "rigetti_cepheus-1-108q", "ibm_fez", "iqm_emerald"]


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    devices=st.lists(st.sampled_from(_PAID), min_size=1, max_size=3),
    rows=st.integers(2, 12),
    gradient=st.sampled_from(["spsa", "parameter-shift"]),
    shots=st.lists(st.integers(1, 2000), min_size=1, max_size=3),
    batches=st.lists(st.integers(1, 12), min_size=1, max_size=2),
    fractions=st.lists(st.sampled_from([1.0, 0.5, 0.34]), min_size=1, max_size=2),
    budget=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(3000), places=2),
)
def test_no_plan_within_budget_costs_more_than_the_budget(devices, rows, gradient, shots, batches, fractions, budget):
    """Price only (no rehearsal): every plan marked within budget is priced at most the budget, and
    `qflhw estimate` of the priciest one written as a spec agrees with the plan's price."""
    raw = tomllib.loads(LIVE.split("[[clients]]")[0])
    raw["data"]["max_train_per_client"] = rows
    raw["clients"] = [{"name": f"c{k}", "device": d} for k, d in enumerate(devices)]
    spec = parse_spec(raw)
    plan = PlanSpec(gradients=[gradient], shots=shots, adaptive_shots=[False], batch_sizes=batches, local_epochs=[1],
                    client_fractions=fractions, max_rounds=3, mitigation=["none"])
    cands, _ = price_all(spec, plan, budget)
    within = [c for c in cands if c.within(budget)]
    assert all(c.usd <= budget and c.calibrated_usd <= budget for c in within)
    assert all(c.usd > budget for c in cands if not c.within(budget))
    if within:
        top = max(within, key=lambda c: c.usd)
        est = estimate_spec(plan_spec(spec, top.setting, top.rounds, device_options(spec, plan), budget=budget))
        assert est.total.usd == top.usd and not est.over_budget
    # whatever accuracies the rehearsals give, the plan chosen is within budget
    rng = np.random.default_rng(len(cands))
    for c in cands:
        c.accuracies = list(rng.uniform(0.4, 1.0, 3))
    best, _, _ = choose(pareto_front(cands), budget, None)
    assert best is None or best.within(budget)


def _cand(usd: str, accs: list[float]) -> Candidate:
    s = Setting("spsa", 10, False, 8, 1, 1.0, (0,), ("none",))
    return Candidate(s, 1, Cost(usd=Decimal(usd)), Decimal(usd), 0.0, accs, 100)


def test_pareto_front_and_choice_by_hand():
    a, b, c, d = _cand("5", [0.6]), _cand("8", [0.55]), _cand("10", [0.9]), _cand("20", [0.95])
    front = pareto_front([d, b, c, a])
    assert front == [a, c, d]  # b costs more than a and is less accurate
    assert choose(front, Decimal(12), None) == (c, True, None)  # most accurate within $12
    assert choose(front, Decimal(30), 0.85) == (c, True, None)  # cheapest reaching 0.85
    best, reached, closest = choose(front, Decimal(9), 0.85)
    assert best is a and not reached and closest is a  # the target is out of reach: the closest is shown
    assert choose(front, Decimal(1), None)[0] is None


def test_prediction_interval_by_hand():
    accs = [0.80, 0.86, 0.83]
    mean, s = 0.83, float(np.std(accs, ddof=1))
    half = student_t.ppf(0.975, 2) * s * np.sqrt(1 / 3 + 1 / 3)
    assert prediction_interval(accs, 10_000) == pytest.approx((mean - half, mean + half))
    # three equal accuracies still get the binomial spread of a 72-row test set (Laplace p = 73/74)
    lo, hi = prediction_interval([1.0, 1.0, 1.0], 72)
    p = 73 / 74
    assert lo == pytest.approx(1 - student_t.ppf(0.975, 2) * np.sqrt(p * (1 - p) / 72) * np.sqrt(2 / 3)) and hi == 1.0


def test_devices_resolve_to_live_profiles_and_twins():
    torino = resolve_device("fake_torino")
    assert (torino.live.name, torino.twin) == ("ibm_kingston", "fake_torino") and "retired" in torino.note
    garnet = resolve_device("iqm_garnet")
    assert (garnet.live.name, garnet.twin, garnet.note) == ("iqm_garnet", "fake_iqm_garnet", "")
    emu = resolve_device("ibm_kingston_emulated")
    assert emu.live.emulate and emu.twin == "fake_kingston"
    assert resolve_device("fake_ionq_forte-1").live == load_profile("ionq_forte-1")


def test_plan_table_errors_name_the_field(tmp_path):
    spec, _ = _load(LIVE, tmp_path)
    with pytest.raises(ConfigError, match=r"plan\.devices names client 'nobody'"):
        parse_plan({"devices": {"nobody": ["iqm_garnet"]}}, spec, "s.toml")
    with pytest.raises(ConfigError, match=r"field plan\.shots"):
        parse_plan({"shots": [0]}, spec, "s.toml")
    with pytest.raises(ConfigError, match=r"field plan\.colour"):
        parse_plan({"colour": 1}, spec, "s.toml")
    assert main(["plan", str(tmp_path / "spec.toml"), "--budget-usd", "-1"]) == 2


def test_a_rehearsal_is_the_run_itself():
    """The plan's in-process rehearsal gives the accuracies `qflhw run` gives for the same twin spec."""
    spec = parse_spec(tomllib.loads(TWINS))
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"gradient": "spsa", "shots": 50})})
    got = rehearse(spec.model_dump(mode="json"), stop_at=2.0)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        summary = Federation(spec, Path(d) / "run", progress=False).run()
    assert got["accuracy"] == summary["accuracy_per_round"] and got["n_test"] > 0


def test_plan_spread_holds_for_three_fresh_seeds(tmp_path, capsys):
    """`qflhw plan` within $25 on two twins: the chosen plan is within budget, its spec prices the
    same, and three fresh seeds of its twin rehearsal average inside the spread it printed."""
    spec_path = tmp_path / "twins.toml"
    spec_path.write_text(TWINS)
    out = tmp_path / "plan.toml"
    code = main(["plan", str(spec_path), "--budget-usd", "25", "--json", "--out", str(out), "--cache", str(tmp_path / "c")])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["best"] is not None
    best = res["best"]
    assert Decimal(best["usd"]) <= 25 and all(Decimal(c["usd"]) <= 25 for c in res["front"])
    assert estimate_spec(load_plan_spec(out)[0]).total.usd == Decimal(best["usd"])
    lo, hi = best["spread"]
    twins = parse_spec(tomllib.loads((tmp_path / "plan-twins.toml").read_text()))
    fresh = []
    for seed in (9001, 9002, 9003):
        assert seed not in res["rehearsal_seeds"]
        s = twins.model_copy(update={"seed": seed})
        fresh.append(Federation(s, tmp_path / f"fresh{seed}", progress=False).run()["final_test_accuracy"])
    assert lo <= float(np.mean(fresh)) <= hi
    # planning again is served from the cache
    again = make_plan(*load_plan_spec(spec_path), 25, workers=1, cache=tmp_path / "c")
    assert again.rehearsals == 0 and again.cache_hits > 0 and again.best is not None
    assert again.best.mean == pytest.approx(best["accuracy_mean"], abs=1e-4)


def test_an_unreachable_target_is_said_and_the_closest_shown(tmp_path):
    from qflhw.federation.bill import ModelCalibration
    from qflhw.studies.plan import PlanResult, format_plan

    spec, plan = _load(LIVE, tmp_path)
    a, c = _cand("5", [0.6, 0.62, 0.61]), _cand("50", [0.9, 0.91, 0.92])
    a.setting = c.setting = Setting("spsa", 10, False, 8, 1, 1.0, (0, 0), ("none", "none"))
    best, reached, closest = choose([a, c], Decimal(10), 0.85)
    res = PlanResult(spec, Decimal(10), 0.85, device_options(spec, plan), [a, c], best, reached, closest, 2, 1, 0, 0, 0.0,
                     Decimal(5), ModelCalibration())
    text = format_plan(res)
    assert "no plan within $10 is predicted to reach accuracy 0.85" in text and "closest (*) reaches 0.610" in text
    assert "reaching it would take $50.00" in text and "(over budget)" in text
    assert main(["plan", str(tmp_path / "spec.toml"), "--budget-usd", "0.01", "--no-cache", "--workers", "1"]) == 1
