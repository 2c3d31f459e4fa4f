"""Amazon Braket device: local simulator/emulator end to end, cloud calls against autospecced fakes.

No test here opens a socket (``no_network``). References: the fake device (compact Aer
simulation), noiseless statevectors, hand-made measurement records, the SDK's own error types.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from unittest.mock import Mock, create_autospec

import numpy as np
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from braket.aws import AwsDevice, AwsQuantumTask
from braket.devices import LocalSimulator
from braket.program_sets import ProgramSet
from braket.tasks.program_set_quantum_task_result import CompositeEntry, MeasuredEntry, ProgramSetQuantumTaskResult
from qiskit.quantum_info import SparsePauliOp, Statevector

from qflhw.calibration import snapshot as cal_mod
from qflhw.calibration.braket_import import load_braket_properties
from qflhw.calibration.published import properties_path
from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import load_profile
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.devices.braket import BraketDevice, classify, connect, normalize_status
from qflhw.devices.factory import make_device
from qflhw.errors import ConfigError, JobFailed, TransientBackendError

pytestmark = pytest.mark.usefixtures("no_network")  # everything here is offline

def _caps(twin: str):
    return load_braket_properties(properties_path(twin).read_text())

@pytest.fixture(scope="module")
def model():
    return build("rot-crx", 2, 1)

def _batch(dev, model, bindings, obs, key=""):
    return Batch((BatchItem(dev.transpile(model.circuit), model.parameters, bindings, tuple(obs)),), key=JobKey.parse(key) if key else None)

def _ideal(model, bindings, obs):
    return np.array(
        [[Statevector(model.circuit.assign_parameters(dict(zip(model.parameters, b)))).expectation_value(o).real
          for o in obs] for b in bindings]
    )

# ------------------------------------------------------------------------------ local end to end
def test_local_emulator_matches_the_fake_device(model):
    """IQM Garnet's LocalEmulator (Braket's own noise model from the same properties JSON) against
    the fake twin (Aer noise from the snapshot made of that JSON): equal within shot noise plus the
    two noise models' difference (Braket: depolarizing only; Aer: + thermal relaxation)."""
    from braket.emulation.local_emulator import LocalEmulator

    fake = make_device("fake_iqm_garnet")
    dev = BraketDevice(load_profile("iqm_garnet"), fake.calibration, device=LocalEmulator.from_device_properties(_caps("iqm_garnet")))
    assert dev.program_sets and not dev.remote
    bindings = np.random.default_rng(1).uniform(-np.pi, np.pi, (2, len(model.parameters)))
    exact = fake.run(_batch(fake, model, bindings, z_observables(2)), shots=None).items[0].values
    job = dev.submit(_batch(dev, model, bindings, z_observables(2), key="run/r0/a/s0"), shots=4000)
    res = job.result(timeout=120)
    assert job.status() == "done" and dev.tasks_sent == 1 and res.metadata["tasks"] == 1
    assert np.all(np.abs(res.items[0].values - exact) <= 4 * res.items[0].stderr + 0.05)

@pytest.mark.parametrize("profile, twin, gates", [
    ("ionq_forte-1", "ionq_forte-1", {"gpi", "gpi2", "zz"}),  # Forte: ZZ, never MS
    ("rigetti_cepheus-1-108q", "rigetti_cepheus-1-108q", {"rx", "rz", "iswap"}),
    ("iqm_garnet", "iqm_garnet", {"prx", "cz"}),
    ("iqm_emerald", "iqm_emerald", {"prx", "cz"}),
])
def test_native_verbatim_programs_are_exact_on_a_noiseless_simulator(model, profile, twin, gates):
    """Verbatim boxes of native gates only, on physical qubit labels; a noiseless simulator then
    reproduces the statevector expectations (X, Y and Z bases) within shot noise."""
    cal = cal_mod.load(f"{twin}/latest")
    dev = BraketDevice(load_profile(profile), cal, device=LocalSimulator("braket_sv"))
    bindings = np.random.default_rng(3).uniform(-np.pi, np.pi, (2, len(model.parameters)))
    obs = [SparsePauliOp("ZZ"), SparsePauliOp(["XY", "ZI"], [0.7, 0.3])]
    batch = _batch(dev, model, bindings, obs, key="run/r0/a/s9")
    for circ, _ in dev.executables(batch):
        src = circ.to_ir().source
        assert "#pragma braket verbatim" in src
        body = src.split("box{")[1].split("}")[0]
        used = set(re.findall(r"^\s*([a-z0-9_]+)\s*[\(\$]", body, flags=re.M))
        assert used <= gates, used
        labels = {int(q) for q in re.findall(r"\$(\d+)", src)}
        assert labels <= set(cal.labels)
    res = dev.run(batch, shots=4000)
    assert np.all(np.abs(res.items[0].values - _ideal(model, bindings, obs)) <= 4.5 * res.items[0].stderr + 1e-3)

