"""Never paying twice, at the transport boundary: autospecced fakes of the real SDK classes.

Each test ends by counting the jobs the fake *provider* holds per idempotency key (its own
record of what it created, read from the tags the device sent): exactly one per key and part.

* a submission that times out after the provider created the job is adopted on the retry;
* a crash between sending and journaling the job id is adopted on resume (a new process: new
  device and runner objects on the same journal and layout store);
* a step that needed several tasks and failed part-way re-sends only the missing parts;
* two runs of the same spec (same keys, different nonces) never adopt each other's jobs.
"""

from __future__ import annotations

from collections import Counter
from unittest.mock import Mock, create_autospec

import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError, ReadTimeoutError
from braket.aws import AwsSession

from qflhw.circuits.ansatz import build, z_observables
from qflhw.config.profiles import load_profile
from qflhw.devices.base import Batch, BatchItem, JobKey
from qflhw.execution.journal import Journal
from qflhw.execution.retries import JournaledRunner
from tests.unit.devices.test_braket import Cloud as BraketCloud
from tests.unit.devices.test_braket import _caps
from tests.unit.devices.test_ibm import Cloud as IBMCloud

pytestmark = pytest.mark.usefixtures("no_network")

KEY = JobKey("spec-seed1", 0, "a", 0)


@pytest.fixture(scope="module")
def model():
    return build("rot-crx", 2, 1)


def _batch(dev, model, rows=2, key=KEY):  # noqa: ANN001
    return Batch((BatchItem(dev.transpile(model.circuit), model.parameters, np.zeros((rows, len(model.parameters))),
                            tuple(z_observables(2))),), key=key)


def _runner(journal: Journal) -> JournaledRunner:
    return JournaledRunner(journal, retries=3, backoff_initial=0.0, backoff_max=0.0, job_timeout=5, sleep=lambda s: None)


# ------------------------------------------------------------------------------ IBM
class IBMProvider(IBMCloud):
    """The faked Runtime service keeps every job it created, with its tags; ``service.jobs`` filters by tags."""

    def __init__(self, cal, tmp_path, fail_after_create=0, fail_before_create=0):  # noqa: ANN001
        super().__init__(cal, tmp_path)
        self.fail_after_create = fail_after_create
        self.fail_before_create = fail_before_create
        created = self.sampler_cls.return_value.run.side_effect
        self.options: list[dict] = []

        def sampler(mode=None, options=None):  # noqa: ANN001
            self.options.append(options)
            return self.sampler_cls.return_value

        def run(pubs, *a, **k):  # noqa: ANN001, ANN002, ANN003
            if self.fail_before_create:
                self.fail_before_create -= 1
                raise requests.exceptions.ConnectionError("connection reset")
            job = created(pubs)
            job.tags = list(self.options[-1]["environment"]["job_tags"])
            if self.fail_after_create:  # the service created the job, the response never arrived
                self.fail_after_create -= 1
                raise requests.exceptions.ReadTimeout("read timed out")
            return job

        self.sampler_cls.side_effect = sampler
        self.sampler_cls.return_value.run.side_effect = run
        self.service.jobs.side_effect = lambda job_tags=(), **kw: [j for j in self.jobs if set(job_tags) <= set(j.tags)]

    def per_key(self) -> Counter:
        return Counter((next(t for t in j.tags if t.startswith("qflhw-key-")),
                        next(t for t in j.tags if t.startswith("qflhw-part-"))) for j in self.jobs)


def test_ibm_submit_timing_out_after_the_job_was_created_is_adopted(tmp_path, model):
    p = IBMProvider(None, tmp_path, fail_after_create=1)
    journal = Journal(tmp_path)
    res = _runner(journal)(p.device, _batch(p.device, model), 10, lambda: None)
    assert res.items[0].values.shape == (2, 2)
    assert len(p.jobs) == 1 and set(p.per_key().values()) == {1}
    assert [e[0] for e in journal.events()].count("adopted") == 1


