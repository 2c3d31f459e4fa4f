"""Braket-shaped snapshots: the converter, the published twins and their properties files.

Expected values are read from the Braket properties JSON in the test itself, not from the module.
No network: everything is local files and local simulators.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import numpy as np
import pytest
from qiskit.quantum_info import Operator

from qflhw.calibration import braket_import, published
from qflhw.calibration.snapshot import Calibration, calibration_root
from qflhw.calibration.target import native_gates, noise_model, to_target
from qflhw.circuits.ansatz import build
from qflhw.circuits.ionq import to_ionq_native
from qflhw.circuits.transpile import transpile_for
from qflhw.config.paths import data_dir

DEVICES = tuple(published.PUBLISHED)
DATE = {d: spec["read"] for d, spec in published.PUBLISHED.items()}
OLD_FORTE = "2026-11-22"  # the first Forte-1 twin used MS (Aria's entangler): kept, never overwritten


def _props_text(device: str) -> str:
    return (data_dir("backends") / "braket" / f"{device}-properties.json").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def props() -> dict[str, dict]:
    return {d: json.loads(_props_text(d)) for d in DEVICES}


@pytest.fixture(scope="module")
def cals() -> dict[str, Calibration]:
    return {d: Calibration.load(calibration_root() / d / f"{DATE[d]}.json") for d in DEVICES}


@pytest.fixture(scope="module")
def transpiled(cals):
    qc = build("rot-crx", 4, 2).circuit
    return {d: transpile_for(qc, cal) for d, cal in cals.items()}


def _errors(cal: Calibration, gate: str) -> dict[tuple[int, ...], float]:
    return {g.qubits: g.error for g in cal.gates if g.gate == gate}


# ------------------------------------------------------------------------------ the snapshots
def test_snapshots_are_published_and_reproducible(cals):
    rebuilt = published.build_published_snapshots(save=False)
    for d in DEVICES:
        cal = cals[d]
        assert cal.provenance.kind == "published"
        assert "published median figures applied uniformly" in cal.provenance.notes
        assert cal.provenance.source and cal.provenance.retrieved == DATE[d]
        assert cal.date.isoformat() == DATE[d]
        assert rebuilt[d].same_figures(cal)  # the files on disk come from the properties JSON


def test_properties_files_come_from_the_published_table():
    for d in DEVICES:
        assert json.loads(_props_text(d)) == json.loads(json.dumps(published.published_properties(d)))


def test_profiles_and_properties_cite_no_files_outside_the_repository():
    from qflhw.config.profiles import available, load_profile

    for name in available():
        prof = load_profile(name)
        for text in (prof.price.source, prof.notes):
            assert "shared/" not in text and "SDK-NOTES" not in text and "/work/" not in text, name
        if prof.price.per_shot or prof.price.per_second:
            assert "https://" in prof.price.source and prof.price.read is not None, name
    for d in DEVICES:
        assert "SDK-NOTES" not in _props_text(d) and "shared/" not in _props_text(d)
    from qflhw.calibration.snapshot import calibration_root

    snapshots = sorted(calibration_root().rglob("*.json"))
    assert snapshots
    for path in snapshots:  # the shipped snapshots' provenance cites public sources only
        text = path.read_text(encoding="utf-8")
        assert "shared/" not in text and "SDK-NOTES" not in text and "/work/" not in text, path


@pytest.mark.parametrize("device", ["ionq_forte-1", "ionq_forte-enterprise-1"])
def test_ionq_forte(props, cals, device):
    p, cal = props[device], cals[device]
    n = p["paradigm"]["qubitCount"]
    assert n == 36 and cal.num_qubits == 36
    assert p["paradigm"]["connectivity"]["fullyConnected"] is True
    assert p["paradigm"]["nativeGateSet"] == ["gpi", "gpi2", "zz"]  # Forte: ZZ, not MS
    assert p["service"]["deviceLocation"] == "us-east-1"
    assert set(cal.coupling_map) == set(itertools.permutations(range(n), 2))  # all-to-all

    std = p["standardized"]
    f1 = std["singleQubitFidelity"][0]["fidelity"]
    f2 = std["twoQubitGateFidelity"][0]["fidelity"]
    fro = std["readoutFidelity"][0]["fidelity"]
    # equivalent qiskit basis: gpi2 -> sx, gpi -> x, zz -> rzz, virtual rz
    assert set(cal.native_gates) == {"sx", "x", "rz", "rzz", "measure"}
    for gate in ("sx", "x"):
        errs = _errors(cal, gate)
        assert len(errs) == n and all(e == pytest.approx(1 - f1, rel=1e-12) for e in errs.values())
    assert all(e == 0 for e in _errors(cal, "rz").values())
    rzz = _errors(cal, "rzz")
    assert len(rzz) == n * (n - 1) and all(e == pytest.approx(1 - f2, rel=1e-12) for e in rzz.values())
    for q in cal.qubits:
        assert q.prob_meas1_prep0 == pytest.approx(1 - fro) and q.prob_meas0_prep1 == pytest.approx(1 - fro)
        assert q.t1 == pytest.approx(std["T1"]["value"]) and q.t2 == pytest.approx(std["T2"]["value"])
    assert p["provider"]["fidelity"]["2Q"]["mean"] == f2  # the emulator reads the provider block
    assert "rz/sx/x/rzz" in cal.provenance.notes


def test_the_first_forte_twin_stays_as_it_was():
    old = Calibration.load(calibration_root() / "ionq_forte-1" / f"{OLD_FORTE}.json")
    assert "rxx" in old.native_gates and old.schema_ == "qflhw.calibration/1"


@pytest.mark.parametrize("device, n, gate2, braket2", [
    ("iqm_garnet", 20, "cz", "cz"), ("iqm_emerald", 54, "cz", "cz"),
    ("rigetti_ankaa-3", 84, "iswap", "iswap"), ("rigetti_cepheus-1-108q", 108, "iswap", "iswap"),
])
def test_lattice_devices(props, cals, device, n, gate2, braket2):
    p, cal = props[device], cals[device]
    assert p["paradigm"]["qubitCount"] == n and cal.num_qubits == n
    labels = sorted(int(k) for k in p["standardized"]["oneQubitProperties"])
    index = {lab: i for i, lab in enumerate(labels)}
    assert cal.labels == labels
    graph = p["paradigm"]["connectivity"]["connectivityGraph"]
    edges = {(index[int(a)], index[int(b)]) for a, bs in graph.items() for b in bs}
    edges |= {(b, a) for a, b in edges}
    assert set(cal.coupling_map) == edges  # the lattice, both directions

    one_q = ["r"] if device.startswith("iqm") else ["sx", "x"]
    if device.startswith("iqm"):  # IQM lists each coupler once, as Braket's IQM properties do
        listed = [(a, b) for a, bs in graph.items() for b in bs]
        assert len(listed) == len(p["standardized"]["twoQubitProperties"])
        assert {f"{a}-{b}" for a, b in listed} == set(p["standardized"]["twoQubitProperties"])
    for lab, qp in p["standardized"]["oneQubitProperties"].items():
        i = index[int(lab)]
        fids = {f["fidelityType"]["name"]: f["fidelity"] for f in qp["oneQubitFidelity"]}
        rb = fids.get("RANDOMIZED_BENCHMARKING", fids.get("SIMULTANEOUS_RANDOMIZED_BENCHMARKING"))
        for gate in one_q:
            assert _errors(cal, gate)[(i,)] == pytest.approx(1 - rb, rel=1e-12)
        assert cal.qubits[i].readout_error == pytest.approx(1 - fids["READOUT"], rel=1e-12)
        assert cal.qubits[i].t1 == pytest.approx(qp["T1"]["value"])  # unit "S"
    errs2 = _errors(cal, gate2)
    for key, tp in p["standardized"]["twoQubitProperties"].items():
        a, b = (index[int(x)] for x in key.split("-"))
        (f,) = [g["fidelity"] for g in tp["twoQubitGateFidelity"] if g["gateName"].lower() == braket2]
        assert errs2[(a, b)] == pytest.approx(1 - f, rel=1e-12) and errs2[(b, a)] == pytest.approx(1 - f, rel=1e-12)
    assert len(errs2) == 2 * len(p["standardized"]["twoQubitProperties"])


def test_iqm_labels_are_one_based(props, cals):
    assert cals["iqm_garnet"].labels == list(range(1, 21))
    assert "1" in props["iqm_garnet"]["standardized"]["oneQubitProperties"]
    assert "0" not in props["iqm_garnet"]["standardized"]["oneQubitProperties"]
    assert len(cals["iqm_garnet"].coupling_map) == 2 * 30


# ------------------------------------------------------------------------------ compiling
@pytest.mark.parametrize("device", DEVICES)
def test_ansatz_transpiles_to_natives(cals, transpiled, device):
    cal, tr = cals[device], transpiled[device]
    natives = set(native_gates(cal)) - {"measure"}  # IQM's: prx, cz and a virtual rz
    used = {ci.operation.name for ci in tr.isa.data} - {"barrier"}
    assert used <= natives, used - natives
    coupling = set(cal.coupling_map)
    for ci in tr.isa.data:
        if ci.operation.num_qubits == 2:
            assert tuple(tr.isa.find_bit(q).index for q in ci.qubits) in coupling
    assert tr.two_qubit_gates > 0
    assert 0 < tr.esp < 1
    nm = noise_model(to_target(cal, tr.physical_qubits))
    assert set(nm.noise_instructions) >= {g for g in natives if g != "rz"}


def test_ionq_basis_maps_exactly_onto_gpi_gpi2_ms():
    old = Calibration.load(calibration_root() / "ionq_forte-1" / f"{OLD_FORTE}.json")
    tr = transpile_for(build("rot-crx", 4, 2).circuit, old)
    rng = np.random.default_rng(7)
    bound = tr.compact.assign_parameters(rng.uniform(-math.pi, math.pi, len(tr.compact.parameters)))
    bound.rxx(2.6, 0, 1)  # |angle| > pi/2 and negative angles take the other branches
    bound.rxx(-0.4, 1, 2)
    native, frame = to_ionq_native(bound)
    assert set(native.count_ops()) <= {"gpi", "gpi2", "ms"}
    for ci in native.data:
        if ci.operation.name == "ms":
            assert 0 <= float(ci.operation.params[2]) <= 0.25 + 1e-12  # IonQ's allowed MS angle (turns)
    check = native.copy()
    for q, f in enumerate(frame):
        check.rz(f, q)
    assert Operator(check).equiv(Operator(bound))


def test_forte_basis_maps_exactly_onto_gpi_gpi2_zz(transpiled):
    """rzz(t) -> qiskit_ionq ZZGate(t / 2pi), through the Z frame; Braket then writes zz(t) in radians."""
    from qiskit_braket_provider import to_braket

    tr = transpiled["ionq_forte-1"]
    assert "rzz" in tr.isa.count_ops()
    rng = np.random.default_rng(11)
    bound = tr.compact.assign_parameters(rng.uniform(-math.pi, math.pi, len(tr.compact.parameters)))
    bound.rzz(2.6, 0, 1)
    bound.rzz(-0.4, 1, 2)
    native, frame = to_ionq_native(bound)
    assert set(native.count_ops()) <= {"gpi", "gpi2", "zz"} and "zz" in native.count_ops()
    check = native.copy()
    for q, f in enumerate(frame):
        check.rz(f, q)
    assert Operator(check).equiv(Operator(bound))
    src = to_braket(native, verbatim=True).to_ir().source
    import re

    zz = [(float(a), q) for a, q in re.findall(r"zz\(([-0-9.e]+)\) (\$\d+, \$\d+);", src)]
    assert zz[-2][1] == "$0, $1" and zz[-2][0] == pytest.approx(2.6, abs=1e-12)  # Braket zz(theta) = exp(-i theta/2 ZZ)
    assert zz[-1][1] == "$1, $2" and zz[-1][0] == pytest.approx(-0.4, abs=1e-12)


# ------------------------------------------------------------------------------ Braket side
@pytest.mark.parametrize("device", DEVICES)
def test_properties_run_in_braket_local_emulator(props, device):
    from braket.circuits import Circuit
    from braket.emulation.local_emulator import LocalEmulator

    emulator = LocalEmulator.from_json(_props_text(device))
    family = published.PUBLISHED[device]["family"]
    a, b = (1, 2) if family == "iqm" else (0, 1)
    body = {
        "ionq": Circuit().gpi2(a, 0.0).zz(a, b, 0.3),
        "iqm": Circuit().prx(a, math.pi / 2, 0.0).cz(a, b),
        "rigetti": Circuit().rx(a, math.pi / 2).iswap(a, b),
    }[family]
    counts = emulator.run(Circuit().add_verbatim_box(body), shots=100).result().measurement_counts
    assert sum(counts.values()) == 100
    if family == "iqm":  # the coupler is listed 1 -> 2: the emulator refuses the other direction
        with pytest.raises(ValueError, match="2 is not connected to 1"):
            emulator.run(Circuit().add_verbatim_box(Circuit().cz(b, a)), shots=10).result()
    if family == "ionq":  # Forte has no MS
        with pytest.raises(ValueError, match="MS is not a native gate"):
            emulator.run(Circuit().add_verbatim_box(Circuit().ms(a, b, 0.0, 0.0)), shots=10).result()


def test_converter_handles_gaps_and_missing_data(props):
    raw = copy.deepcopy(props["iqm_garnet"])
    std = raw["standardized"]
    del std["oneQubitProperties"]["3"]  # a dead qubit: labels become 1, 2, 4, ..., 20
    std["twoQubitProperties"] = {k: v for k, v in std["twoQubitProperties"].items() if "3" not in k.split("-")}
    graph = raw["paradigm"]["connectivity"]["connectivityGraph"]
    raw["paradigm"]["connectivity"]["connectivityGraph"] = {
        k: [x for x in v if x != "3"] for k, v in graph.items() if k != "3"
    }
    raw["paradigm"]["qubitCount"] = 19
    std["twoQubitProperties"]["1-2"]["twoQubitGateFidelity"][0]["gateName"] = "Two_Qubit_Clifford"
    std["oneQubitProperties"]["5"]["oneQubitFidelity"] = [
        f for f in std["oneQubitProperties"]["5"]["oneQubitFidelity"] if f["fidelityType"]["name"] != "READOUT"
    ]
    cal = braket_import.from_braket_properties(raw, device="iqm_test", source="test", date="2026-01-01")
    labels = cal.labels
    assert cal.num_qubits == 19 and labels == [1, 2] + list(range(4, 21))
    idx = {lab: i for i, lab in enumerate(labels)}
    assert (idx[1], idx[2]) in cal.coupling_map  # coupler kept, its CZ fidelity taken from the median
    assert "median used" in cal.provenance.notes
    assert cal.qubits[idx[5]].readout_error > 0
    assert cal.provenance.kind == "live"


# ------------------------------------------------------------------------------ simulating the twins
@pytest.mark.parametrize("device", DEVICES)
def test_twins_simulate_in_aer(cals, transpiled, device):
    """The compact Aer simulation runs on every twin (Rigetti's iswap goes in as a labelled unitary)."""
    from qiskit.quantum_info import Statevector

    from qflhw.circuits.ansatz import z_observables
    from qflhw.devices.base import BatchItem
    from qflhw.devices.simulator import CompactSimulator

    tr = transpiled[device]
    parameters = tuple(tr.logical.parameters)
    bindings = np.random.default_rng(3).uniform(-1, 1, (1, len(parameters)))
    exact = Statevector(tr.logical.assign_parameters(dict(zip(parameters, bindings[0]))))
    exact = np.array([exact.expectation_value(o).real for o in z_observables(4)])
    cal = cals[device]
    ideal = cal.model_copy(update={
        "gates": tuple(g.model_copy(update={"error": 0.0, "duration": 0.0}) for g in cal.gates),
        "qubits": tuple(q.model_copy(update={"t1": None, "t2": None, "prob_meas1_prep0": 0.0,
                                             "prob_meas0_prep1": 0.0}) for q in cal.qubits),
    })
    rng = np.random.default_rng(0)
    for c, close in ((ideal, True), (cal, False)):
        item = BatchItem(tr, parameters, bindings, tuple(z_observables(4)))
        values = CompactSimulator(c).evaluate(item, None, rng).values[0]
        assert np.allclose(values, exact, atol=1e-9) == close
        assert np.all(np.isfinite(values)) and np.abs(values).max() <= 1 + 1e-9