# ------------------------------------------------------------------------------ status and errors
@pytest.mark.parametrize("raw, expected", [
    ("CREATED", "queued"), ("QUEUED", "queued"), ("RUNNING", "running"), ("COMPLETED", "done"),
    ("FAILED", "failed"), ("CANCELLING", "cancelled"), ("CANCELLED", "cancelled"),
])
def test_status_normalization(raw, expected):
    assert normalize_status(raw) == expected

def _client_error(code: str, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateQuantumTask")

SECRET = "aws-secret-PLANTED-9d2b"

@pytest.mark.parametrize("err, expected", [
    (_client_error("ThrottlingException"), TransientBackendError),
    (_client_error("ServiceQuotaExceededException"), TransientBackendError),
    (_client_error("InternalServiceException"), TransientBackendError),
    (_client_error("DeviceOfflineException"), TransientBackendError),
    (EndpointConnectionError(endpoint_url="https://braket.example"), TransientBackendError),
    (_client_error("ValidationException"), JobFailed),
    (_client_error("AccessDeniedException"), JobFailed),
    (_client_error("DeviceRetiredException"), JobFailed),
    (_client_error("ResourceNotFoundException"), JobFailed),
    (NoCredentialsError(), ConfigError),
])
def test_error_classification_and_no_secrets(monkeypatch, err, expected):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    if isinstance(err, ClientError):
        err = ClientError({"Error": {"Code": err.response["Error"]["Code"], "Message": f"key {SECRET} AKIAPLANTED000000001"}},
                          "CreateQuantumTask")
    out = classify(err, "device x")
    assert type(out) is expected
    assert SECRET not in str(out) and "AKIAPLANTED000000001" not in str(out)

# ------------------------------------------------------------------------------ cloud, faked SDK
class Cloud:
    """A BraketDevice on an autospecced AwsDevice whose tasks read a fixed outcome on every shot.

    Every shot measures 1 on the label holding logical qubit 0 and 0 elsewhere.
    """

    def __init__(self, tmp_path: Path, *, caps=None, profile=None, states=("QUEUED", "RUNNING", "COMPLETED")):
        self.aws = create_autospec(AwsDevice, instance=True)
        self.aws.properties = caps or _caps("iqm_garnet")
        self.aws.status = "ONLINE"
        self.tasks: list = []
        self.states = states
        self.profile = profile or load_profile("iqm_garnet")
        self.cal = cal_mod.load("iqm_garnet/latest")
        self.store = tmp_path / "store"
        self.aws.run.side_effect = self._run
        self.aws.run_batch.side_effect = self._run_batch
        self.device = self.make()

    def make(self, task_factory=None) -> BraketDevice:
        return BraketDevice(self.profile, self.cal, device=self.aws, store=self.store, poll_interval=0.001,
                            task_factory=task_factory)

    def _entry(self, circ) -> Mock:  # noqa: ANN001
        measured = sorted(int(q) for q in circ.qubits)
        one = self.device.labels[self.first_physical]
        one = one if one in measured else measured[0]  # tests that check values set first_physical
        shots = 7
        m = np.zeros((shots, len(measured)), dtype=int)
        m[:, measured.index(one)] = 1
        return Mock(spec=MeasuredEntry, measurements=m, measured_qubits=measured)

    def _task(self, result) -> Mock:  # noqa: ANN001
        task = create_autospec(AwsQuantumTask, instance=True)
        task.id = f"arn:aws:braket:eu-north-1:123:quantum-task/t{len(self.tasks)}"
        task.state.side_effect = list(self.states) + ["COMPLETED"] * 10
        task.result.return_value = result
        task.metadata.return_value = {"status": "FAILED", "failureReason": f"bad circuit {SECRET}"}
        self.tasks.append(task)
        return task

    def _run(self, ps, shots=None, **kwargs):  # noqa: ANN001, ANN003
        self.kwargs = kwargs
        if not isinstance(ps, ProgramSet):  # one circuit: a task of its own
            e = self._entry(ps)
            return self._task(Mock(measurements=e.measurements, measured_qubits=e.measured_qubits,
                                   spec=["measurements", "measured_qubits"]))
        assert shots == ps.total_shots
        entries = [Mock(spec=CompositeEntry, entries=[self._entry(c)]) for c in ps.entries]
        self.kwargs = kwargs
        return self._task(Mock(spec=ProgramSetQuantumTaskResult, entries=entries))

    def _run_batch(self, circuits, shots=None, **kwargs):  # noqa: ANN001, ANN003
        batch = Mock()
        batch.tasks = [self._task(Mock(measurements=self._entry(c).measurements,
                                       measured_qubits=self._entry(c).measured_qubits, spec=["measurements", "measured_qubits"]))
                       for c in circuits]
        return batch

    first_physical = 0

def test_cloud_one_program_set_task_per_batch(tmp_path, model):
    c = Cloud(tmp_path)
    dev = c.device
    assert dev.remote and dev.program_sets
    batch = _batch(dev, model, np.zeros((3, len(model.parameters))), z_observables(2) + [SparsePauliOp("XX")], key="run/r0/a/s0")
    c.first_physical = batch.items[0].circuit.final_physical[0]
    job = dev.submit(batch, shots=7)
    assert c.aws.run.call_count == 1 and len(c.tasks) == 1
    ps = c.aws.run.call_args.args[0]
    assert ps.total_executables == 3 * 2 and ps.shots_per_executable == 7  # bindings x bases
    assert c.kwargs["tags"]["qflhw"] == "1" and len(c.kwargs["tags"]["qflhw-key"]) == 24
    assert job.job_id == c.tasks[0].id and job.status() == "queued"
    res = job.result(timeout=5)
    # logical qubit 0 always reads 1: Z0 = -1, Z1 = +1, XX parity odd = -1
    np.testing.assert_allclose(res.items[0].values, np.tile([-1.0, 1.0, -1.0], (3, 1)))
    assert res.metadata == {"provider": "braket", "tasks": 1, "local": False, "emulated": False,
                            "usage": {"tasks": 1, "shots": 0, "executables": 6}}  # the mock reports no shots

def test_cloud_fetch_by_task_arn_from_another_process(tmp_path, model):
    c = Cloud(tmp_path)
    batch = _batch(c.device, model, np.zeros((2, len(model.parameters))), z_observables(2), key="run/r0/a/s0")
    c.first_physical = batch.items[0].circuit.final_physical[0]
    first = c.device.submit(batch, shots=7)
    factory = create_autospec(AwsQuantumTask)
    factory.return_value = c.tasks[0]
    later = c.make(task_factory=factory)
    again = later.job(first.job_id)
    factory.assert_called_once_with(c.tasks[0].id)
    np.testing.assert_allclose(again.result().items[0].values, [[-1.0, 1.0]] * 2)
    with pytest.raises(JobFailed, match="no stored layout"):
        later.job("arn:aws:braket:eu-north-1:123:quantum-task/unknown")

def test_device_without_program_sets_runs_a_batch_of_tasks(tmp_path, model):
    caps = _caps("iqm_garnet").copy(deep=True)
    del caps.action["braket.ir.openqasm.program_set"]
    with pytest.raises(ConfigError, match="max_circuits = 1"):
        Cloud(tmp_path, caps=caps)
    garnet = load_profile("iqm_garnet")
    prof = garnet.model_copy(update={"limits": garnet.limits.model_copy(update={"max_circuits": 1})})
    c = Cloud(tmp_path, caps=caps, profile=prof)
    batch = _batch(c.device, model, np.zeros((2, len(model.parameters))), z_observables(2), key="run/r0/a/s0")
    c.first_physical = batch.items[0].circuit.final_physical[0]
    job = c.device.submit(batch, shots=7)
    assert c.aws.run.call_count == 2 and len(c.tasks) == 2 and job.job_id.count("|") == 1  # one task each
    np.testing.assert_allclose(job.result().items[0].values, [[-1.0, 1.0]] * 2)

def test_the_devices_total_shot_limit_splits_a_step_and_the_ledger_counts_the_tasks(tmp_path, model):
    """maximumTotalShots = 10 (read from the device): 3 executables x 7 shots are 3 one-executable
    tasks, and jobs_needed (what the ledger charges task fees for) says 3 before anything is sent."""
    caps = _caps("iqm_garnet").copy(deep=True)
    caps.action["braket.ir.openqasm.program_set"].maximumTotalShots = 10
    c = Cloud(tmp_path, caps=caps)
    batch = _batch(c.device, model, np.zeros((3, len(model.parameters))), z_observables(2), key="run/r0/a/s9")
    assert c.device.jobs_needed(batch, 7) == 3
    job = c.device.submit(batch, shots=7)
    assert c.aws.run.call_count == 3 and job.job_id.count("|") == 2
    with pytest.raises(ConfigError, match="exceed the 10 shots"):  # a single circuit over the limit: refused unsent
        c.device.submit(_batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2), key="run/r0/a/s8"), 11)
    assert c.aws.run.call_count == 3

