"""A device switched to another snapshot of itself behaves like one built on that snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from qflhw.calibration import snapshot as cal_mod
from qflhw.circuits.ansatz import build, z_observables
from qflhw.devices.base import Batch, BatchItem
from qflhw.devices.factory import make_device
from qflhw.errors import ConfigError


def _values(device, model, bindings):
    tc = device.transpile(model.circuit)
    item = BatchItem(tc, model.parameters, bindings, tuple(z_observables(2)))
    return tc, device.run(Batch((item,)), None).items[0].values


def test_switched_device_equals_a_fresh_device_on_the_new_snapshot():
    model = build("rot-crx", 2, 1, "ry")
    bindings = np.random.default_rng(0).uniform(0, np.pi, size=(3, len(model.parameters)))
    noisy = cal_mod.load("ibm_fez").scaled(10.0)
    dev = make_device("fake_fez", seed=5)
    tc0, before = _values(dev, model, bindings)
    dev.set_calibration(noisy)
    tc1, after = _values(dev, model, bindings)
    fresh_tc, fresh = _values(make_device("fake_fez", seed=5, calibration=noisy), model, bindings)
    np.testing.assert_allclose(after, fresh, atol=1e-12)
    assert tc1.calibration_id == noisy.id != tc0.calibration_id
    assert tc1.physical_qubits == fresh_tc.physical_qubits and tc1.esp == pytest.approx(fresh_tc.esp)
    assert np.max(np.abs(after)) < np.max(np.abs(before))  # 10x the noise shrinks the expectations
    dev.set_calibration(cal_mod.load("ibm_fez"))  # back: a cache hit, the same numbers as at first
    tc2, again = _values(dev, model, bindings)
    assert tc2 is tc0
    np.testing.assert_allclose(again, before, atol=1e-12)
    with pytest.raises(ConfigError, match="use a snapshot of the same device"):
        dev.set_calibration(cal_mod.load("ibm_torino"))
