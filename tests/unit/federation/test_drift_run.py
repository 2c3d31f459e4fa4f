"""Drifting clients in a run: re-transpiled when the calibration changes, recorded per round, and
SpoQFL's per-round decisions follow a client's noise.

The expected layout and ESP of each round come from qiskit's own preset pass manager on the Target
of that round's snapshot (the circuit measured, as the layout is readout-aware) and from the raw
figures, scheduled by qiskit and with Aer's relaxation (``tests.helpers.esp_by_hand``; not from
qflhw's transpile helper);
SpoQFL's suppression is recomputed from its formula and the recorded ESP and variance.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib

import numpy as np
import pytest
from qiskit.transpiler.passes import RemoveFinalMeasurements
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.target import to_target
from qflhw.config.profiles import load_profile
from qflhw.config.spec import parse_spec
from qflhw.federation.assembly import device_seed
from qflhw.federation.loop import Federation
from tests.helpers import TINY_SPEC, esp_by_hand

REF = "ibm_fez/2025-02-26"
SPIKE = 20.0  # the what-if snapshot: every error x20, T1/T2 / 20


@pytest.fixture(scope="module")
def spiking_run(tmp_path_factory):
    """Client a steps through [fez, fez, fez x20, fez, fez x20]; b stays on kyiv. SpoQFL aggregates."""
    tmp = tmp_path_factory.mktemp("drift-run")
    spike = tmp / "fez-x20.json"
    spike.write_text(cal_mod.load(REF).scaled(SPIKE).to_json())
    raw = tomllib.loads(TINY_SPEC)
    raw["rounds"] = 5
    raw["data"]["max_train_per_client"] = 4
    raw["aggregation"] = {"method": "spoqfl", "gamma": 2.0, "skip_below": 0.6}
    raw["clients"][0]["calibration"] = [REF, REF, str(spike), REF, str(spike)]
    spec = parse_spec(raw)
    fed = Federation(spec, tmp / "run", progress=False)
    fed.run()
    with open(tmp / "run" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return spec, fed, rows, spike


def test_changed_calibration_is_retranspiled_and_recorded(spiking_run):
    spec, fed, rows, spike = spiking_run
    mine = {int(r["round"]): r for r in rows if r["client"] == "a"}
    raw_json = json.loads(cal_mod.resolve(REF).read_text())
    base, spiked = cal_mod.load(REF), cal_mod.Calibration.load(spike)
    prof = load_profile("fake_fez")
    circuit = fed.model_circuit.circuit
    for r, (cal, scale) in enumerate([(base, 1.0), (base, 1.0), (spiked, SPIKE), (base, 1.0), (spiked, SPIKE)]):
        assert mine[r]["calibration_id"] == cal.id
        pm = generate_preset_pass_manager(
            optimization_level=prof.optimization_level, target=to_target(cal), seed_transpiler=device_seed(spec, spec.clients[0])
        )
        measured = circuit.copy()
        measured.measure_all()  # the layout sees the readout errors of the qubits it measures on
        out = pm.run(measured)
        final = [0] * circuit.num_qubits
        for ci in out.data:
            if ci.operation.name == "measure":
                final[out.find_bit(ci.clbits[0]).index] = out.find_bit(ci.qubits[0]).index
        isa = RemoveFinalMeasurements()(out)
        assert mine[r]["layout"] == " ".join(map(str, final))
        assert float(mine[r]["esp"]) == pytest.approx(esp_by_hand(isa, final, raw_json, scale), rel=1e-9)
    esp = [float(mine[r]["esp"]) for r in range(5)]
    assert esp[2] < 0.8 * esp[0] and esp[4] == esp[2] and esp[3] == esp[0]
    # one compilation per distinct calibration: switching back to fez is a cache hit
    client = fed.clients[0]
    assert len(client.device._transpiled) == 2
    assert client.device.simulator.calibration.id == spiked.id  # the twin simulates the current noise
    # the static client never changes
    assert len({r["calibration_id"] for r in rows if r["client"] == "b"}) == 1


def test_spoqfl_contribution_drops_exactly_in_the_spike_rounds(spiking_run):
    spec, fed, rows, _ = spiking_run
    a = {int(r["round"]): r for r in rows if r["client"] == "a"}
    b = {int(r["round"]): r for r in rows if r["client"] == "b"}
    gamma, skip = spec.aggregation.gamma, spec.aggregation.skip_below
    for r in range(5):
        for row in (a[r], b[r]):
            esp, var = float(row["esp"]), float(row["variance"])
            xi = (1 - esp) + math.sqrt(var) / esp  # qflhw's noise estimate, by its formula
            assert float(row["noise_estimate"]) == pytest.approx(xi, rel=1e-12)
            assert float(row["suppression"]) == pytest.approx(math.exp(-gamma * xi), rel=1e-12)
            assert row["decision"] == ("skipped" if math.exp(-gamma * xi) < skip else "scaled")
    spikes, calm = {2, 4}, {0, 1, 3}
    weight = {r: float(a[r]["weight"]) for r in range(5)}
    assert max(weight[r] for r in spikes) < min(weight[r] for r in calm)
    assert {r for r in range(5) if a[r]["decision"] == "skipped"} == spikes
    assert all(weight[r] == 0 for r in spikes)
    assert all(b[r]["decision"] == "scaled" for r in range(5))
    # in a spike round the global model moved by b's suppressed update alone
    assert float(b[2]["weight"]) == pytest.approx(float(b[2]["suppression"]), rel=1e-12)


def test_drifting_client_records_esp_per_round_and_resumes_identically(tmp_path):
    raw = tomllib.loads(TINY_SPEC)
    raw["rounds"] = 3
    raw["data"]["max_train_per_client"] = 4
    raw["training"]["shots"] = 0
    raw["clients"][0]["drift"] = {"sigma": 0.8, "tau_rounds": 2.0, "seed": 3}
    spec = parse_spec(raw)
    whole = Federation(spec, tmp_path / "whole", progress=False)
    whole.run()
    ids = [r["calibration_id"] for r in whole.rows if r["client"] == "a"]
    assert len(set(ids)) == 3  # a new drifted snapshot each round
    from qflhw.federation.assembly import calibration_schedule

    sched = calibration_schedule(spec, spec.clients[0])
    assert sched is not None and ids == [sched.at(r).id for r in range(3)]
    # stop after round 1, resume in a new Federation: the same parameters bit for bit
    part = Federation(spec, tmp_path / "part", progress=False)
    part.open_journal()
    for r in range(2):
        part.run_round(r)
        part.checkpoint(r)
        part.next_round = r + 1
    part.close()
    again = Federation(spec, tmp_path / "part", progress=False)
    assert again.restore() == 2
    again.run()
    np.testing.assert_array_equal(again.params, whole.params)