@pytest.mark.parametrize("where, err, expected", [
    ("run", _client_error("ThrottlingException"), TransientBackendError),
    ("run", _client_error("DeviceOfflineException"), TransientBackendError),
    ("run", _client_error("ValidationException"), JobFailed),
    ("state", _client_error("InternalServiceException"), TransientBackendError),
    ("result", _client_error("AccessDeniedException"), JobFailed),
])
def test_cloud_error_classes(tmp_path, model, where, err, expected):
    c = Cloud(tmp_path)
    batch = _batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2), key="run/r0/a/s9")
    if where == "run":
        c.aws.run.side_effect = err
        with pytest.raises(expected):
            c.device.submit(batch, shots=7)
        return
    job = c.device.submit(batch, shots=7)
    getattr(c.tasks[0], where).side_effect = err
    with pytest.raises(expected) as info:
        job.result(timeout=5)
    assert info.value.__cause__ is err

@pytest.mark.parametrize("states, match", [(("FAILED",), "failed: bad circuit"), (("CANCELLED",), "cancelled")])
def test_failed_and_cancelled_tasks_are_permanent(tmp_path, model, monkeypatch, states, match):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    c = Cloud(tmp_path, states=states)
    job = c.device.submit(_batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2)), shots=7)
    with pytest.raises(JobFailed, match=match) as info:
        job.result(timeout=5)
    assert SECRET not in str(info.value)  # the task's failure reason is scrubbed