def test_ibm_crash_between_submit_and_journal_is_adopted_on_resume(tmp_path, model):
    p = IBMProvider(None, tmp_path)
    journal = Journal(tmp_path)
    nonce = journal.nonce()
    journal.pending(str(KEY), "a", p.device.name)
    p.device.submit(Batch(_batch(p.device, model).items, key=KEY, nonce=nonce), 10)  # ... and the process dies here
    journal.close()
    later_journal = Journal(tmp_path)  # `qflhw resume`: new process, same run directory and layout store
    later = p.make()
    assert later_journal.nonce() == nonce
    charges = []
    res = _runner(later_journal)(later, _batch(later, model), 10, lambda: charges.append(1))
    assert res.items[0].values.shape == (2, 2) and charges == [1]  # re-entered in the ledger once, not re-sent
    assert len(p.jobs) == 1 and later.submissions == 0


def test_ibm_partial_failure_re_sends_only_the_missing_parts(tmp_path, model):
    """Mixed shots: one Runtime job per shot value; the second fails before it is created, then succeeds."""
    p = IBMProvider(None, tmp_path)
    dev = p.device
    tc = dev.transpile(model.circuit)
    items = tuple(BatchItem(tc, model.parameters, np.zeros((2, len(model.parameters))), tuple(z_observables(2)), shots=s)
                  for s in (10, 20, 30))
    state = {"calls": 0}
    run = p.sampler_cls.return_value.run.side_effect

    def flaky(pubs, *a, **k):  # noqa: ANN001, ANN002, ANN003
        state["calls"] += 1
        if state["calls"] == 2:
            raise requests.exceptions.ConnectionError("reset while sending part 2")
        return run(pubs)

    p.sampler_cls.return_value.run.side_effect = flaky
    res = _runner(Journal(tmp_path))(dev, Batch(items, key=KEY), 10, lambda: None)
    assert len(res.items) == 3 and len(p.jobs) == 3
    assert set(p.per_key().values()) == {1} and len(p.per_key()) == 3  # parts 0, 1, 2 once each


def test_ibm_two_runs_of_one_spec_never_share_jobs(tmp_path, model):
    p = IBMProvider(None, tmp_path)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = Journal(tmp_path / "one")
    _runner(first)(p.device, _batch(p.device, model), 10, lambda: None)
    second = Journal(tmp_path / "two")  # same spec, same keys, another run directory
    assert second.nonce() != first.nonce()
    second.pending(str(KEY), "a", p.device.name)  # as if it had crashed before journaling an id
    _runner(second)(p.make(), _batch(p.device, model), 10, lambda: None)
    assert len(p.jobs) == 2  # the second run sent its own job instead of adopting the first run's


# ------------------------------------------------------------------------------ Braket
class BraketProvider(BraketCloud):
    """The faked Braket service keeps every task with its tags; SearchQuantumTasks has no tag filter."""

    def __init__(self, tmp_path, caps=None, profile=None):  # noqa: ANN001
        super().__init__(tmp_path, caps=caps, profile=profile)
        self.failures: list = []  # per run call: None, or ("before" | "after", exception)
        self.created: list[tuple[str, dict]] = []
        self.searches: list[dict] = []
        make = self.aws.run.side_effect

        def run(spec, shots=None, **kwargs):  # noqa: ANN001, ANN003
            fail = self.failures.pop(0) if self.failures else None
            if fail and fail[0] == "before":
                raise fail[1]
            task = make(spec, shots=shots, **kwargs)
            self.created.append((task.id, dict(kwargs.get("tags", {}))))
            if fail:
                raise fail[1]
            return task

        self.aws.run.side_effect = run
        session = create_autospec(AwsSession, instance=True)
        session.braket_client = Mock(spec=["search_quantum_tasks"])

        def search(filters=(), maxResults=100, nextToken=None):  # noqa: ANN001, N803
            self.searches.append({f["name"]: f for f in filters})
            assert {f["name"] for f in filters} <= {"deviceArn", "createdAt", "status", "quantumTaskArn", "jobArn"}
            return {"quantumTasks": [{"quantumTaskArn": arn, "status": "QUEUED", "tags": tags} for arn, tags in self.created]}

        session.braket_client.search_quantum_tasks.side_effect = search
        self.aws.aws_session = session
        tasks = {}

        def factory(arn):  # noqa: ANN001
            return tasks[arn]

        self.task_factory = factory
        self.by_arn = tasks
        orig_task = self._task

        def _task(result):  # noqa: ANN001
            t = orig_task(result)
            tasks[t.id] = t
            return t

        self._task = _task
        self.device = self.make(task_factory=factory)

    def per_key(self) -> Counter:
        return Counter((tags["qflhw-key"], tags["qflhw-part"]) for _, tags in self.created)


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "CreateQuantumTask")


