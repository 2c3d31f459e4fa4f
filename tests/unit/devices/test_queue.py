"""The provider's queue depth read when a client connects (IBM pending jobs, Braket queue depth),
and the one state of a batch sent as several provider jobs.

The SDK objects are autospecced fakes at the transport boundary; nothing connects anywhere.
"""

from __future__ import annotations

from unittest.mock import create_autospec

import pytest
from braket.aws import AwsDevice
from braket.aws.queue_information import QueueDepthInfo, QueueType
from qiskit_ibm_runtime import IBMBackend, QiskitRuntimeService
from qiskit_ibm_runtime.fake_provider import FakeTorino

from qflhw.config.profiles import load_profile
from qflhw.devices import braket, ibm
from qflhw.devices.remote import read_queue_depth
from tests.unit.devices.test_braket import _caps


def test_ibm_connect_records_pending_jobs(tmp_path):
    real = FakeTorino()
    service = create_autospec(QiskitRuntimeService, instance=True)
    backend = create_autospec(IBMBackend, instance=True)
    backend.target, backend.name, backend.backend_version = real.target, "ibm_kingston", "1.0"
    backend.properties.return_value = real.properties()
    backend.dt = real.dt
    backend.status.return_value.pending_jobs = 17
    service.backend.return_value = backend
    dev = ibm.connect(load_profile("ibm_kingston"), service=service, calibration_root=tmp_path / "cal")
    assert dev.queue is not None and dev.queue.pending == 17 and not dev.queue.capped
    assert dev.queue.to_dict()["pending"] == 17 and dev.queue.read.endswith("Z")
    backend.status.assert_called_once_with()


def test_braket_connect_records_the_normal_task_queue(tmp_path):
    aws = create_autospec(AwsDevice, instance=True)
    aws.properties, aws.status = _caps("iqm_garnet"), "ONLINE"
    aws.queue_depth.return_value = QueueDepthInfo({QueueType.NORMAL: ">4000", QueueType.PRIORITY: "3"}, "0")
    dev = braket.connect(load_profile("iqm_garnet"), device=aws, calibration_root=tmp_path / "cal")
    assert dev.queue is not None and (dev.queue.pending, dev.queue.capped) == (4000, True)
    assert dev.queue.to_dict() == {"pending": 4000, "read": dev.queue.read, "capped": True}


def test_a_failing_or_unreadable_depth_never_fails_the_connection():
    def boom() -> int:
        raise RuntimeError("HTTP 503 token=abc123secret")

    assert read_queue_depth(boom, "device x") is None
    assert read_queue_depth(lambda: None, "device x") is None
    assert read_queue_depth(lambda: "n/a", "device x") is None
    assert read_queue_depth(lambda: "12", "device x").pending == 12  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "states, expected",
    [
        (["done", "done"], "done"),
        (["done", "queued"], "running"),  # one part finished: the batch has started
        (["queued", "queued"], "queued"),
        (["running", "failed"], "failed"),
        (["cancelled", "done"], "cancelled"),
        (["failed", "cancelled"], "failed"),
    ],
)
def test_a_batch_sent_as_several_jobs_has_one_state(states, expected):
    from qflhw.devices.remote import combined_status

    assert combined_status(states) == expected
