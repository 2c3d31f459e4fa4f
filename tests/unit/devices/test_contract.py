"""One contract every Device implementation keeps, run over each of them offline: the fake twin,
IBM through Qiskit Runtime's local testing mode, and Amazon Braket's LocalSimulator.

Batch shape (one result per item, values ``[binding, observable]``), agreement with the
statevector, seeding, normalized status, fetch by id, cancel, and close.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp, Statevector

from qflhw.calibration import snapshot as cal_mod
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import load_profile
from qflhw.devices.base import FINAL_STATES, Batch, BatchItem, BatchResult, Device, JobKey

pytestmark = pytest.mark.usefixtures("no_network")

MODEL = build("rot-crx", 2, 1)
OBS = (*z_observables(2), SparsePauliOp(["XX", "YZ"], [0.5, -0.25]))
BINDINGS = np.random.default_rng(3).uniform(-np.pi, np.pi, (3, len(MODEL.parameters)))
SHOTS = 4000


def _fake() -> Device:
    from qflhw.devices.factory import make_device

    return make_device("fake_fez", noise_scale=1e-9)  # practically noiseless: values near the statevector


def _ibm_local() -> Device:
    from qflhw.devices.ibm import IBMDevice

    cal = cal_mod.load("ibm_fez/latest").scaled(1e-9)
    return IBMDevice(load_profile("ibm_fez"), cal)


def _braket_local() -> Device:
    from braket.devices import LocalSimulator

    from qflhw.devices.braket import BraketDevice

    garnet = load_profile("iqm_garnet")  # LocalSimulator runs no program sets: one task per executable
    prof = garnet.model_copy(update={"limits": garnet.limits.model_copy(update={"max_circuits": 1})})
    return BraketDevice(prof, cal_mod.load("iqm_garnet/latest"), device=LocalSimulator())


DEVICES = {"fake": _fake, "ibm-local": _ibm_local, "braket-local": _braket_local}


@pytest.fixture(scope="module", params=sorted(DEVICES))
def device(request) -> Device:
    return DEVICES[request.param]()


def _batch(dev: Device, step: int) -> Batch:
    item = BatchItem(dev.transpile(MODEL.circuit), MODEL.parameters, BINDINGS, OBS)
    return Batch((item, item), key=JobKey("contract", 0, "c", step))


def _ideal() -> np.ndarray:
    rows = []
    for b in BINDINGS:
        sv = Statevector(MODEL.circuit.assign_parameters(dict(zip(MODEL.parameters, b))))
        rows.append([sv.expectation_value(o).real for o in OBS])
    return np.array(rows)


def test_one_result_per_item_shaped_binding_by_observable(device):
    handle = device.submit(_batch(device, 0), SHOTS)
    result = handle.result(timeout=300)
    assert isinstance(result, BatchResult) and result.job_id == handle.job_id
    assert len(result.items) == 2 and result.shots == SHOTS
    for item in result.items:
        assert item.values.shape == item.stderr.shape == (len(BINDINGS), len(OBS))
        assert np.all(item.stderr > 0)  # sampled: every value has a shot-noise error bar
    assert result.calibration_id == device.calibration.id and result.device == device.name


def test_values_agree_with_the_statevector_within_shot_noise(device):
    result = device.run(_batch(device, 1), SHOTS, timeout=300)
    ideal = _ideal()
    for item in result.items:
        z = np.abs(item.values - ideal) / item.stderr
        assert np.all(z < 5), z  # readout error (the twins keep it) stays well inside this on IQM/Fez


def test_status_is_normalized_and_final_after_the_result(device):
    handle = device.submit(_batch(device, 2), SHOTS)
    handle.result(timeout=300)
    assert handle.status() == "done" and handle.status() in FINAL_STATES
    handle.cancel()  # cancelling a finished job is a no-op
    assert handle.status() == "done"
    assert handle.queue_position() is None  # a finished job has no place in a queue


def test_fetch_by_id_gives_the_same_result(device):
    handle = device.submit(_batch(device, 3), SHOTS)
    first = handle.result(timeout=300)
    again = device.job(handle.job_id).result(timeout=300)
    assert again.job_id == first.job_id
    np.testing.assert_array_equal(again.items[0].values, first.items[0].values)


@pytest.mark.parametrize("kind", ["fake", "ibm-local"])
def test_same_key_same_numbers(kind):
    """Fake twins and Runtime local mode seed shot noise from the idempotency key (Braket's local
    simulator takes no seed, so this is not part of its contract)."""
    device = DEVICES[kind]()
    a = device.run(_batch(device, 4), SHOTS, timeout=300).items[0].values
    b = device.run(_batch(device, 4), SHOTS, timeout=300).items[0].values
    c = device.run(_batch(device, 5), SHOTS, timeout=300).items[0].values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_close_is_idempotent_and_the_device_keeps_working(device):
    with device as dev:
        dev.run(_batch(dev, 6), SHOTS, timeout=300)
    device.close()
    device.close()
    assert device.run(_batch(device, 7), SHOTS, timeout=300).items[0].values.shape == (len(BINDINGS), len(OBS))
