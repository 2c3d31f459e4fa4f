"""A local noisy twin of a real device, built from one of its calibration snapshots.

Jobs run when submitted; the handle keeps the result. Shot noise is seeded from the device seed
and the batch's idempotency key (or a submission counter when there is none), so the same batch
gives the same numbers however often and in whatever order it is run: that is what makes resumed
runs identical to uninterrupted ones.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time

import numpy as np

from qflhw.calibration import Calibration
from qflhw.devices.base import Batch, BatchResult, Device, JobStatus
from qflhw.devices.compact import CompactSimulator
from qflhw.errors import JobFailed
from qflhw.profiles import DeviceProfile


class FakeJob:
    """A finished local job (fake jobs complete during ``submit``)."""

    def __init__(self, job_id: str, result: BatchResult):
        self.job_id = job_id
        self._result = result

    def status(self) -> JobStatus:
        return "done"

    def result(self, timeout: float | None = None) -> BatchResult:
        return self._result


class FakeDevice(Device):
    """Runs batches on :class:`CompactSimulator` with the snapshot's noise."""

    def __init__(self, profile: DeviceProfile, calibration: Calibration, *, seed: int = 1234, threads: int = 2):
        super().__init__(profile, calibration, seed=seed)
        self.simulator = CompactSimulator(calibration, threads=threads)
        self.submissions = 0  # how many jobs this device ran: resume tests count on it
        self._jobs: dict[str, FakeJob] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def _rng(self, batch: Batch, n: int) -> np.random.Generator:
        salt = batch.key or f"#{n}"
        digest = hashlib.sha256(f"{self.seed}|{self.calibration.id}|{salt}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def submit(self, batch: Batch, shots: int | None) -> FakeJob:
        with self._lock:
            n = next(self._counter)
            self.submissions += 1
        start = time.perf_counter()
        rng = self._rng(batch, n)
        items = [self.simulator.evaluate(item, shots, rng) for item in batch.items]
        job_id = f"fake-{self.name}-{hashlib.sha256((batch.key or str(n)).encode()).hexdigest()[:12]}-{n}"
        result = BatchResult(
            items=items,
            job_id=job_id,
            device=self.name,
            calibration_id=self.calibration.id,
            shots=shots,
            metadata={"seconds": time.perf_counter() - start, "bindings": batch.num_bindings},
        )
        job = FakeJob(job_id, result)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def job(self, job_id: str) -> FakeJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobFailed(f"device {self.name}: no job {job_id!r} in this process (fake jobs are not kept across runs)") from None
