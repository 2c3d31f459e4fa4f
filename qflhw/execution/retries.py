"""Sending a batch so that a crash, a flaky network or a restart never pays for it twice.

:class:`JournaledRunner` is the runner a real run uses (see ``executor.Runner``):

1. a result already in the journal is returned as is (its cost is re-entered in the ledger,
   which was restored from the last checkpoint and has not seen it yet);
2. a job already sent (journaled id, or found at the provider by its idempotency key) is fetched
   instead of sent again;
3. otherwise the batch is charged, journaled as pending, sent, and its job id journaled at once.

Every batch carries the run's nonce (kept in the journal) so its job tags name this run only.
Transient errors are retried with exponential backoff by tenacity and journaled. A failed
submission (throttling, 5xx/429, a timeout) may still have created the job at the provider, so
the next attempt first looks the job up by its idempotency key (``Device.find``) and adopts it
if it exists; only a job that is not there is sent again (and charged again). A failed wait
(timeout, fetch error) waits on the same job again, so a slow job is never paid twice; when the
last wait fails the job is cancelled at the provider (so it does not run and bill unobserved)
and the cancellation is journaled. Permanent errors propagate as
:class:`~qflhw.errors.JobFailed` and the client drops out of the round.

While it waits, the runner polls the job's normalized state and reports each change (with the
provider's queue position when the SDK tells it) to its :class:`~qflhw.execution.events.EventSink`,
together with every submission, retry, result and failure, each after the journal committed it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from qflhw.devices.base import Batch, BatchResult, Device, JobHandle, JobKey, JobStatus
from qflhw.devices.remote import wait_final
from qflhw.errors import BackendError, ConfigError, JobFailed, TransientBackendError
from qflhw.execution.events import EventSink, NoEvents
from qflhw.execution.journal import Journal

#: While a job is queued, ask the provider for its queue position at most this often (an API call).
QUEUE_POSITION_EVERY_S = 60.0


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
        events: EventSink | None = None,
    ):
        self.journal = journal
        self.events: EventSink = events or NoEvents()
        self.retries = retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.job_timeout = job_timeout
        self.sleep = sleep

    def _retrying(self, key: JobKey) -> Retrying:
        def log(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            self.journal.event("retry", f"attempt {state.attempt_number} failed: {err}", client=key.client, key=str(key))
            wait = state.next_action.sleep if state.next_action else 0.0
            self.events.emit("retry", **_where(key), attempt=state.attempt_number, error=str(err), wait_s=round(wait, 3))

        return Retrying(
            retry=retry_if_exception_type(TransientBackendError),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential_jitter(multiplier=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial),
            before_sleep=log,
            sleep=self.sleep,
            reraise=True,
        )

    def __call__(self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], Any]) -> BatchResult:
        key = batch.key
        if key is None:
            raise ConfigError("a journaled job needs an idempotency key (Batch.key); give the batch a JobKey")
        stored = self.journal.result(str(key))
        if stored is not None:
            charge()
            return stored
        nonce = self.journal.nonce()
        batch = dataclasses.replace(batch, nonce=nonce)
        handle = self._earlier_job(device, key, nonce)
        try:
            if handle is None:
                state = {"attempts": 0}
                handle = self._retrying(key)(self._send, device, batch, shots, charge, key, state)
            else:
                self._recovered(device, handle, key, batch, shots, charge())
            result = self._wait(device, handle, key)
        except BackendError as err:
            self.journal.failed(str(key), str(err))
            self.journal.event("failed", str(err), client=key.client, key=str(key))
            self.events.emit("failed", **_where(key), job_id=handle.job_id if handle else None, error=str(err))
            raise
        self.journal.store_result(str(key), result)
        self.events.emit("result", **_where(key), job_id=result.job_id)
        return result

    def _wait(self, device: Device, handle: JobHandle, key: JobKey) -> BatchResult:
        """Wait for the result (retrying the wait, reporting state changes); past the last wait,
        cancel the job and record it."""
        follow = _Follow(self.events, device, handle, key)
        try:
            return self._retrying(key)(follow.wait, self.job_timeout)
        except TransientBackendError as err:
            try:
                handle.cancel()
                note = f"job {handle.job_id} cancelled after waiting {self.retries + 1} x {self.job_timeout} s: {err}"
            except BackendError as cancel_err:
                note = f"job {handle.job_id} could not be cancelled after the last wait ({cancel_err}): {err}"
            self.journal.event("cancelled", note, client=key.client, key=str(key))
            self.events.emit("state", **_where(key), job_id=handle.job_id, state="cancelled")
            raise JobFailed(note) from err

    def _earlier_job(self, device: Device, key: JobKey, nonce: str) -> JobHandle | None:
        rec = self.journal.submission(str(key))
        if rec is None:
            return None
        if rec.job_id:
            try:
                return device.job(rec.job_id)
            except JobFailed:
                return None
        found = device.find(key, nonce)  # pending: we may have died between sending and journaling the id
        if found is not None:
            self.journal.submitted(str(key), found.job_id)
            self.journal.event("adopted", f"found job {found.job_id} sent before a crash", client=key.client, key=str(key))
        return found

    def _recovered(self, device: Device, handle: JobHandle, key: JobKey, batch: Batch, shots: int | None, spent: Any) -> None:
        """Log a job sent by an earlier process, unless its submission line is already there."""
        rec = self.journal.submission(str(key))
        self.events.emit(
            "submit", **_where(key), device=device.name, job_id=handle.job_id, attempt=rec.attempts if rec else 1,
            shots=batch.total_shots(shots), **_usd(spent), recovered=True,
        )

    def _send(
        self, device: Device, batch: Batch, shots: int | None, charge: Callable[[], Any], key: JobKey, state: dict
    ) -> JobHandle:
        """One attempt: after a failed one, look the job up first; else charge, journal as pending,
        submit, journal the id, log it."""
        state["attempts"] += 1
        if state["attempts"] > 1:  # the failed attempt may have created the job (or some of its parts)
            found = device.find(key, batch.nonce)
            if found is not None:
                self.journal.submitted(str(key), found.job_id)
                self.journal.event("adopted", f"found job {found.job_id} created by a failed attempt",
                                   client=key.client, key=str(key))
                rec = self.journal.submission(str(key))
                self.events.emit(
                    "submit", **_where(key), device=device.name, job_id=found.job_id, attempt=rec.attempts if rec else 1,
                    shots=batch.total_shots(shots), recovered=True,
                )
                return found
        spent = charge()
        attempt = self.journal.pending(str(key), key.client, device.name)
        handle = device.submit(batch, shots)
        self.journal.submitted(str(key), handle.job_id)
        self.events.emit(
            "submit", **_where(key), device=device.name, job_id=handle.job_id, attempt=attempt,
            shots=batch.total_shots(shots), **_usd(spent),
        )
        return handle


class _Follow:
    """Waits for one job, reporting each change of its state (and queue position) once."""

    def __init__(self, events: EventSink, device: Device, handle: JobHandle, key: JobKey):
        self.events, self.device, self.handle, self.key = events, device, handle, key
        self.last: tuple[str, str | None] | None = None
        self._position: str | None = None
        self._asked = -float("inf")

    def status(self) -> JobStatus:
        state = self.handle.status()
        if state == "queued" and time.monotonic() - self._asked >= QUEUE_POSITION_EVERY_S:
            self._asked = time.monotonic()
            try:
                self._position = self.handle.queue_position()
            except BackendError:  # the position is a courtesy; the state is what matters
                self._position = None
        position = self._position if state == "queued" else None
        if (state, position) != self.last:
            self.last = (state, position)
            where = {"queue_position": position} if position is not None else {}
            self.events.emit("state", **_where(self.key), job_id=self.handle.job_id, state=state, **where)
        return state

    def wait(self, timeout: float | None) -> BatchResult:
        """Poll until the job is final (past ``timeout``: a transient error, so the wait is retried), then its result."""
        wait_final(self.status, timeout, self.device.poll_interval, f"device {self.device.name}: job {self.handle.job_id}")
        return self.handle.result(timeout)


def _where(key: JobKey) -> dict[str, Any]:
    return {"client": key.client, "key": str(key), "round": key.round, "step": key.step}


def _usd(spent: Any) -> dict[str, Any]:
    """The charged cost of an attempt, when the charge callback reports it (a ledger's Cost)."""
    usd = getattr(spent, "usd", None)
    return {"usd": usd} if usd is not None else {}
