"""IBM Runtime device: local testing mode end to end, cloud calls against autospecced SDK fakes.

No test here opens a socket (``no_network``). Expected values come from the fake device (the
independent compact simulator), from hand-made counts, or from the SDK's own exception classes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from unittest.mock import create_autospec

import numpy as np
import pytest
from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult
from qiskit.providers import JobStatus as QiskitJobStatus
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import Batch as RuntimeBatch
from qiskit_ibm_runtime import IBMBackend, QiskitRuntimeService, RuntimeJobV2
from qiskit_ibm_runtime.api.exceptions import RequestsApiError
from qiskit_ibm_runtime.exceptions import (
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
)
from qiskit_ibm_runtime.executor_sampler import Sampler

from qflhw.calibration import snapshot as cal_mod
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import load_profile
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.factory import make_device
from qflhw.devices.ibm import IBMDevice, classify, connect, normalize_status
from qflhw.errors import ConfigError, JobFailed, TransientBackendError
from tests.helpers import TINY_SPEC

pytestmark = pytest.mark.usefixtures("no_network")  # everything here is offline

@pytest.fixture(scope="module")
def torino():
    return cal_mod.load("ibm_torino/latest")

@pytest.fixture(scope="module")
def model():
    return build("rot-crx", 2, 1)

def _batch(dev, model, bindings, obs, key=""):
    return Batch((BatchItem(dev.transpile(model.circuit), model.parameters, bindings, tuple(obs)),), key=JobKey.parse(key) if key else None)

# ------------------------------------------------------------------------------ local testing mode
def test_local_mode_matches_the_fake_device_within_shot_noise(torino):
    model = build("rot-crx", 3, 1)
    fake = make_device("fake_torino")
    dev = IBMDevice(load_profile("ibm_torino"), torino)
    assert not dev.remote
    rng = np.random.default_rng(5)
    bindings = rng.uniform(-np.pi, np.pi, (4, len(model.parameters)))
    obs = z_observables(3) + [SparsePauliOp(["XXI", "IYY"], [0.5, -0.3])]
    exact = fake.run(_batch(fake, model, bindings, obs), shots=None).items[0].values
    job = dev.submit(_batch(dev, model, bindings, obs, key="run/r0/a/s0"), shots=20000)
    res = job.result(timeout=60)
    assert job.status() == "done" and res.job_id == job.job_id and res.metadata["local"]
    item = res.items[0]
    assert item.bases == ["XXZ", "ZYY", "ZZZ"] and len(item.distributions) == 3
    np.testing.assert_allclose(item.distributions[0].sum(axis=1), 1.0)
    assert np.all(np.abs(item.values - exact) <= 4.5 * item.stderr + 1e-3)
    assert res.calibration_id == torino.id

def test_one_runtime_mode_per_run_and_one_job_per_step(torino, model):
    dev = IBMDevice(load_profile("ibm_torino"), torino)
    b = np.zeros((2, len(model.parameters)))
    for key in ("run/r0/a/s0", "run/r0/a/s1", "run/r1/a/s0"):
        dev.run(_batch(dev, model, b, z_observables(2), key=key), shots=50)
    assert dev.submissions == 3 and dev.batches_opened == 1  # rounds share the run's execution mode
    dev.run(_batch(dev, model, b, z_observables(2), key="other/r0/a/s0"), shots=50)
    assert dev.batches_opened == 2  # another run: another mode
    # parameters all zero: the state stays |00>, so Z is near +1 on both qubits (readout error only)
    res = dev.run(_batch(dev, model, b, z_observables(2), key="run/r1/a/s1"), shots=400)
    assert np.all(res.items[0].values > 0.8)
    with pytest.raises(JobFailed, match="local jobs are kept only"):
        dev.job("no-such-job")
    assert dev.find("run/r1/a/s1") is None

def test_shots_are_required(torino, model):
    dev = IBMDevice(load_profile("ibm_torino"), torino)
    with pytest.raises(ConfigError, match="shots"):
        dev.submit(_batch(dev, model, np.zeros((1, len(model.parameters))), z_observables(2)), shots=None)

def test_runtime_estimator_path_runs_locally(torino, model):
    """``[runtime] resilience_level`` switches to the executor Estimator (values, no counts)."""
    from qflhw.config.profiles import IBMRuntimeOptions

    fake = make_device("fake_torino")
    prof = load_profile("ibm_torino").model_copy(update={"runtime": IBMRuntimeOptions(resilience_level=0)})
    dev = IBMDevice(prof, torino)
    bindings = np.random.default_rng(2).uniform(-np.pi, np.pi, (3, len(model.parameters)))
    res = dev.run(_batch(dev, model, bindings, z_observables(2), key="run/r0/a/s9"), shots=8000)
    exact = fake.run(_batch(fake, model, bindings, z_observables(2)), shots=None).items[0].values
    item = res.items[0]
    assert res.metadata["primitive"] == "estimator" and item.distributions == []
    assert np.all(np.abs(item.values - exact) <= 4.5 * item.stderr + 2e-3)

# ------------------------------------------------------------------------------ status and errors
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("INITIALIZING", "queued"),
        ("QUEUED", "queued"),
        ("RUNNING", "running"),
        ("DONE", "done"),
        ("ERROR", "failed"),
        ("CANCELLED", "cancelled"),
        (QiskitJobStatus.QUEUED, "queued"),
        (QiskitJobStatus.VALIDATING, "queued"),
        (QiskitJobStatus.RUNNING, "running"),
        (QiskitJobStatus.DONE, "done"),
        (QiskitJobStatus.ERROR, "failed"),
        (QiskitJobStatus.CANCELLED, "cancelled"),
    ],
)
def test_status_normalization(raw, expected):
    assert normalize_status(raw) == expected

TOKEN = "ibmtok-PLANTED-5f1c9e"

@pytest.mark.parametrize(
    "err, fetching, expected",
    [
        (RequestsApiError("server error", 503), False, TransientBackendError),
        (RequestsApiError("slow down", 429), False, TransientBackendError),
        (RequestsApiError("connection reset", -1), False, TransientBackendError),
        (RequestsApiError("bad request", 400), False, JobFailed),
        (RequestsApiError("forbidden", 403), False, JobFailed),
        (IBMRuntimeError("fetch failed"), True, TransientBackendError),
        (RuntimeJobFailureError("job failed"), True, JobFailed),
        (RuntimeJobMaxTimeoutError("over time"), True, JobFailed),
        (RuntimeInvalidStateError("cancelled"), True, JobFailed),
        (RuntimeJobNotFound("gone"), True, JobFailed),
        (IBMInputValueError("bad input"), False, JobFailed),
        (IBMNotAuthorizedError("no"), False, JobFailed),
    ],
)
def test_error_classification_and_no_secrets(monkeypatch, err, fetching, expected):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    err.args = (f"{err.args[0]} token={TOKEN} apikey: abc123",)
    out = classify(err, "device x", fetching=fetching)
    assert type(out) is expected
    assert TOKEN not in str(out) and "abc123" not in str(out)

def test_missing_account_is_a_config_error():
    from qiskit_ibm_runtime.accounts.exceptions import AccountNotFoundError

    out = classify(AccountNotFoundError("Unable to find account."), "device x")
    assert isinstance(out, ConfigError) and "QISKIT_IBM_TOKEN" in str(out)

# ------------------------------------------------------------------------------ cloud, faked SDK
def _sampler_result(pubs, outcome: int = 0b01) -> PrimitiveResult:
    """Every shot of every binding reads ``outcome`` (bit i = register bit i)."""
    results = []
    for circ, values, shots in pubs:
        nb, nbits = values.shape[0], circ.num_clbits
        bits = np.zeros((nb, shots, nbits), dtype=bool)
        for i in range(nbits):
            bits[..., i] = (outcome >> i) & 1
        results.append(SamplerPubResult(DataBin(c=BitArray.from_bool_array(bits, order="little"), shape=(nb,)), {}))
    return PrimitiveResult(results, {})

class Cloud:
    """An IBMDevice wired to autospecced Runtime classes; jobs finish after one QUEUED poll."""

    def __init__(self, cal, tmp_path: Path, statuses=("QUEUED", "RUNNING", "DONE")):
        self.service = create_autospec(QiskitRuntimeService, instance=True)
        self.backend = create_autospec(IBMBackend, instance=True)
        self.batch_cls = create_autospec(RuntimeBatch)
        self.sampler_cls = create_autospec(Sampler)
        self.pubs: list = []
        self.jobs: list = []
        self.statuses = statuses

        def run(pubs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            job = create_autospec(RuntimeJobV2, instance=True)
            job.job_id.return_value = f"job-{len(self.jobs)}"
            job.status.side_effect = list(self.statuses) + ["DONE"] * 10
            job.result.return_value = _sampler_result(pubs)
            job.usage.return_value = 1.5  # quantum seconds the service reports
            self.pubs.append(pubs)
            self.jobs.append(job)
            return job

        self.sampler_cls.return_value.run.side_effect = run
        self.store = tmp_path / "store"
        self.device = self.make()

    def make(self) -> IBMDevice:
        return IBMDevice(
            load_profile("ibm_torino"), self.cal, backend=self.backend, service=self.service, store=self.store,
            poll_interval=0.001, batch_cls=self.batch_cls, sampler_cls=self.sampler_cls,
        )

    @property
    def cal(self):
        return cal_mod.load("ibm_torino/latest")

def test_cloud_submit_status_result(tmp_path, model):
    c = Cloud(None, tmp_path)
    dev = c.device
    assert dev.remote
    bindings = np.random.default_rng(0).uniform(size=(3, len(model.parameters)))
    obs = z_observables(2) + [SparsePauliOp("XX")]
    job = dev.submit(_batch(dev, model, bindings, obs, key="run/r0/a/s0"), shots=64)
    assert job.job_id == "job-0"
    # one Runtime batch on the backend, one sampler job holding one pub per measurement basis
    c.batch_cls.assert_called_once_with(backend=c.backend)
    kwargs = c.sampler_cls.call_args.kwargs
    assert kwargs["mode"] is c.batch_cls.return_value
    assert kwargs["options"]["default_shots"] == 64 and "qflhw" in kwargs["options"]["environment"]["job_tags"]
    assert "simulator" not in kwargs["options"]
    pubs = c.pubs[0]
    assert len(pubs) == 2  # bases XX and ZZ
    for circ, values, shots in pubs:
        assert circ.num_qubits == 133 and circ.num_clbits == 2 and shots == 64
        assert values.shape == (3, circ.num_parameters)
    assert job.status() == "queued"
    res = job.result(timeout=5)
    # every shot reads bit0 = 1, bit1 = 0: Z0 = -1, Z1 = +1; in the XX basis the parity is odd: XX = -1
    np.testing.assert_allclose(res.items[0].values, np.tile([-1.0, 1.0, -1.0], (3, 1)))
    np.testing.assert_allclose(res.items[0].stderr, 0.0)
    assert res.metadata == {"provider": "ibm", "primitive": "sampler", "local": False, "emulated": False, "jobs": 1,
                            "usage": {"executed_shots": 2 * 3 * 64, "quantum_seconds": 1.5}}

def test_cloud_fetch_by_id_from_another_process(tmp_path, model):
    c = Cloud(None, tmp_path)
    bindings = np.zeros((2, len(model.parameters)))
    first = c.device.submit(_batch(c.device, model, bindings, z_observables(2), key="run/r0/a/s0"), shots=10)
    later = c.make()  # a new device object on the same store: what `qflhw resume` builds
    c.service.job.return_value = c.jobs[0]
    again = later.job(first.job_id)
    c.service.job.assert_called_once_with(first.job_id)
    np.testing.assert_allclose(again.result().items[0].values, [[-1.0, 1.0]] * 2)
    with pytest.raises(JobFailed, match="no stored layout"):
        later.job("job-unknown")
    # found by its idempotency-key tag after a crash between submit and journaling
    c.service.jobs.return_value = [c.jobs[0]]
    found = later.find("run/r0/a/s0")
    assert found is not None and found.job_id == "job-0"
    assert "qflhw-key-" in c.service.jobs.call_args.kwargs["job_tags"][1]
    c.service.jobs.return_value = []
    assert later.find("run/r0/a/s0") is None

@pytest.mark.parametrize(
    "where, err, expected",
    [
        ("run", RequestsApiError("busy", 503), TransientBackendError),
        ("run", RequestsApiError("throttled", 429), TransientBackendError),
        ("run", IBMInputValueError("not ISA"), JobFailed),
        ("run", IBMNotAuthorizedError("no access"), JobFailed),
        ("result", RuntimeJobFailureError("failed on device"), JobFailed),
        ("result", RuntimeJobMaxTimeoutError("over max time"), JobFailed),
        ("result", RuntimeInvalidStateError("cancelled"), JobFailed),
        ("status", IBMRuntimeError("status fetch failed"), TransientBackendError),
        ("status", RequestsApiError("gateway", 502), TransientBackendError),
        ("fetch", IBMRuntimeError("fetch failed"), TransientBackendError),
        ("fetch", RuntimeJobNotFound("no such job"), JobFailed),
    ],
)
def test_cloud_error_classes(tmp_path, model, where, err, expected):
    c = Cloud(None, tmp_path)
    batch = _batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2), key="run/r0/a/s0")
    if where == "run":
        c.sampler_cls.return_value.run.side_effect = err
        with pytest.raises(expected):
            c.device.submit(batch, shots=10)
        return
    job = c.device.submit(batch, shots=10)
    if where == "fetch":
        c.service.job.side_effect = err
        with pytest.raises(expected):
            c.make().job(job.job_id)
        return
    if where == "status":
        c.jobs[0].status.side_effect = err
    else:
        c.jobs[0].result.side_effect = err
    with pytest.raises(expected) as info:
        job.result(timeout=5)
    assert info.value.__cause__ is err

def test_cloud_cancelled_failed_and_wait_timeout(tmp_path, model):
    batch = lambda dev: _batch(dev, model, np.zeros((1, len(model.parameters))), z_observables(2), key="run/r0/a/s0")  # noqa: E731
    c = Cloud(None, tmp_path, statuses=("CANCELLED",))
    with pytest.raises(JobFailed, match="cancelled"):
        c.device.submit(batch(c.device), shots=5).result(timeout=5)
    c = Cloud(None, tmp_path, statuses=("QUEUED",) * 10_000)
    with pytest.raises(TransientBackendError, match="still queued"):
        c.device.submit(batch(c.device), shots=5).result(timeout=0.05)

def test_connect_saves_a_live_snapshot_once(tmp_path):
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    real = FakeTorino()
    service = create_autospec(QiskitRuntimeService, instance=True)
    backend = create_autospec(IBMBackend, instance=True)
    backend.target, backend.name, backend.backend_version = real.target, "ibm_torino", "1.0"
    backend.properties.return_value = real.properties()
    backend.dt = real.dt
    service.backend.return_value = backend
    root = tmp_path / "calibration"
    dev = connect(load_profile("ibm_torino"), service=service, calibration_root=root)
    files = list(root.rglob("*.json"))
    assert len(files) == 1 and dev.calibration.provenance.kind == "live" and dev.remote
    before = files[0].read_bytes()
    dev2 = connect(load_profile("ibm_torino"), service=service, calibration_root=root)  # same day: reused
    assert list(root.rglob("*.json")) == files and files[0].read_bytes() == before
    assert dev2.calibration.id == dev.calibration.id
    service.backend.assert_called_with("ibm_torino")

# ------------------------------------------------------------------------------ a federated round
TINY_IBM = (
    TINY_SPEC.replace('name = "tiny"', 'name = "ibm-count"')
    .replace("shots = 200", "shots = 64")
    .replace('"fake_fez"', '"ibm_fez"')
    .replace('"fake_kyiv"', '"ibm_torino"')
    + "\n[budget]\nmax_usd = 10000.0\n"
)

def test_federation_issues_one_job_per_client_per_step(tmp_path):
    """Client a runs in local testing mode, client b against the faked cloud: 2 steps x 2 rounds each."""
    from qflhw.config.spec import parse_spec
    from qflhw.federation.loop import Federation

    spec = parse_spec(tomllib.loads(TINY_IBM))
    local = IBMDevice(load_profile("ibm_fez"), cal_mod.load("ibm_fez/latest"), seed=1)
    cloud = Cloud(None, tmp_path)
    fed = Federation(spec, tmp_path / "run", devices={"a": local, "b": cloud.device}, progress=False)
    summary = fed.run()
    steps = 2 * 2  # ceil(8 rows / batch 4) x 2 rounds
    assert local.submissions == steps and local.batches_opened == 1
    assert cloud.sampler_cls.return_value.run.call_count == steps == cloud.device.submissions
    assert cloud.batch_cls.call_count == 1  # one Runtime Batch per run, not per round
    # it is closed by Federation.run's finally
    assert cloud.batch_cls.return_value.close.call_count == 1 and cloud.device._ctx is None
    assert summary["total_jobs"] == 2 * steps
    assert summary["clients"]["a"]["rounds_ok"] == 2 and summary["clients"]["b"]["rounds_ok"] == 2
    assert summary["total_cost_usd"] > 0
