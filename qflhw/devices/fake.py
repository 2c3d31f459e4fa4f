"""A local noisy twin of a real device, built from one of its calibration snapshots.

Jobs run when submitted; the handle keeps the result. Shot noise is seeded from the device seed
and the batch's idempotency key (or a submission counter when there is none), so the same batch
gives the same numbers however often and in whatever order it is run: that is what makes resumed
runs identical to uninterrupted ones.

With a ``store`` folder the fake provider keeps its jobs on disk like a cloud provider does: a
job exists once its file is written, can be fetched by id or found by idempotency key from
another process, and ``submissions.log`` is the provider's own count of what it was sent.

What the twin simulates is set by the profile's ``[twin]`` table (and a client's override):
see :class:`~qflhw.config.spec.TwinSpec` and :mod:`qflhw.devices.simulator`.
:meth:`FakeDevice.set_calibration` swaps the snapshot the noise comes from, as a drifting
device's next calibration would; later transpilations lay circuits out for it.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np

from qflhw._util import atomic_write, digest, stable_seed
from qflhw.calibration.snapshot import Calibration
from qflhw.config.profiles import DeviceProfile
from qflhw.config.spec import TwinSpec
from qflhw.devices.base import Batch, BatchResult, Device, JobKey, JobStatus, pack_result, unpack_result
from qflhw.devices.simulator import CompactSimulator
from qflhw.errors import JobFailed


class FakeJob:
    """A finished local job (fake jobs complete during ``submit``)."""

    def __init__(self, job_id: str, result: BatchResult):
        self.job_id = job_id
        self._result = result

    def status(self) -> JobStatus:
        return "done"

    def result(self, timeout: float | None = None) -> BatchResult:
        return self._result

    def cancel(self) -> None:
        """Nothing to cancel: a fake job is finished when it exists."""

    def queue_position(self) -> str | None:
        """Never queued."""
        return None


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
        twin: TwinSpec | None = None,
    ):
        self.twin = twin or profile.twin
        super().__init__(
            profile, calibration, seed=seed, virtual_rz=self.twin.virtual_rz, channel_correction=self.twin.channel_correction
        )
        self.simulator = CompactSimulator(calibration, threads=threads, twin=self.twin)
        self.submissions = 0  # jobs this object ran (the store's log counts across processes)
        self.store = Path(store) if store else None
        self._jobs: dict[str, FakeJob] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def set_calibration(self, calibration: Calibration) -> None:
        """Switch snapshot (see :meth:`Device.set_calibration`) and the noise the twin simulates, so
        jobs from now on carry the new calibration id and its noise."""
        changed = calibration.id != self.calibration.id
        super().set_calibration(calibration)
        if changed:
            self.simulator.calibration = calibration

    def _rng(self, batch: Batch, n: int) -> np.random.Generator:
        salt = str(batch.key) if batch.key else f"#{n}"
        return np.random.default_rng(stable_seed(self.seed, self.calibration.id, salt, bits=64))

    def submit(self, batch: Batch, shots: int | None) -> FakeJob:
        with self._lock:
            n = next(self._counter)
            self.submissions += 1
        start = time.perf_counter()
        rng = self._rng(batch, n)
        items = [self.simulator.evaluate(item, shots, rng) for item in batch.items]
        job_id = f"fake-{self.name}-{digest(str(batch.key) if batch.key else str(n), 12)}-{n}"
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
                self._persist(self.store, batch.key, job_id, result)
        return job

    def _persist(self, store: Path, key: JobKey | None, job_id: str, result: BatchResult) -> None:
        """Write the job file atomically (the job 'exists' from then on), then log the submission."""
        store.mkdir(parents=True, exist_ok=True)
        atomic_write(store / f"{job_id}.job", pack_result(result), fsync=False)
        if key:
            atomic_write(store / f"key-{digest(str(key))}", job_id, fsync=False)
        with open(store / "submissions.log", "a", encoding="utf-8") as fh:
            fh.write(f"{key or ''}\t{job_id}\n")

    def job(self, job_id: str) -> FakeJob:
        if job_id in self._jobs:
            return self._jobs[job_id]
        path = self.store / f"{job_id}.job" if self.store else None
        if path is None or not path.is_file():
            raise JobFailed(f"device {self.name}: no job {job_id!r} (fake jobs persist only with a store folder)")
        return FakeJob(job_id, unpack_result(path.read_bytes()))

    def find(self, key: JobKey, nonce: str = "") -> FakeJob | None:
        ref = self.store / f"key-{digest(str(key))}" if self.store else None
        if ref is None or not ref.is_file():
            return None
        return self.job(ref.read_text().strip())

