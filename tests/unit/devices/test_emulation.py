"""Dress rehearsals: ``emulate = true`` profiles run the paid submission path offline.

One quickstart-shaped round (the quickstart's 4-qubit rot-crx model, fewer rows) through every
current device's emulation: IBM in Runtime local testing mode, Braket through ``LocalEmulator``
built from the device-properties JSON (shaped like amazon-braket-schemas' fixtures, validated by
the installed schema classes, adapted to each device's natives and coupler directions). The
emulator refuses any non-native gate, unconnected pair or unlisted IQM direction, so a round in
which every client reports means every program set was accepted. Costs are charged as for real.
"""

from __future__ import annotations

import tomllib

import pytest

from qflhw import cli
from qflhw.calibration.braket_import import load_braket_properties
from qflhw.calibration.published import PUBLISHED, properties_path
from qflhw.calibration.snapshot import Calibration
from qflhw.config.profiles import available, load_profile
from qflhw.config.spec import parse_spec
from qflhw.devices.factory import make_device
from qflhw.errors import ConfigError
from qflhw.federation.loop import Federation

pytestmark = pytest.mark.usefixtures("no_network")

BRAKET = ["iqm_garnet", "iqm_emerald", "ionq_forte-1", "ionq_forte-enterprise-1", "rigetti_cepheus-1-108q"]
ROUND = """
name = "rehearsal"
seed = 7
rounds = 1

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 2

[model]
qubits = 4
layers = 1
ansatz = "rot-crx"

[training]
batch_size = 2
learning_rate = 0.1
gradient = "spsa"  # 3 bindings a point: one small program set a step keeps the emulators quick
shots = 20

[budget]
max_usd = 5000.0
"""


def test_every_current_device_has_an_emulated_profile():
    names = set(available())
    for dev in BRAKET + ["ibm_fez", "ibm_kingston", "ibm_marrakesh", "ibm_boston", "ibm_pittsburgh"]:
        assert dev in names and f"{dev}_emulated" in names
        prof = load_profile(f"{dev}_emulated")
        live = load_profile(dev)
        assert prof.emulate and not live.emulate and prof.price == live.price and prof.device == live.device


@pytest.mark.parametrize("device", BRAKET)
def test_properties_validate_and_import(device, tmp_path, capsys):
    text = properties_path(device).read_text()
    caps = load_braket_properties(text)  # the installed schema classes accept them
    assert caps.paradigm.qubitCount == PUBLISHED[device]["qubits"]
    assert cli.main(["calibration", "import", str(properties_path(device)), "--root", str(tmp_path)]) == 0
    (path,) = tmp_path.rglob("*.json")
    cal = Calibration.load(path)
    assert cal.device == device and cal.provenance.kind == "live" and cal.num_qubits == caps.paradigm.qubitCount
    assert cli.main(["calibration", "import", str(properties_path(device)), "--root", str(tmp_path)]) == 0
    assert "unchanged" in capsys.readouterr().out and len(list(tmp_path.rglob("*.json"))) == 1


def test_one_quickstart_round_through_every_emulation(tmp_path):
    clients = [("kingston", "ibm_kingston_emulated")] + [(d.replace("-", "_"), f"{d}_emulated") for d in BRAKET]
    text = ROUND + "".join(f'\n[[clients]]\nname = "{n}"\ndevice = "{d}"\n' for n, d in clients)
    spec = parse_spec(tomllib.loads(text))
    fed = Federation(spec, tmp_path / "run", progress=False)
    devices = {c.name: c.device for c in fed.clients}
    summary = fed.run()
    for name, _ in clients:
        c = summary["clients"][name]
        assert c["rounds_ok"] == 1, (name, c["note"])  # every program set / pub accepted
        assert c["emulated"] is True and c["cost_usd"] > 0  # charged at the live price
    for name, dev in devices.items():
        if name != "kingston":
            assert dev.tasks_sent >= 1 and not dev.remote
            assert summary["clients"][name]["actual_cost_usd"] == pytest.approx(summary["clients"][name]["cost_usd"])
    assert devices["kingston"].batches_opened == 1 and devices["kingston"]._ctx is None  # one mode, closed
    # IQM: cz only on the listed directions (the emulator would have refused the others)
    assert devices["iqm_garnet"].directions is not None and devices["ionq_forte_1"].directions is None


def test_retired_devices_are_refused_live_but_kept_as_twins():
    for name, replacement in (("ibm_kyiv", "ibm_kingston"), ("ibm_torino", "ibm_kingston")):
        prof = load_profile(name)
        assert prof.retired is not None and prof.replacement == replacement
        with pytest.raises(ConfigError, match=f"retired on {prof.retired}; use {replacement}") as info:
            make_device(name)
        assert "\n" not in str(info.value)
    assert make_device("fake_torino").calibration.device == "ibm_torino"  # the twin still works


def test_aria_properties_use_ms_and_forte_properties_zz(tmp_path):
    """The same converter and device on IonQ Aria-shaped properties (GPI, GPI2, MS) emit MS, on
    Forte's (GPI, GPI2, ZZ) emit ZZ; each emulator accepts its own and refuses the other's."""
    import json

    import numpy as np
    from braket.emulation.local_emulator import LocalEmulator

    from qflhw.calibration.braket_import import from_braket_properties
    from qflhw.circuits.ansatz import build, z_observables
    from qflhw.devices.base import Batch, BatchItem, JobKey
    from qflhw.devices.braket import BraketDevice

    forte = json.loads(properties_path("ionq_forte-1").read_text())
    aria = json.loads(json.dumps(forte).replace('"zz"', '"ms"'))
    aria["paradigm"]["qubitCount"] = 25
    model = build("rot-crx", 2, 1)
    for props, gate in ((aria, "ms"), (forte, "zz")):
        caps = load_braket_properties(json.dumps(props))
        cal = from_braket_properties(caps, device="ionq_x", source="test", date="2026-12-01")
        assert ("rxx" if gate == "ms" else "rzz") in cal.native_gates
        dev = BraketDevice(load_profile("ionq_forte-1"), cal, device=LocalEmulator.from_device_properties(caps))
        batch = Batch((BatchItem(dev.transpile(model.circuit), model.parameters, np.zeros((2, len(model.parameters))),
                                 tuple(z_observables(2))),), key=JobKey("r", 0, "a", 0))
        body = dev.executables(batch)[0][0].to_ir().source
        assert f"{gate}(" in body and ("zz(" if gate == "ms" else "ms(") not in body
        res = dev.run(batch, shots=50)
        assert res.items[0].values.shape == (2, 2)