def test_braket_submit_timing_out_after_the_task_was_created_is_adopted(tmp_path, model):
    p = BraketProvider(tmp_path)
    p.failures = [("after", ReadTimeoutError(endpoint_url="https://braket"))]
    journal = Journal(tmp_path)
    res = _runner(journal)(p.device, _batch(p.device, model), 7, lambda: None)
    assert res.items[0].values.shape == (2, 2)
    assert len(p.created) == 1 and set(p.per_key().values()) == {1}
    assert p.searches and p.searches[0]["deviceArn"]["values"] == [p.profile.device]  # filtered by ARN, tags matched here
    assert p.created[0][1]["qflhw-run"] == journal.nonce()


def test_braket_crash_between_submit_and_journal_is_adopted_on_resume(tmp_path, model):
    p = BraketProvider(tmp_path)
    journal = Journal(tmp_path)
    journal.pending(str(KEY), "a", p.device.name)
    p.device.submit(Batch(_batch(p.device, model).items, key=KEY, nonce=journal.nonce()), 7)  # ... crash
    journal.close()
    later = p.make(task_factory=p.task_factory)
    res = _runner(Journal(tmp_path))(later, _batch(later, model), 7, lambda: None)
    assert res.items[0].values.shape == (2, 2) and len(p.created) == 1 and later.tasks_sent == 0


def test_braket_partial_failure_re_sends_only_the_missing_tasks(tmp_path, model):
    """Program sets of at most 2 executables (the device's own limit): 6 executables are 3 tasks;
    the second fails, the retry sends only it and the third."""
    caps = _caps("iqm_garnet").copy(deep=True)
    caps.action["braket.ir.openqasm.program_set"].maximumExecutables = 2
    garnet = load_profile("iqm_garnet")
    prof = garnet.model_copy(update={"limits": garnet.limits.model_copy(update={"max_circuits": 2})})
    p = BraketProvider(tmp_path, caps=caps, profile=prof)
    p.failures = [None, ("before", _throttled())]
    res = _runner(Journal(tmp_path))(p.device, _batch(p.device, model, rows=6), 7, lambda: None)
    assert res.items[0].values.shape == (6, 2) and res.metadata["tasks"] == 3
    assert len(p.created) == 3 and set(p.per_key().values()) == {1}
    assert sorted(part for _, part in p.per_key()) == ["0/3", "1/3", "2/3"]


def test_a_job_still_waiting_after_the_last_wait_is_cancelled_and_recorded(tmp_path, model):
    from qflhw.errors import JobFailed

    p = IBMProvider(None, tmp_path)
    p.statuses = ("QUEUED",) * 100_000  # a stuck job
    journal = Journal(tmp_path)
    runner = JournaledRunner(journal, retries=1, backoff_initial=0.0, backoff_max=0.0, job_timeout=0.02, sleep=lambda s: None)
    with pytest.raises(JobFailed, match="cancelled after waiting 2 x 0.02 s"):
        runner(p.device, _batch(p.device, model), 10, lambda: None)
    assert len(p.jobs) == 1 and p.jobs[0].cancel.call_count == 1
    assert [e[0] for e in journal.events()].count("cancelled") == 1
    assert journal.submission(str(KEY)).status == "failed"
