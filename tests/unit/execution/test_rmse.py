"""The RMSE model of mitigation at equal total shots, against repeated sampled jobs on a twin.

Reference values: the ideal expectations come from qiskit's Statevector of the logical circuit
(independent of the twin); the measured RMSE from independent sampled jobs.
"""

from __future__ import annotations

import numpy as np

from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.spec import MitigationSpec
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from qflhw.execution.mitigation import make_mitigation
from qflhw.execution.mitigation.rmse import best_method, error_models, ideal_values, random_bindings


def test_predicted_rmse_matches_repeated_jobs():
    model, obs = build("rot-crx", 2, 1), tuple(z_observables(2))
    dev = make_device("fake_iqm_garnet", seed=3)
    rows = random_bindings(model, 12, seed=1)
    ideal = ideal_values(model, rows, obs)
    models = error_models(dev, model, obs, ("none", "rem", "zne"), rows=rows)
    exact = dev.run(Batch((BatchItem(dev.transpile(model.circuit), model.parameters, rows, obs),)), None)
    assert np.allclose(models["none"].bias, exact.items[0].values - ideal)  # bias = exact twin value - ideal
    total = 600
    for method in ("none", "rem", "zne"):
        tech = make_mitigation(MitigationSpec(method=method), dev.calibration)
        tc = dev.transpile(model.circuit)
        prepared = tech.prepare(tc) if tech else None
        variants = list(prepared.variants) if prepared else [tc]
        per = total // len(variants)
        est = []
        for r in range(40):
            res = dev.run(Batch(tuple(BatchItem(v, model.parameters, rows, obs) for v in variants),
                                key=JobKey("rmse", r, method, 0)), per)
            est.append(prepared.combine(res.items, obs).values if prepared else res.items[0].values)
        measured = float(np.sqrt(np.mean((np.array(est) - ideal[None]) ** 2)))
        predicted = models[method].rmse(total)
        assert 0.8 < measured / predicted < 1.25, (method, measured, predicted)
    # few shots: shot noise dominates and ZNE's weighted copies lose; the model says so too
    assert best_method(models, 30) != "zne" and models["zne"].rmse(30) > models["none"].rmse(30)
