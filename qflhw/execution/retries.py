"""Sending a batch so that a crash, a flaky network or a restart never pays for it twice.

:class:`JournaledRunner` is the runner a real run uses (see ``executor.Runner``):

1. a result already in the journal is returned as is (its cost is re-entered in the ledger,
   which was restored from the last checkpoint and has not seen it yet);
2. a job already sent (journaled id, or found at the provider by its idempotency key) is fetched
   instead of sent again;
3. otherwise the batch is charged, journaled as pending, sent, and its job id journaled at once.

Transient errors are retried with exponential backoff by tenacity and journaled: a failed
submission (throttling, 5xx/429, device offline) is sent again and charged again; a failed wait
(timeout, fetch error) waits on the same job again, so a slow job is never paid twice. Permanent
errors propagate as
:class:`~qflhw.errors.JobFailed` and the client drops out of the round.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from qflhw.devices.base import Batch, BatchResult, Device, JobHandle, JobKey
from qflhw.errors import BackendError, ConfigError, JobFailed, TransientBackendError
from qflhw.execution.journal import Journal


class JournaledRunner:
    def __init__(
        self,
        journal: Journal,
        *,
        retries: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        job_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.journal = journal
        self.retries = retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.job_timeout = job_timeout
        self.sleep = sleep

    def _retrying(self, key: JobKey) -> Retrying:
        def log(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            self.journal.event("retry", f"attempt {state.attempt_number} failed: {err}", client=key.client, key=str(key))

        return Retrying(
            retry=retry_if_exception_type(TransientBackendError),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential_jitter(multiplier=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial),
            before_sleep=log,
            sleep=self.sleep,
            reraise=True,
        )

    def __call__(self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], None]) -> BatchResult:
        key = batch.key
        if key is None:
            raise ConfigError("a journaled job needs an idempotency key (Batch.key); give the batch a JobKey")
        stored = self.journal.result(str(key))
        if stored is not None:
            charge()
            return stored
        earlier = self._earlier_job(device, key)
        try:
            if earlier is None:
                earlier = self._retrying(key)(self._send, device, batch, shots, charge, key)
            else:
                charge()
            result = self._retrying(key)(earlier.result, self.job_timeout)
        except BackendError as err:
            self.journal.failed(str(key), str(err))
            self.journal.event("failed", str(err), client=key.client, key=str(key))
            raise
        self.journal.store_result(str(key), result)
        return result

    def _earlier_job(self, device: Device, key: JobKey) -> JobHandle | None:
        rec = self.journal.submission(str(key))
        if rec is None:
            return None
        if rec.job_id:
            try:
                return device.job(rec.job_id)
            except JobFailed:
                return None
        return device.find(key)  # pending: we may have died between sending and journaling the id

    def _send(self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], None], key: JobKey) -> JobHandle:
        """Charge, journal as pending, submit, journal the id: one attempt."""
        charge()
        self.journal.pending(str(key), key.client, device.name)
        handle = device.submit(batch, shots)
        self.journal.submitted(str(key), handle.job_id)
        return handle