def test_no_result_and_wait_timeout(tmp_path, model, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    c = Cloud(tmp_path)
    job = c.device.submit(_batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2)), shots=7)
    c.tasks[0].result.return_value = None  # the SDK's "no result"
    with pytest.raises(JobFailed, match="no result") as info:
        job.result(timeout=5)
    assert SECRET not in str(info.value)
    c = Cloud(tmp_path, states=("QUEUED",) * 10_000)
    job = c.device.submit(_batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2)), shots=7)
    with pytest.raises(TransientBackendError, match="still queued"):
        job.result(timeout=0.05)

def test_connect_snapshots_live_properties_and_refuses_retired(tmp_path):
    aws = create_autospec(AwsDevice, instance=True)
    aws.properties, aws.status = _caps("iqm_garnet"), "ONLINE"
    root = tmp_path / "calibration"
    dev = connect(load_profile("iqm_garnet"), device=aws, calibration_root=root)
    files = list(root.rglob("*.json"))
    assert len(files) == 1 and files[0].parent.name == "iqm_garnet" and dev.calibration.provenance.kind == "live"
    before = files[0].read_bytes()
    dev2 = connect(load_profile("iqm_garnet"), device=aws, calibration_root=root)
    assert files[0].read_bytes() == before and dev2.calibration.id == dev.calibration.id
    aws.status = "RETIRED"
    with pytest.raises(ConfigError, match="retired"):
        connect(load_profile("iqm_garnet"), device=aws, calibration_root=root)

TINY_BRAKET = """
name = "braket-count"
seed = 3
rounds = 2

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
learning_rate = 0.1
shots = 7

[budget]
max_usd = 1000.0

[[clients]]
name = "a"
device = "iqm_garnet"
"""

