"""IBM steps pay what Runtime runs, and never have a shape Runtime refuses.

References are the SDK's own: the executor Sampler's reported ``num_shots`` in local testing mode,
the executor Estimator's ``prepare`` (the items and shapes it would run), and the Sampler's refusal
of mixed shots in one job.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit_ibm_runtime.executor.calculate_twirling_shots import calculate_twirling_shots

from qflhw.calibration import snapshot as cal_mod
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import IBMRuntimeOptions, load_profile
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.ibm import IBMDevice
from qflhw.devices.remote import JobLayout
from qflhw.execution.budget import Ledger
from qflhw.execution.evaluator import CircuitEvaluator
from qflhw.execution.mitigation import ZNE

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="module")
def fez():
    return cal_mod.load("ibm_fez/latest")


def _profile(**runtime):
    prof = load_profile("ibm_fez_emulated")
    return prof.model_copy(update={"runtime": IBMRuntimeOptions(**runtime)}) if runtime else prof


@pytest.mark.parametrize("shots", [1, 10, 64, 100, 1000, 3000, 4096])
@pytest.mark.parametrize("nr, spr", [(None, None), (4, None), (None, 50), (3, 20)])
def test_twirl_shape_is_the_sdks(shots, nr, spr):
    opts = IBMRuntimeOptions(twirling_gates=True, twirling_randomizations=nr, twirling_shots_per_randomization=spr)
    ref = calculate_twirling_shots(shots, nr or "auto", spr or "auto")
    assert opts.twirl_shape(shots) == tuple(int(x) for x in ref)


def test_twirled_sampler_step_charges_the_shots_runtime_runs(fez):
    """10 shots asked with gate twirling run 64 per binding; the ledger charges exactly the SDK's count."""
    dev = IBMDevice(_profile(twirling_gates=True), fez, seed=3, emulated=True)
    model = build("rot-crx", 2, 1)
    ledger = Ledger(max_usd=1000)
    ev = CircuitEvaluator(dev, model, z_observables(2), client="a", shots=10, ledger=ledger)
    x = np.random.default_rng(0).uniform(0, 1, (2, 2))
    ev(x, np.zeros(len(model.weights)), key=JobKey("run", 0, "a", 0), round_=0)
    executed = ledger.actual.get("a")  # local mode reports no QPU time, so no actual cost: read the metadata
    assert executed is None
    rows = 2 * ev.rows_per_point()
    assert ledger.spent.shots == rows * 64  # what the ledger charged
    # what the SDK ran, from the BitArrays Runtime returned
    key = JobKey("run", 0, "a", 1)
    res = dev.run(Batch((BatchItem(ev.transpiled, model.parameters, np.zeros((rows, len(model.parameters))),
                                   tuple(z_observables(2))),), key=key), shots=10)
    assert res.metadata["usage"]["executed_shots"] == ledger.spent.shots


@pytest.mark.parametrize("level, factors", [(1, None), (2, None), (2, (1.0, 2.0, 3.0, 4.0))])
def test_estimator_step_charges_what_runtime_prepares(fez, level, factors):
    """TREX adds one calibration item per job, ZNE one copy per noise factor, both twirled: the charged
    shots equal the executions of the SDK's own ``prepare`` of the pubs the device sends."""
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.executor_estimator.prepare import prepare
    from qiskit_ibm_runtime.options_models import EstimatorOptions

    sent = []

    class Recorder:  # stands in for executor_estimator.Estimator: records what the device sends
        def __init__(self, mode, options):  # noqa: ANN001
            sent.append(options)
            self.options = options

        def run(self, pubs):  # noqa: ANN001
            sent.append(pubs)
            raise RuntimeError("recorded")

    dev = IBMDevice(_profile(resilience_level=level, zne_noise_factors=factors), fez, seed=3, estimator_cls=Recorder)
    model = build("rot-crx", 2, 1)
    ledger = Ledger(max_usd=1000)
    ev = CircuitEvaluator(dev, model, z_observables(2), client="a", shots=1000, ledger=ledger)
    with pytest.raises(Exception, match="recorded"):
        ev(np.zeros((2, 2)), np.zeros(len(model.weights)), key=JobKey("run", 0, "a", 0), round_=0)
    options, pubs = sent
    opts = EstimatorOptions(resilience_level=options["resilience_level"], default_shots=options["default_shots"])
    if "resilience" in options and "zne" in options["resilience"]:
        opts.resilience.zne.noise_factors = options["resilience"]["zne"]["noise_factors"]
    circ = pubs[0][0]
    prepared, _ = prepare(pubs, opts, backend=AerSimulator(n_qubits=circ.num_qubits))
    executions = sum(int(np.prod(getattr(i, "shape", (1,)))) for i in prepared.items) * prepared.shots
    assert ledger.spent.shots == executions


def test_mixed_shots_become_one_runtime_job_per_shot_value(fez):
    """Client-side ZNE with variance-weighted shots gives items different shots; the executor Sampler
    refuses that in one job, so the step is one Runtime job per shot value, read back as one result."""
    dev = IBMDevice(_profile(), fez, seed=5, emulated=True)
    model = build("rot-crx", 2, 1)
    zne = ZNE(fez, scale_factors=[1, 3, 5])
    ev = CircuitEvaluator(dev, model, z_observables(2), client="a", shots=200, mitigation=zne,
                          shot_allocation="variance-weighted", ledger=Ledger(max_usd=1000))
    ev.item_variance = [1.0, 2.0, 4.0]  # as after a first step: the items now get different shots
    vals, jac, info = ev(np.zeros((1, 2)), np.zeros(len(model.weights)), key=JobKey("run", 0, "a", 0), round_=0)
    assert jac is not None and np.all(np.isfinite(vals))
    shots = ev._allocate(200, ev.rows_per_point())
    assert len(set(shots)) > 1  # the step really mixed shot counts
    assert dev.runtime_jobs == len(set(shots)) and info.job_ids[0].count("|") == len(set(shots)) - 1


def test_steps_over_the_execution_limit_are_split(fez):
    """A step over limits.max_executions runs as several Runtime jobs, none over the limit, results joined."""
    base = _profile()
    prof = base.model_copy(update={"limits": base.limits.model_copy(update={"max_executions": 100})})
    dev = IBMDevice(prof, fez, seed=7, emulated=True)
    model = build("rot-crx", 2, 1)
    bindings = np.zeros((7, len(model.parameters)))
    batch = Batch((BatchItem(dev.transpile(model.circuit), model.parameters, bindings, tuple(z_observables(2))),),
                  key=JobKey("run", 0, "a", 0))
    res = dev.run(batch, shots=30)  # 7 x 30 = 210 executions: 3 rows (90) per job -> 3 jobs
    assert dev.runtime_jobs == math.ceil(7 / 3) and res.metadata["jobs"] == 3
    assert res.items[0].values.shape == (7, 2) and np.all(res.items[0].values > 0.7)  # |00>: Z near +1
    for part in dev.plan_parts(JobLayout.of(batch, 30, device=dev.name, calibration_id=fez.id)):
        assert sum(b - a for _, a, b in part) * 30 <= 100
