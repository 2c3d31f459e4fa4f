"""`qflhw estimate` against prices computed by hand, and `qflhw run` refusing to overspend.

Nothing here may connect anywhere: real-device connectors are replaced by functions that fail
the test, and sockets are blocked.
"""

from __future__ import annotations

import json
import socket
import tomllib
from decimal import Decimal

import numpy as np
import pytest

from qflhw._util import stable_seed
from qflhw.calibration import snapshot as cal_mod
from qflhw.cli import main
from qflhw.config.profiles import load_profile, profile_dir
from qflhw.config.spec import parse_spec
from qflhw.execution.budget import job_cost
from qflhw.federation.estimate import batch_sizes, estimate_spec, selected_rounds

SPEC = """
name = "priced"
seed = 5
rounds = 3

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

[budget]
max_usd = {max_usd}

[[clients]]
name = "q"
device = "iqm_garnet"

[[clients]]
name = "i"
device = "ibm_torino"

[[clients]]
name = "f"
device = "fake_fez"
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No sockets, and no real device may be built (estimating must not connect)."""

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("tried to connect to a real device or the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("qflhw.devices.ibm.connect", refuse)
    monkeypatch.setattr("qflhw.devices.braket.connect", refuse)


def _spec(max_usd: float = 1000.0):
    return parse_spec(tomllib.loads(SPEC.format(max_usd=max_usd)))


def _ibm_seconds_by_hand(spec) -> float:
    """The torino circuit's duration: calibrated durations of every gate of the transpiled circuit."""
    from qflhw.circuits.ansatz import build
    from qflhw.circuits.transpile import transpile_for

    cal = cal_mod.load("ibm_torino/latest")
    seed = stable_seed(spec.seed, "i", "device")
    tc = transpile_for(build("hardware-efficient", 2, 1).circuit, cal, seed=seed)
    dur = {(g.gate, g.qubits): g.duration for g in cal.gates}
    return sum(dur.get((ci.operation.name, tuple(tc.isa.find_bit(q).index for q in ci.qubits)), 0.0) for ci in tc.isa.data)


def test_estimate_matches_hand_computed_prices():
    spec = _spec()
    est = estimate_spec(spec)
    by = {c.client: c for c in est.clients}
    # 6 training rows, batches of 4 -> steps of 4 and 2 points; hardware-efficient on 2 qubits has
    # 4 weights, each with a 2-term shift rule: 1 + 2 x 4 = 9 circuits per point, one Z basis.
    assert batch_sizes(6, 4) == [4, 2]
    circuits = [4 * 9, 2 * 9]
    q = by["q"]
    assert (q.steps_per_round, q.rounds, q.per_round.tasks, q.per_round.shots) == (2, 3, 2, 540)
    braket_round = Decimal("0.30") * 2 + Decimal("0.00145") * 540  # $1.383
    assert q.per_round.usd == braket_round and q.total.usd == 3 * braket_round
    # IBM: USD 1.60 per QPU second; each job 2 s + shots x (circuit duration + 250 us)
    d = _ibm_seconds_by_hand(spec)
    ibm_round = sum(Decimal("1.60") * Decimal(str(round(2.0 + n * 10 * (d + 250e-6), 6))) for n in circuits)
    i = by["i"]
    assert i.per_round.tasks == 2 and i.per_round.shots == 540
    assert abs(i.per_round.usd - ibm_round) <= Decimal("0.000002")
    assert by["f"].per_round.usd == 0 and by["f"].per_round.shots == 540
    assert est.total.usd == q.total.usd + i.total.usd
    assert est.total.tasks == 3 * 6 and not est.over_budget


def test_braket_program_sets_hold_at_most_max_circuits():
    prof = load_profile("iqm_garnet")  # 100 executables per program set
    cost = job_cost(prof, 250, 10)
    assert cost.tasks == 3 and cost.usd == Decimal("0.90") + Decimal("0.00145") * 2500


def test_client_sampling_matches_the_federation():
    """selected_rounds mirrors Federation.select (checked on fake devices, which are free to build)."""
    from qflhw.federation.loop import Federation

    raw = tomllib.loads(SPEC.format(max_usd=0).split("[[clients]]")[0])
    raw.update(rounds=5, client_fraction=0.5)
    raw["clients"] = [{"name": f"c{k}", "device": "fake_iqm_garnet"} for k in range(4)]
    spec = parse_spec(raw)
    fed = Federation(spec, "unused-run-dir", progress=False)
    expected = [0] * 4
    for r in range(spec.rounds):
        for c in fed.select(r):
            expected[[x.name for x in fed.clients].index(c.name)] += 1
    assert selected_rounds(spec) == expected and sum(expected) == 5 * 2


def test_cli_estimate_json(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(max_usd=1.0))
    assert main(["estimate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["over_budget"] is True and Decimal(out["total"]["usd"]) > 1
    assert [c["client"] for c in out["clients"]] == ["q", "i", "f"]


def test_run_refused_over_budget_writes_nothing(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(max_usd=1.0))
    out = tmp_path / "run"
    cal_before = sorted(p.name for p in cal_mod.calibration_root().rglob("*.json"))
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exceeds budget.max_usd" in err[0] and "qflhw estimate" in err[0]
    assert not out.exists()
    assert sorted(p.name for p in cal_mod.calibration_root().rglob("*.json")) == cal_before


def test_cheap_enough_run_passes_the_check():
    from qflhw.federation.runs import refuse_over_budget

    refuse_over_budget(_spec(max_usd=1000.0))  # no exception; the connectors were never called
    est = estimate_spec(_spec())
    assert np.isclose(float(est.total.usd), float(sum(c.total.usd for c in est.clients)))


def test_runtime_zne_multiplies_the_shots_billed(tmp_path):
    """A profile asking Runtime for ZNE (level 2, noise factors 1, 3, 5) runs every circuit 3 times,
    twirled (100 shots run as 2 randomizations x 64), plus one TREX calibration item (2 x 64)."""
    from qflhw.errors import ConfigError

    path = tmp_path / "ibm_torino_zne.toml"
    path.write_text((profile_dir() / "ibm_torino.toml").read_text() + "\n[runtime]\nresilience_level = 2\n")
    prof = load_profile(path)
    plain = job_cost(load_profile("ibm_torino"), 10, 100, 1e-6)
    zne = job_cost(prof, 10, 100, 1e-6)
    executed = 10 * 128 * 3 + 128  # by hand from Runtime's documented twirling rule (see test_budget for the SDK's count)
    assert (plain.shots, zne.shots) == (1000, executed)
    assert zne.usd == (Decimal("1.60") * Decimal(str(round(2.0 + executed * (1e-6 + 250e-6), 6)))).quantize(Decimal("0.000001"))
    bad = tmp_path / "garnet_runtime.toml"
    bad.write_text((profile_dir() / "iqm_garnet.toml").read_text() + "\n[runtime]\nresilience_level = 1\n")
    with pytest.raises(ConfigError, match="IBM devices only"):
        load_profile(bad)


def test_expected_wall_time_from_the_profiles_queue_figures():
    """Per job: the dated queue wait, then the run (IBM: the cost model's QPU seconds; Braket:
    seconds per task and per shot); a client's jobs in turn, clients in parallel, rounds in turn."""
    est = estimate_spec(_spec())
    by = {c.client: c for c in est.clients}
    garnet, torino = load_profile("iqm_garnet").queue, load_profile("ibm_torino").queue
    assert garnet is not None and torino is not None and garnet.read is not None
    q = by["q"]  # 2 tasks per round, 540 shots
    q_round = 2 * garnet.wait_s + 2 * garnet.seconds_per_task + 540 * garnet.seconds_per_shot
    assert q.wall_per_round_s == pytest.approx(q_round)
    i = by["i"]
    assert i.wall_per_round_s == pytest.approx(2 * torino.wait_s + i.per_round.seconds)
    assert by["f"].wall_per_round_s == 0.0  # a fake twin has no queue
    assert est.wall_seconds == pytest.approx(3 * max(q_round, i.wall_per_round_s))
    assert est.to_dict()["wall_seconds"] == round(est.wall_seconds, 1)