def test_federation_issues_one_task_per_client_per_step(tmp_path):
    from qflhw.config.spec import parse_spec
    from qflhw.federation.loop import Federation

    spec = parse_spec(tomllib.loads(TINY_BRAKET))
    c = Cloud(tmp_path)
    fed = Federation(spec, tmp_path / "run", devices={"a": c.device}, progress=False)
    c.first_physical = fed.clients[0].evaluator.transpiled.final_physical[0]
    summary = fed.run()
    steps = 2 * 2  # ceil(6 rows / batch 4) x 2 rounds
    assert c.aws.run.call_count == steps == len(c.tasks) == c.device.submissions
    assert summary["total_jobs"] == steps and summary["clients"]["a"]["rounds_ok"] == 2
    # hand-computed price: rows (4 + 2) x (1 + 2 x 4 weights) x 7 shots per round, $0.30 per task
    shots = (4 + 2) * 9 * 7 * 2
    assert summary["total_shots"] == shots
    assert summary["total_cost_usd"] == pytest.approx(steps * 0.30 + shots * 0.00145)

def test_mixed_shots_are_one_task_per_shot_value_and_charged_so(tmp_path, model):
    """Client-side ZNE with variance-weighted shots: items with different shots become one program
    set per shot value, and the ledger charged exactly those task fees before sending."""
    from qflhw.execution.budget import Ledger
    from qflhw.execution.evaluator import CircuitEvaluator
    from qflhw.execution.mitigation import ZNE

    c = Cloud(tmp_path)
    ledger = Ledger(max_usd=10_000)
    ev = CircuitEvaluator(c.device, model, z_observables(2), client="a", shots=7, ledger=ledger,
                          mitigation=ZNE(c.device.calibration, scale_factors=[1, 3, 5]), shot_allocation="variance-weighted")
    ev.item_variance = [1.0, 2.0, 4.0]
    shots = ev._allocate(7, ev.rows_per_point())
    assert len(set(shots)) > 1  # the step mixes shot counts
    c.first_physical = ev.transpiled.final_physical[0]
    ev(np.zeros((1, 2)), np.zeros(len(model.weights)), key=JobKey("run", 0, "a", 0), round_=0)
    assert c.aws.run.call_count == len(set(shots)) == ledger.spent.tasks
    per_task = {ps.shots_per_executable for ps in (call.args[0] for call in c.aws.run.call_args_list)}
    assert per_task == set(shots)


def test_runner_reports_each_state_change_with_the_queue_position(tmp_path, model):
    """The journaled runner follows a cloud task QUEUED -> RUNNING -> COMPLETED and logs each change
    once, with the position Braket's ``AwsQuantumTask.queue_position()`` reports while it is queued."""
    from braket.aws.queue_information import QuantumTaskQueueInfo, QueueType

    from qflhw.execution.events import EventLog, read_events
    from qflhw.execution.journal import Journal
    from qflhw.execution.retries import JournaledRunner

    c = Cloud(tmp_path, states=("QUEUED", "QUEUED", "QUEUED", "RUNNING", "RUNNING", "COMPLETED"))
    real_task = c._task

    def task_with_queue(result):  # noqa: ANN001, ANN202
        task = real_task(result)
        task.queue_position.return_value = QuantumTaskQueueInfo(queue_type=QueueType.NORMAL, queue_position="3")
        return task

    c._task = task_with_queue
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal, events = Journal(run_dir), EventLog(run_dir)
    runner = JournaledRunner(journal, events=events)
    batch = _batch(c.device, model, np.zeros((1, len(model.parameters))), z_observables(2), key="run/r0/a/s0")
    runner(c.device, batch, 7, lambda: None)
    journal.close()
    events.close()
    log = read_events(run_dir / "events.jsonl")
    assert [e["kind"] for e in log] == ["submit", "state", "state", "state", "result"]
    assert [(e["state"], e.get("queue_position")) for e in log if e["kind"] == "state"] == [
        ("queued", "3"), ("running", None), ("done", None)]
    assert {e["job_id"] for e in log} == {c.tasks[0].id}
    c.tasks[0].queue_position.assert_called_once()  # asked while queued, not on every poll
