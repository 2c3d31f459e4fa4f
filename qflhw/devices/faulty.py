"""A device wrapper that injects provider faults, to test retries and dropouts.

At configured rates, submission raises a transient error (as throttling would), waiting for a
result raises a transient timeout, or the job fails permanently. Faults are drawn from a seeded
generator per (key, attempt), so a test run is reproducible.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
from qiskit.circuit import QuantumCircuit

from qflhw._util import stable_seed
from qflhw.circuits.transpile import Transpiled
from qflhw.devices.base import Batch, BatchResult, Device, JobHandle, JobKey, JobStatus
from qflhw.errors import JobFailed, TransientBackendError


class _FaultyJob:
    def __init__(self, inner: JobHandle, rng: np.random.Generator, timeout_rate: float, fail: bool, counts: dict):
        self.job_id = inner.job_id
        self._inner = inner
        self._rng = rng
        self._timeout_rate = timeout_rate
        self._fail = fail
        self._counts = counts

    def status(self) -> JobStatus:
        return "failed" if self._fail else self._inner.status()

    def result(self, timeout: float | None = None) -> BatchResult:
        if self._fail:
            raise JobFailed(f"job {self.job_id} failed on the device (injected)")
        if self._rng.random() < self._timeout_rate:
            self._counts["timeout"] += 1
            raise TransientBackendError(f"waiting for job {self.job_id} timed out (injected)")
        return self._inner.result(timeout)

    def cancel(self) -> None:
        self._inner.cancel()

    def queue_position(self) -> str | None:
        return self._inner.queue_position()


class FaultyDevice(Device):
    """Wraps ``inner``; ``permanent_rate=1`` makes every job fail (a broken client)."""

    def __init__(
        self,
        inner: Device,
        *,
        submit_rate: float = 0.0,
        timeout_rate: float = 0.0,
        permanent_rate: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(inner.profile, inner.calibration, seed=inner.seed)
        self.inner = inner
        self.poll_interval = inner.poll_interval
        self.submit_rate = submit_rate
        self.timeout_rate = timeout_rate
        self.permanent_rate = permanent_rate
        self.fault_seed = seed
        self.injected = {"submit": 0, "timeout": 0, "permanent": 0}
        self._attempts: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def transpile(self, circuit: QuantumCircuit) -> Transpiled:
        """The wrapped device's transpilation: same circuits, same placement."""
        return self.inner.transpile(circuit)

    def _rng(self, key: str) -> np.random.Generator:
        with self._lock:
            attempt = next(self._attempts.setdefault(key, itertools.count()))
        return np.random.default_rng(stable_seed(self.fault_seed, key, attempt, bits=64))

    def submit(self, batch: Batch, shots: int | None) -> JobHandle:
        rng = self._rng(str(batch.key) if batch.key else "")
        if rng.random() < self.submit_rate:
            self.injected["submit"] += 1
            raise TransientBackendError(f"device {self.name}: throttled (injected)")
        fail = rng.random() < self.permanent_rate
        self.injected["permanent"] += int(fail)
        return _FaultyJob(self.inner.submit(batch, shots), rng, self.timeout_rate, fail, self.injected)

    def job(self, job_id: str) -> JobHandle:
        return self.inner.job(job_id)

    def jobs_needed(self, batch: Batch, shots: int | None) -> int | None:
        return self.inner.jobs_needed(batch, shots)

    def find(self, key: JobKey, nonce: str = "") -> JobHandle | None:
        return self.inner.find(key, nonce)

    def close(self) -> None:
        self.inner.close()
