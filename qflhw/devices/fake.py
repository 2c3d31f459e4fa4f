"""A local noisy twin of a real device, built from one of its calibration snapshots.

Jobs run when submitted; the handle keeps the result. Shot noise is seeded from the device seed
and the batch's idempotency key (or a submission counter when there is none), so the same batch
gives the same numbers however often and in whatever order it is run: that is what makes resumed
runs identical to uninterrupted ones.

With a ``store`` folder the fake provider keeps its jobs on disk like a cloud provider does: a
job exists once its file is written, can be fetched by id or found by idempotency key from
another process, and ``submissions.log`` is the provider's own count of what it was sent.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import os
import time
from pathlib import Path

import numpy as np

from qflhw.calibration import Calibration
from qflhw.devices.base import Batch, BatchResult, Device, JobStatus, pack_result, unpack_result
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

    def __init__(
        self,
        profile: DeviceProfile,
        calibration: Calibration,
        *,
        seed: int = 1234,
        threads: int = 2,
        store: Path | None = None,
    ):
        super().__init__(profile, calibration, seed=seed)
        self.simulator = CompactSimulator(calibration, threads=threads)
        self.submissions = 0  # jobs this object ran (the store's log counts across processes)
        self.store = Path(store) if store else None
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
        job_id = f"fake-{self.name}-{_digest(batch.key or str(n))[:12]}-{n}"
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
            if self.store:
                self._persist(batch.key, job_id, result)
        return job

    def _persist(self, key: str, job_id: str, result: BatchResult) -> None:
        """Write the job file atomically (the job 'exists' from then on), then log the submission."""
        self.store.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        path = self.store / f"{job_id}.job"  # type: ignore[operator]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pack_result(result))
        os.replace(tmp, path)
        if key:
            _atomic_text(self.store / f"key-{_digest(key)}", job_id)  # type: ignore[operator]
        with open(self.store / "submissions.log", "a", encoding="utf-8") as fh:  # type: ignore[operator]
            fh.write(f"{key}\t{job_id}\n")

    def job(self, job_id: str) -> FakeJob:
        if job_id in self._jobs:
            return self._jobs[job_id]
        path = self.store / f"{job_id}.job" if self.store else None
        if path is None or not path.is_file():
            raise JobFailed(f"device {self.name}: no job {job_id!r} (fake jobs persist only with a store folder)")
        return FakeJob(job_id, unpack_result(path.read_bytes()))

    def find(self, key: str) -> FakeJob | None:
        ref = self.store / f"key-{_digest(key)}" if self.store and key else None
        if ref is None or not ref.is_file():
            return None
        return self.job(ref.read_text().strip())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
