"""Error mitigation: folds keep qubits and native gates, ZNE and REM move values to the ideal.

References are independent of the code under test: qiskit ``Statevector`` of the logical
circuit for ideal values, qiskit ``Operator`` for circuit equivalence, hand-derived numbers for
extrapolation weights and overheads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector

from qflhw.calibration import snapshot as cal_store
from qflhw.calibration.target import is_two_qubit_gate, native_gates
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import load_profile
from qflhw.config.spec import MitigationSpec, parse_spec
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from qflhw.devices.fake import FakeDevice
from qflhw.errors import ConfigError
from qflhw.execution.mitigation import REM, ZNE, extrapolation_weights, fold, make_mitigation, overhead

MODEL = build("rot-crx", 3, 1)
OBS = tuple(z_observables(3)) + (SparsePauliOp(["ZZI", "XIY"], [0.5, -0.3]),)
ROWS = np.random.default_rng(5).uniform(-np.pi, np.pi, (6, len(MODEL.parameters)))


def ideal(rows: np.ndarray, observables=OBS) -> np.ndarray:  # noqa: ANN001
    out = []
    for row in rows:
        sv = Statevector(MODEL.circuit.assign_parameters(dict(zip(MODEL.parameters, row))))
        out.append([sv.expectation_value(o).real for o in observables])
    return np.array(out)


def _profiles() -> list[str]:
    names = ["fake_fez", "fake_brisbane"]  # Heron (cz), Eagle (ecr)
    names += [n for n in ("fake_iqm_garnet", "fake_rigetti_ankaa-3", "fake_ionq_forte-1") if _has_profile(n)]
    return names


def _has_profile(name: str) -> bool:
    try:
        load_profile(name)
        return True
    except ConfigError:
        return False


_DEVICES: dict[tuple[str, float], object] = {}


def device(name: str, noise_scale: float = 1.0):  # noqa: ANN201
    key = (name, noise_scale)
    if key not in _DEVICES:
        _DEVICES[key] = make_device(name, noise_scale=noise_scale)
    return _DEVICES[key]


def _bound(circuit, tc, row):  # noqa: ANN001, ANN202
    values = dict(zip(MODEL.parameters, row))
    return circuit.assign_parameters({p: values[p] for p in circuit.parameters})


@pytest.mark.parametrize("name", _profiles())
@pytest.mark.parametrize("folding", ["two-qubit", "global"])
def test_folds_keep_physical_qubits_native_gates_and_the_unitary(name: str, folding: str) -> None:
    dev = device(name)
    tc = dev.transpile(MODEL.circuit)
    zne = ZNE(dev.calibration, scale_factors=[1, 3, 5], folding=folding)
    variants = zne.prepare(tc).variants
    native = set(native_gates(dev.calibration))  # the snapshot's natives, and IQM's virtual rz
    pairs = {(g.gate, g.qubits) for g in dev.calibration.gates}
    for scale, v in zip((1, 3, 5), variants):
        assert v.physical_qubits == tc.physical_qubits and v.final_positions == tc.final_positions
        assert v.compact.num_qubits == tc.compact.num_qubits
        assert {ci.operation.name for ci in v.compact.data} <= native
        assert v.two_qubit_gates == scale * tc.two_qubit_gates  # odd scales fold every 2q gate exactly
        for ci in v.isa.data:  # the full-device circuit runs on the same physical qubits and couplers
            qargs = tuple(v.isa.find_bit(q).index for q in ci.qubits)
            assert set(qargs) <= set(tc.physical_qubits)
            if is_two_qubit_gate(ci.operation):
                assert (ci.operation.name, qargs) in pairs
        # folding inserts G^dagger G pairs only: the unitary is unchanged (up to global phase)
        row = ROWS[0]
        assert Operator(_bound(v.compact, tc, row)).equiv(Operator(_bound(tc.compact, tc, row)))


def test_folding_is_deterministic_for_a_seed() -> None:
    tc = device("fake_fez").transpile(MODEL.circuit)
    a = fold(tc.compact, 2.0, seed=11)  # a non-odd scale: Mitiq picks gates at random
    b = fold(tc.compact, 2.0, seed=11)
    assert [(ci.operation.name, ci.qubits) for ci in a.data] == [(ci.operation.name, ci.qubits) for ci in b.data]
    n2q = sum(1 for ci in a.data if is_two_qubit_gate(ci.operation))
    assert tc.two_qubit_gates < n2q < 3 * tc.two_qubit_gates


def test_scale_one_variant_gives_the_unfolded_result() -> None:
    dev = device("fake_fez")
    tc = dev.transpile(MODEL.circuit)
    scaled = ZNE(dev.calibration, scale_factors=[1, 3]).prepare(tc).variants[0]
    res = dev.run(Batch((BatchItem(tc, MODEL.parameters, ROWS, OBS), BatchItem(scaled, MODEL.parameters, ROWS, OBS))), None)
    np.testing.assert_allclose(res.items[1].values, res.items[0].values, atol=1e-10)


def test_zne_moves_values_toward_the_noiseless_value() -> None:
    dev = device("fake_fez", noise_scale=4.0)
    tc = dev.transpile(MODEL.circuit)
    zne = ZNE(dev.calibration).prepare(tc)  # two-qubit folding, [1, 3, 5], Richardson
    both = ZNE(dev.calibration, readout=REM(dev.calibration)).prepare(tc)
    res = dev.run(Batch(tuple(BatchItem(v, MODEL.parameters, ROWS, OBS) for v in zne.variants)), None)
    truth = ideal(ROWS)
    err_raw = np.median(np.abs(res.items[0].values - truth))
    err_zne = np.median(np.abs(zne.combine(res.items, OBS).values - truth))
    err_both = np.median(np.abs(both.combine(res.items, OBS).values - truth))
    assert both.readout is not None
    err_rem = np.median(np.abs(both.readout.combine(res.items[:1], OBS).values - truth))
    assert err_raw > 0.02  # the scaled-up noise is visible
    assert err_zne < err_raw  # ZNE alone leaves the (scaled-up) readout error in
    assert err_both < 0.5 * err_rem  # on top of readout correction, ZNE removes most gate error
    assert err_both < 0.35 * err_raw
    for kind in ("linear", "exponential"):  # the other Mitiq factories run on the same data
        other = ZNE(dev.calibration, extrapolation=kind).prepare(tc)
        assert np.all(np.isfinite(other.combine(res.items, OBS).values))


def _readout_only(name: str) -> FakeDevice:
    """The device with ideal gates and no relaxation, and distinct asymmetric readout per qubit."""
    prof = load_profile(name)
    cal = cal_store.load(prof.calibration)
    qubits = tuple(
        q.model_copy(
            update={"t1": None, "t2": None, "prob_meas1_prep0": 0.01 + 0.013 * (i % 5), "prob_meas0_prep1": 0.03 + 0.011 * (i % 7)}
        )
        for i, q in enumerate(cal.qubits)
    )
    gates = tuple(g.model_copy(update={"error": 0.0}) for g in cal.gates)
    return FakeDevice(prof, cal.model_copy(update={"qubits": qubits, "gates": gates}))


def test_rem_recovers_the_ideal_value_from_exact_distributions() -> None:
    dev = _readout_only("fake_fez")
    tc = dev.transpile(MODEL.circuit)
    rem = REM(dev.calibration).prepare(tc)
    res = dev.run(Batch((BatchItem(rem.variants[0], MODEL.parameters, ROWS, OBS),)), None)
    truth = ideal(ROWS)
    assert np.max(np.abs(res.items[0].values - truth)) > 0.02
    np.testing.assert_allclose(rem.combine(res.items, OBS).values, truth, atol=1e-9)


def test_rem_with_measured_matrices_overrides_the_calibration() -> None:
    dev = _readout_only("fake_fez")
    tc = dev.transpile(MODEL.circuit)
    wrong = {q: np.eye(2) for q in tc.final_physical}  # "measured" as perfect: no correction at all
    rem = REM(dev.calibration, matrices=wrong).prepare(tc)
    res = dev.run(Batch((BatchItem(rem.variants[0], MODEL.parameters, ROWS, OBS),)), None)
    np.testing.assert_allclose(rem.combine(res.items, OBS).values, res.items[0].values, atol=1e-12)


def test_extrapolation_weights_and_overhead_by_hand() -> None:
    # Richardson through (1, 3, 5) at 0: Lagrange weights 15/8, -10/8, 3/8
    np.testing.assert_allclose(extrapolation_weights([1, 3, 5]), [15 / 8, -10 / 8, 3 / 8], atol=1e-9)
    # least-squares line through (1, 3): 3/2, -1/2
    np.testing.assert_allclose(extrapolation_weights([1, 3], "linear"), [1.5, -0.5], atol=1e-9)
    zne = MitigationSpec(method="zne")
    o = overhead(zne)
    assert o.circuits == 3
    assert o.shots == pytest.approx(3 * (225 + 100 + 9) / 64)
    assert overhead(zne, allocation="variance-weighted").shots == pytest.approx((15 + 10 + 3) ** 2 / 64)
    cal = cal_store.load("ibm_fez/latest")
    q = 3
    a = cal.readout_matrix(q)
    rem = overhead(MitigationSpec(method="rem"), calibration=cal, qubits=[q])
    assert rem == (1.0, pytest.approx(1 / (1 - a[1, 0] - a[0, 1]) ** 2))
    both = overhead(MitigationSpec(method="zne+rem"), calibration=cal, qubits=[q])
    assert both.shots == pytest.approx(o.shots * rem.shots)
    assert overhead(MitigationSpec()) == (1.0, 1.0)


def test_spec_mitigation_per_client_and_clear_errors(tiny_spec_text: str) -> None:
    import tomllib

    raw = tomllib.loads(tiny_spec_text)
    raw["mitigation"] = {"method": "zne+rem", "scale_factors": [1, 2, 3], "extrapolation": "linear"}
    raw["clients"][1]["mitigation"] = {"method": "rem"}
    spec = parse_spec(raw)
    a, b = spec.clients
    assert spec.client_mitigation(a).method == "zne+rem" and spec.client_mitigation(b).method == "rem"
    dev = device("fake_fez")
    m = make_mitigation(spec.client_mitigation(a), dev.calibration)
    assert isinstance(m, ZNE) and m.name == "zne+rem" and m.scale_factors == (1, 2, 3)
    assert isinstance(make_mitigation(spec.client_mitigation(b), dev.calibration), REM)
    assert make_mitigation(MitigationSpec(), dev.calibration) is None

    bad = [
        ({"method": "zne", "scale_factors": [1, 0.5]}, "mitigation.scale_factors must all be >= 1"),
        ({"method": "zne", "scale_factors": [1, 3], "extrapolation": "exponential"}, "needs at least 3 scale factors"),
        ({"method": "zne", "scale_factors": [3]}, "at least 2 values"),
        ({"method": "pec"}, "mitigation.method"),
    ]
    for table, needle in bad:
        raw2 = dict(raw, mitigation=table)
        with pytest.raises(ConfigError, match=needle) as info:
            parse_spec(raw2, "job.toml")
        assert "\n" not in str(info.value) and str(info.value).startswith("job.toml")
    raw3 = tomllib.loads(tiny_spec_text)
    raw3["clients"][0]["mitigation"] = {"method": "zne", "folding": "everything"}
    with pytest.raises(ConfigError, match=r"clients\.0\.mitigation\.folding"):
        parse_spec(raw3, "job.toml")


def test_client_builds_its_own_mitigation_and_runs_one_job_per_step(tiny_spec: Path) -> None:
    from qflhw.circuits.ansatz import observables
    from qflhw.config.spec import load_spec
    from qflhw.execution.budget import Ledger
    from qflhw.training.client import Client

    spec = load_spec(tiny_spec)
    spec = spec.model_copy(update={"mitigation": MitigationSpec(method="zne+rem")})
    model = build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)
    obs = observables(spec.model.observables, spec.model.qubits)
    dev = device("fake_fez")
    x = np.random.default_rng(0).uniform(0, 1, (4, spec.model.qubits))
    y = np.array([0, 1, 0, 1])
    ledger = Ledger()
    client = Client(spec.clients[0], spec, dev, x, y, model, obs, 2, run_id="t", ledger=ledger)
    ev = client.evaluator
    assert isinstance(ev.mitigation, ZNE) and len(ev.variants) == 3 and ev.prepared is not None
    vals, jac, info = ev(x[:2], np.zeros(len(model.weights)), key=JobKey.parse("t/r0/a/s0"), round_=0)
    assert len(info.job_ids) == 1 and ledger.spent.tasks == 1
    assert vals.shape == (2, len(obs)) and jac.shape == (2, len(obs), len(model.weights))
    assert ledger.spent.shots == info.cost.shots == 3 * ev.rows_per_point() * 2 * spec.training.shots


def test_prepared_techniques_are_frozen_and_reusable() -> None:
    """Preparing for one circuit changes nothing in the technique: it serves every circuit."""
    import dataclasses

    dev = device("fake_fez")
    zne = ZNE(dev.calibration, readout=REM(dev.calibration))
    before = (zne.scale_factors, zne.extrapolation, zne.folding)
    a = zne.prepare(dev.transpile(MODEL.circuit))
    b = zne.prepare(dev.transpile(build("hardware-efficient", 2, 1).circuit))
    assert (zne.scale_factors, zne.extrapolation, zne.folding) == before
    assert a.variants[0].logical is not b.variants[0].logical
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.weights = np.zeros(3)  # type: ignore[misc]


def test_a_failed_exponential_fit_is_warned_and_counted() -> None:
    """Values that fall exponentially fit; values that rise away from zero make ExpFactory fail."""
    from qflhw.errors import ZNEFallbackWarning

    dev = device("fake_fez")
    prep = ZNE(dev.calibration, extrapolation="exponential").prepare(dev.transpile(MODEL.circuit))
    good = np.array([[[0.8]], [[0.8 * np.exp(-0.2)]], [[0.8 * np.exp(-0.4)]]])  # 0.8 exp(-0.1 (s - 1))
    values, fallbacks = prep.extrapolate(good)
    assert fallbacks == 0 and values[0, 0] == pytest.approx(0.8 * np.exp(0.1), rel=1e-6)
    bad = np.array([[[0.1]], [[0.5]], [[-0.9]]])
    with pytest.warns(ZNEFallbackWarning, match="1 of 1 exponential fits"):
        values, fallbacks = prep.extrapolate(bad)
    assert fallbacks == 1
    np.testing.assert_allclose(values, np.tensordot(prep.weights, bad, axes=1))  # the Richardson value
