"""IBM Quantum through Qiskit Runtime: one client step is one Runtime job, one execution mode per run.

The device uses the current client-side primitives of qiskit-ibm-runtime (``executor_sampler.
Sampler``; ``executor_estimator.Estimator`` only when the profile asks Runtime to mitigate), which
submit through the ``executor`` program. Every batch becomes one job: one pub per (item,
measurement basis) holding all of its bindings, so expectations and client-side readout
mitigation come from the measured distributions exactly as on the fake twins. Where one job
cannot hold the step, it becomes a few *parts*, each its own Runtime job: one per shot value (the
executor Sampler refuses pubs with different shots) and split further past the profile's
``limits.max_executions`` (IBM: 10 million per Sampler job, twirling included).

All jobs of a run on this device share one Runtime execution mode (``Batch``, or ``Session`` when
``[runtime] execution_mode = "session"``), opened at the first job with ``max_time`` and closed
by :meth:`IBMDevice.close` at the end of the run. Every job carries tags with the step's
idempotency key, the run's nonce and its part, so :meth:`IBMDevice.find` finds exactly this run's
job and a part-way failure re-sends only the missing parts.

Where circuits run:

* a live ``IBMBackend`` (``connect``): the transpiled circuit on the whole device;
* no backend (``IBMDevice(profile, calibration)``): Qiskit Runtime *local testing mode* on a small
  ``AerSimulator`` built from the snapshot's Target restricted to the qubits the circuit uses,
  with its gate noise and asymmetric readout error. The same primitive construction, batch
  context and result parsing run as for the real device, in a fraction of a second (a full-size
  fake backend in local mode is slow or runs out of memory);
* any other ``BackendV2`` (e.g. ``FakeTorino()``): local testing mode on the whole backend.

``emulate = true`` profiles are the second case, marked emulated in every result.

Credentials come only from the SDK's saved account or ``QISKIT_IBM_TOKEN`` /
``QISKIT_IBM_INSTANCE``; they are never logged and :func:`classify` scrubs every message.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from qflhw._util import digest
from qflhw.calibration import snapshot as _calibration
from qflhw.calibration.snapshot import Calibration
from qflhw.config.profiles import DeviceProfile
from qflhw.devices.base import Batch, BatchResult, Device, ItemResult, JobKey, JobStatus
from qflhw.devices.remote import (
    JobLayout,
    LayoutStore,
    adopt_snapshot,
    combined_status,
    item_results,
    log,
    measured_circuit,
    parameter_columns,
    placed_circuit,
    probabilities,
    read_queue_depth,
    scrub,
    wait_final,
)
from qflhw.errors import ConfigError, JobFailed, QflhwError, TransientBackendError

SEPARATOR = "|"  # between the Runtime job ids of a step that needed several jobs

#: Runtime job states (remote: strings; local: ``qiskit.providers.JobStatus`` names) -> ours.
STATUS: dict[str, JobStatus] = {
    "INITIALIZING": "queued",
    "VALIDATING": "queued",
    "QUEUED": "queued",
    "RUNNING": "running",
    "DONE": "done",
    "ERROR": "failed",
    "CANCELLED": "cancelled",
}


def normalize_status(raw: Any) -> JobStatus:
    """A Runtime status string or ``qiskit.providers.JobStatus`` member as a :data:`JobStatus`."""
    name = str(getattr(raw, "name", raw)).upper()
    try:
        return STATUS[name]
    except KeyError:
        raise JobFailed(f"unknown IBM job status {name!r}") from None


def classify(err: BaseException, where: str, *, fetching: bool = False) -> QflhwError:
    """The qflhw error for an SDK exception: transient (retry) or permanent, secrets scrubbed.

    Transient: HTTP 5xx/429 and connection errors, ``IBMRuntimeError`` while fetching a job,
    and a wait that timed out. Permanent: failed, over-time, cancelled or invalid jobs, bad
    input, no authorization. A missing account is a :class:`ConfigError`.
    """
    if isinstance(err, QflhwError):
        return err
    import requests
    from qiskit_ibm_runtime.accounts.exceptions import AccountsError
    from qiskit_ibm_runtime.api.exceptions import RequestsApiError
    from qiskit_ibm_runtime.exceptions import (
        IBMInputValueError,
        IBMNotAuthorizedError,
        IBMRuntimeError,
        RuntimeInvalidStateError,
        RuntimeJobFailureError,
        RuntimeJobMaxTimeoutError,
        RuntimeJobNotFound,
        RuntimeJobTimeoutError,
    )

    msg = f"{where}: {type(err).__name__}: {scrub(err)}"
    if isinstance(err, AccountsError):
        return ConfigError(
            f"{where}: no usable IBM Quantum account ({type(err).__name__}); save one with "
            "QiskitRuntimeService.save_account(...) or set QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE"
        )
    if isinstance(err, RequestsApiError):
        code = getattr(err, "status_code", -1)
        if code == 429 or code >= 500 or code < 0:
            return TransientBackendError(f"{msg} (HTTP {code}; retrying)")
        if code in (401, 403):
            return JobFailed(f"{msg} (HTTP {code}; check the account's token and instance)")
        return JobFailed(f"{msg} (HTTP {code})")
    if isinstance(err, RuntimeJobTimeoutError):
        return TransientBackendError(msg)
    permanent = (
        RuntimeJobFailureError,
        RuntimeJobMaxTimeoutError,
        RuntimeInvalidStateError,
        RuntimeJobNotFound,
        IBMInputValueError,
        IBMNotAuthorizedError,
    )
    if isinstance(err, permanent):
        return JobFailed(msg)
    if isinstance(err, IBMRuntimeError) and fetching:
        return TransientBackendError(msg)
    if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)):
        return TransientBackendError(msg)
    return JobFailed(msg)


def _is_ibm_backend(backend: Any) -> bool:
    from qiskit_ibm_runtime import IBMBackend

    return isinstance(backend, IBMBackend)


def twin_backend(calibration: Calibration, qubits: Sequence[int]):
    """An ``AerSimulator`` of the snapshot restricted to ``qubits``: gate noise and asymmetric readout."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import ReadoutError

    from qflhw.calibration.target import TargetBackend, noise_model, to_target

    target = to_target(calibration, qubits)
    nm = noise_model(target)
    for i, p in enumerate(qubits):
        q = calibration.qubits[p]
        p10, p01 = q.prob_meas1_prep0, q.prob_meas0_prep1
        nm.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [i])
    return AerSimulator.from_backend(
        TargetBackend(target, name=f"{calibration.device}-twin"), method="density_matrix", noise_model=nm
    )


def _counts(bit_array: Any, num_bits: int) -> list[np.ndarray]:
    """Distributions, one per binding, of a sampler ``BitArray`` of shape (n_bindings,)."""
    arr = np.asarray(bit_array.array)  # (..., shots, bytes), big-endian: the last bit is clbit 0
    bits = np.unpackbits(arr, axis=-1)[..., -bit_array.num_bits :].astype(np.int64)
    ints = bits @ (1 << np.arange(bit_array.num_bits, dtype=np.int64)[::-1])
    ints = ints.reshape(-1, bit_array.num_shots)
    return [probabilities(row, num_bits) for row in ints]


def parse_result(raw: Any, layout: JobLayout) -> list[ItemResult]:
    """Sampler pubs -> distributions -> values; Estimator pubs -> mitigated values."""
    if layout.primitive == "estimator":
        out = []
        for k, it in enumerate(layout.items):
            data = raw[k].data
            evs = np.asarray(data.evs, dtype=float).reshape(it.num_bindings, len(it.observables))
            stds = np.asarray(data.stds, dtype=float).reshape(evs.shape)
            out.append(ItemResult(evs, stds))
        return out
    dists: list[np.ndarray] = []
    p = 0
    for it in layout.items:
        for _ in it.bases:
            dists.extend(_counts(raw[p].data.c, it.num_qubits))
            p += 1
    return item_results(layout, dists)


class IBMJob:
    """A submitted step: one Runtime job per part; ``result`` raises on failure or timeout, never None.

    ``parts`` lists, for each Runtime job, its (pub index, first row, end row) pieces of the layout's pubs.
    """

    def __init__(self, device: IBMDevice, jobs: list[Any], layout: JobLayout, job_id: str | None = None,
                 parts: list[list[tuple[int, int, int]]] | None = None):
        self.device = device
        self._jobs = jobs
        self.layout = layout
        self.job_id = job_id or SEPARATOR.join(str(j.job_id()) for j in jobs)
        self.parts = parts
        self._result: BatchResult | None = None

    def status(self) -> JobStatus:
        try:
            states = [normalize_status(j.status()) for j in self._jobs]
        except Exception as err:  # noqa: BLE001 - classified below
            raise classify(err, f"device {self.device.name}: job {self.job_id}", fetching=True) from err
        return combined_status(states)

    def queue_position(self) -> str | None:
        """None: Qiskit Runtime's ``RuntimeJobV2`` reports no queue position (only its status)."""
        return None

    def cancel(self) -> None:
        try:
            for j in self._jobs:
                j.cancel()
        except Exception as err:  # noqa: BLE001 - classified below
            raise classify(err, f"device {self.device.name}: cancelling job {self.job_id}", fetching=True) from err

    def result(self, timeout: float | None = None) -> BatchResult:
        if self._result is not None:
            return self._result
        where = f"device {self.device.name}: job {self.job_id}"
        state = wait_final(self.status, timeout, self.device.poll_interval, where)
        if state == "cancelled":
            raise JobFailed(f"{where} was cancelled")
        raws = []
        try:
            for j in self._jobs:
                raws.append(j.result())
        except Exception as err:  # noqa: BLE001
            raise classify(err, where, fetching=True) from err
        if state == "failed" or any(r is None for r in raws):
            raise JobFailed(f"{where} failed without a result")
        raw = _reassemble(raws, self.parts)
        items = parse_result(raw, self.layout)
        executed = 0
        for pub in raw:
            bits = getattr(pub.data, "c", None)
            if bits is not None:
                executed += int(bits.num_shots) * int(np.prod(bits.shape))
        usage: dict[str, Any] = {"executed_shots": executed or None, "quantum_seconds": None}
        if self.device.remote:
            try:
                usage["quantum_seconds"] = float(sum(float(j.usage() or 0.0) for j in self._jobs))
            except Exception as err:  # noqa: BLE001 - usage is a report, never a reason to fail
                log.warning("%s: no usage reported (%s)", where, scrub(err))
        self._result = BatchResult(
            items=items,
            job_id=self.job_id,
            device=self.device.name,
            calibration_id=self.layout.calibration_id,
            shots=self.layout.shots,
            metadata={"provider": "ibm", "primitive": self.layout.primitive, "local": not self.device.remote,
                      "emulated": self.device.emulated, "jobs": len(self._jobs), "usage": usage},
        )
        return self._result


def _reassemble(raws: list[Any], parts: list[list[tuple[int, int, int]]] | None) -> list[Any]:
    """Pub results of all parts in layout order; a pub split by rows gets its pieces joined."""
    if parts is None:
        return [r for raw in raws for r in raw]
    pieces: dict[int, list[tuple[int, Any]]] = {}
    for raw, part in zip(raws, parts):
        for (k, start, _), pub in zip(part, raw):
            pieces.setdefault(k, []).append((start, pub))
    out = []
    for k in sorted(pieces):
        got = [pub for _, pub in sorted(pieces[k], key=lambda x: x[0])]
        if len(got) == 1:
            out.append(got[0])
            continue
        from qiskit.primitives.containers import BitArray

        joined = BitArray.concatenate([p.data.c for p in got], axis=0)
        out.append(SimpleNamespace(data=SimpleNamespace(c=joined)))
    return out


class IBMDevice(Device):
    """A client's IBM QPU through Qiskit Runtime (or its local-testing-mode twin, see module doc).

    ``backend``: a live ``IBMBackend`` (remote), another ``BackendV2`` (local mode, whole device)
    or None (local mode on the restricted twin). ``store``: folder for job layouts, so a job can
    be fetched by id from a later process. The ``*_cls`` arguments are injection points for tests.
    """

    def __init__(
        self,
        profile: DeviceProfile,
        calibration: Calibration,
        *,
        seed: int = 1234,
        backend: Any = None,
        service: Any = None,
        store: Path | None = None,
        poll_interval: float | None = None,
        batch_cls: Any = None,
        sampler_cls: Any = None,
        estimator_cls: Any = None,
        emulated: bool = False,
        max_time: int | None = None,
    ):
        super().__init__(profile, calibration, seed=seed)
        self.emulated = emulated
        self.max_time = max_time
        self.backend = backend
        self.remote = backend is not None and _is_ibm_backend(backend)
        self.service = service if service is not None else (getattr(backend, "service", None) if self.remote else None)
        self.layouts = LayoutStore(store)
        self.poll_interval = poll_interval if poll_interval is not None else (2.0 if self.remote else 0.01)
        self.options = profile.runtime
        self._batch_cls = batch_cls
        self._sampler_cls = sampler_cls
        self._estimator_cls = estimator_cls
        self._twins: dict[tuple[int, ...], Any] = {}
        self._circuits: dict[tuple[int, str, tuple[int, ...] | None], Any] = {}
        self._ctx: Any = None
        self._ctx_key: tuple[str, int] | None = None
        self._jobs: dict[str, IBMJob] = {}
        self._partial: dict[str, dict[int, Any]] = {}  # key -> Runtime jobs created so far, by part
        self._lock = threading.RLock()
        self.submissions = 0  # steps this object sent
        self.runtime_jobs = 0  # Runtime jobs created (a step over the limits is several)
        self.batches_opened = 0  # Runtime execution modes opened (one per run)

    # ------------------------------------------------------------------ SDK classes (lazy)
    def _classes(self) -> tuple[Any, Any, Any]:
        if self._batch_cls is None:
            if self.options is not None and self.options.execution_mode == "session":
                from qiskit_ibm_runtime import Session

                self._batch_cls = Session
            else:
                from qiskit_ibm_runtime import Batch as RuntimeBatch

                self._batch_cls = RuntimeBatch
        if self._sampler_cls is None:
            from qiskit_ibm_runtime.executor_sampler import Sampler

            self._sampler_cls = Sampler
        if self._estimator_cls is None and self.options is not None and self.options.estimator:
            from qiskit_ibm_runtime.executor_estimator import Estimator

            self._estimator_cls = Estimator
        return self._batch_cls, self._sampler_cls, self._estimator_cls

    # ------------------------------------------------------------------ where circuits run
    def _space(self, batch: Batch) -> tuple[Any, tuple[int, ...] | None]:
        """(backend, qubits of its circuits) for a batch; None qubits: the whole device."""
        if self.backend is not None:
            return self.backend, None
        qubits = tuple(sorted({p for it in batch.items for p in it.circuit.physical_qubits}))
        if qubits not in self._twins:
            self._twins[qubits] = twin_backend(self.calibration, qubits)
        return self._twins[qubits], qubits

    def _mode(self, batch: Batch, backend: Any) -> Any:
        """The run's Runtime execution mode on this device, opened on its first job (remote: a POST)."""
        key = (batch.key.run if batch.key else "", id(backend))
        if self._ctx is not None and self._ctx_key == key:
            return self._ctx
        self.close()
        batch_cls = self._classes()[0]
        self._ctx = batch_cls(backend=backend, max_time=self.max_time) if self.max_time else batch_cls(backend=backend)
        self._ctx_key = key
        self.batches_opened += 1
        return self._ctx

    def close(self) -> None:
        """Close the open Runtime execution mode: queued jobs still run, no new job joins it."""
        ctx, self._ctx, self._ctx_key = self._ctx, None, None
        if ctx is not None:
            try:
                ctx.close()
            except Exception as err:  # noqa: BLE001 - closing is best effort
                log.warning("device %s: closing the Runtime batch failed: %s", self.name, scrub(err))

    def _circuit(self, tc, basis: str | None, space: tuple[int, ...] | None):  # noqa: ANN001
        key = (id(tc), basis or "", space)
        hit = self._circuits.get(key)
        if hit is None:
            if basis is None:
                hit = placed_circuit(tc, self.calibration, space)
            else:
                hit = measured_circuit(tc, basis, self.calibration, space)
            self._circuits[key] = hit = (tc, hit)  # keep tc alive: its id stays unique
        return hit[1]

    # ------------------------------------------------------------------ submission
    def _pubs(self, batch: Batch, layout: JobLayout, space: tuple[int, ...] | None) -> list[tuple]:
        pubs: list[tuple] = []
        for item, it in zip(batch.items, layout.items):
            name = item.circuit.logical.name
            if layout.primitive == "estimator":
                circ, finals = self._circuit(item.circuit, None, space)
                obs = [[o.apply_layout(finals, num_qubits=circ.num_qubits) for o in item.observables]]
                cols = parameter_columns(circ, item.parameters, name)
                values = item.bindings[:, cols].reshape(item.num_bindings, 1, len(cols))
                pubs.append((circ, obs, values))
                continue
            for basis in it.bases:
                circ = self._circuit(item.circuit, basis, space)
                cols = parameter_columns(circ, item.parameters, name)
                pubs.append((circ, item.bindings[:, cols], it.shots))
        return pubs

    def _options(self, batch: Batch, shots: int, estimator: bool) -> dict:
        opts: dict[str, Any] = {"default_shots": shots, "environment": {"job_tags": self._tags(batch.key)}}
        rt = self.options
        if rt is not None:
            twirl = {k: v for k, v in (("enable_gates", rt.twirling_gates), ("enable_measure", rt.twirling_measure),
                                       ("num_randomizations", rt.twirling_randomizations),
                                       ("shots_per_randomization", rt.twirling_shots_per_randomization)) if v is not None}
            if twirl:
                opts["twirling"] = twirl
            if rt.dynamical_decoupling:
                opts["dynamical_decoupling"] = {"enable": True, "sequence_type": rt.dynamical_decoupling}
            if estimator:
                opts["resilience_level"] = rt.resilience_level
                res: dict[str, Any] = {}
                if rt.measure_mitigation is not None:
                    res["measure_mitigation"] = rt.measure_mitigation
                if rt.zne_mitigation is not None:
                    res["zne_mitigation"] = rt.zne_mitigation
                zne = {k: v for k, v in (("noise_factors", rt.zne_noise_factors), ("extrapolator", rt.zne_extrapolator)) if v}
                if zne:
                    res["zne"] = zne
                if res:
                    opts["resilience"] = res
        if not self.remote:  # local mode: reproducible shot noise per batch
            opts["simulator"] = {"seed_simulator": int(digest(f"{self.seed}|{self.calibration.id}|{batch.key or ''}"), 16) % 2**31}
        return opts

    @staticmethod
    def _tags(key: JobKey | None, nonce: str = "", part: int | None = None, parts: int = 1) -> list[str]:
        """Job tags: the key's digest, the run's nonce and (when sending) the part i of n."""
        if not key:
            return ["qflhw"]
        tags = ["qflhw", f"qflhw-key-{digest(str(key))}", f"qflhw-run-{nonce or '-'}"]
        return tags + [f"qflhw-part-{part}of{parts}"] if part is not None else tags

    def jobs_needed(self, batch: Batch, shots: int | None) -> int | None:
        """Runtime jobs the step becomes (each adds the per-job overhead to the estimated QPU time)."""
        if not shots:
            return None
        estimator = self.options is not None and self.options.estimator
        layout = JobLayout.of(batch, shots, device=self.name, calibration_id=self.calibration.id,
                              primitive="estimator" if estimator else "sampler")
        return len(self.plan_parts(layout))

    def plan_parts(self, layout: JobLayout) -> list[list[tuple[int, int, int]]]:
        """The Runtime jobs of one step: per job, its (pub index, first row, end row) pieces.

        Pubs are grouped by shots (the executor Sampler takes one shot count per job) and packed
        so no job runs more than ``limits.max_executions`` (bindings x executed shots, twirling
        rounding included); a pub too large alone is split by binding rows. Estimator jobs are
        one job (Runtime splits them itself). A pure function of the layout, so a later process
        rebuilds the same plan for a job it fetches by id.
        """
        pubs: list[tuple[int, int]] = []  # (rows, shots) per pub, in layout order
        for it in layout.items:
            if layout.primitive == "estimator":
                pubs.append((it.num_bindings, it.shots))
            else:
                pubs.extend((it.num_bindings, it.shots) for _ in it.bases)
        if layout.primitive == "estimator":
            return [[(k, 0, rows) for k, (rows, _) in enumerate(pubs)]]
        limit = self.profile.limits.max_executions
        per = (lambda n: self.options.executed_shots(n)) if self.options is not None else (lambda n: n)  # noqa: E731
        parts: list[list[tuple[int, int, int]]] = []
        for shots in dict.fromkeys(s for _, s in pubs):
            cost = per(shots)
            cap = max(1, limit // cost) if limit else None  # rows per job at this shot count
            current: list[tuple[int, int, int]] = []
            used = 0
            for k, (rows, s) in enumerate(pubs):
                if s != shots:
                    continue
                start = 0
                while start < rows:
                    take = rows - start if cap is None else min(rows - start, cap - used)
                    if take <= 0:
                        parts.append(current)
                        current, used = [], 0
                        continue
                    current.append((k, start, start + take))
                    used += take
                    start += take
            if current:
                parts.append(current)
        return parts

    def submit(self, batch: Batch, shots: int | None) -> IBMJob:
        if not shots or shots < 1:
            raise ConfigError(f"device {self.name}: IBM devices sample; set training.shots >= 1 (0 means exact, fake only)")
        estimator = self.options is not None and self.options.estimator
        if estimator and any(i.shots not in (None, shots) for i in batch.items):
            raise ConfigError(f"device {self.name}: per-item shots need the Sampler; drop [runtime] resilience_level")
        layout = JobLayout.of(
            batch, shots, device=self.name, calibration_id=self.calibration.id,
            primitive="estimator" if estimator else "sampler",
        )
        where = f"device {self.name}: submitting {batch.key or 'a batch'}"
        ref = str(batch.key) if batch.key else ""
        with self._lock:
            backend, space = self._space(batch)
            pubs = self._pubs(batch, layout, space)
            plan = self.plan_parts(layout)
            self.layouts.before_submit(layout)
            done = self._partial.setdefault(ref, {}) if ref else {}
            try:
                _, sampler_cls, estimator_cls = self._classes()
                mode = self._mode(batch, backend)
                for part, pieces in enumerate(plan):
                    if part in done:  # created by an earlier attempt: never sent twice
                        continue
                    opts = self._options(batch, shots, estimator)
                    opts["environment"] = {"job_tags": self._tags(batch.key, batch.nonce, part, len(plan))}
                    part_pubs = [_piece(pubs[k], a, b, estimator) for k, a, b in pieces]
                    done[part] = (estimator_cls if estimator else sampler_cls)(mode=mode, options=opts).run(part_pubs)
                    self.runtime_jobs += 1
            except Exception as err:  # noqa: BLE001
                suffix = f" (part {len(done) + 1} of {len(plan)}; the {len(done)} created are kept and not sent again)" if done else ""
                raise classify(err, where + suffix) from err
            jobs = [done[i] for i in range(len(plan))]
            self._partial.pop(ref, None)
            handle = IBMJob(self, jobs, layout, parts=_flat_parts(plan))
            self.submissions += 1
            self.layouts.submitted(handle.job_id, layout)
            self._jobs[handle.job_id] = handle
        return handle

    # ------------------------------------------------------------------ fetching
    def job(self, job_id: str) -> IBMJob:
        """An earlier job by id: this process's, or (remote) the service's via its stored layout."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        where = f"device {self.name}: job {job_id}"
        layout = self.layouts.for_earlier_job(job_id, where, remote=self.remote)
        if self.service is None:
            raise JobFailed(f"{where}: no Runtime service to fetch it from")
        try:
            raws = [self.service.job(i) for i in job_id.split(SEPARATOR)]
        except Exception as err:  # noqa: BLE001
            raise classify(err, where, fetching=True) from err
        return IBMJob(self, raws, layout, job_id, parts=_flat_parts(self.plan_parts(layout)))

    def find(self, key: JobKey, nonce: str = "") -> IBMJob | None:
        """The step this run sent under ``key`` (job tags: key, run nonce, part), if the service has it.

        All parts found: the job. Some parts: they are kept, so the next :meth:`submit` sends only
        the missing ones, and None is returned.
        """
        if not self.remote or self.service is None:
            return None
        layout = self.layouts.by_key(key)
        if layout is None:
            return None
        plan = self.plan_parts(layout)
        try:
            jobs = self.service.jobs(job_tags=self._tags(key, nonce), limit=max(10, 2 * len(plan)),
                                     backend_name=self.profile.device)
        except Exception as err:  # noqa: BLE001
            raise classify(err, f"device {self.name}: looking up {key}", fetching=True) from err
        found: dict[int, Any] = {}
        for j in jobs or []:
            tags = list(getattr(j, "tags", None) or [])
            part = next((t for t in tags if t.startswith("qflhw-part-")), None)
            if part is None and len(plan) == 1 and not tags:  # the service matched our tags but did not echo them
                found.setdefault(0, j)
                continue
            if part is None:
                continue
            i, _, n = part.removeprefix("qflhw-part-").partition("of")
            if int(n) == len(plan):
                found.setdefault(int(i), j)
        if not found:
            return None
        if len(found) < len(plan):
            with self._lock:
                self._partial.setdefault(str(key), {}).update(found)
            return None
        handle = IBMJob(self, [found[i] for i in range(len(plan))], layout, parts=_flat_parts(plan))
        self.layouts.submitted(handle.job_id, layout)
        self._jobs[handle.job_id] = handle
        return handle


def _piece(pub: tuple, start: int, stop: int, estimator: bool) -> tuple:
    """Rows ``start:stop`` of a pub's bindings (the whole pub when they are all of them)."""
    values = pub[2] if estimator else pub[1]
    if start == 0 and stop == len(values):
        return pub
    return (pub[0], pub[1], values[start:stop]) if estimator else (pub[0], values[start:stop], pub[2])


def _flat_parts(plan: list[list[tuple[int, int, int]]]) -> list[list[tuple[int, int, int]]]:
    return [list(p) for p in plan]


def connect(
    profile: DeviceProfile,
    *,
    seed: int = 1234,
    calibration: str | None = None,
    store: Path | None = None,
    service: Any = None,
    calibration_root: Path | None = None,
    max_time: int | None = None,
) -> IBMDevice:
    """Open the live backend, snapshot its calibration (new dated snapshot or the day's one).

    ``calibration`` pins a stored snapshot instead of the live one (transpiling then uses it).
    """
    where = f"device {profile.name} (IBM backend {profile.device})"
    try:
        if service is None:
            from qiskit_ibm_runtime import QiskitRuntimeService

            service = QiskitRuntimeService()  # saved account, or QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE
        backend = service.backend(profile.device)
        if calibration:
            cal = _calibration.load(calibration)
        else:
            from qflhw.calibration.qiskit_import import from_qiskit_backend

            cal = adopt_snapshot(from_qiskit_backend(backend, device=profile.device, kind="live"), calibration_root)
    except QflhwError:
        raise
    except Exception as err:  # noqa: BLE001
        raise classify(err, where, fetching=True) from err
    dev = IBMDevice(profile, cal, seed=seed, backend=backend, service=service, store=store, max_time=max_time)
    dev.queue = read_queue_depth(lambda: backend.status().pending_jobs, where)  # jobs waiting on the backend now
    return dev
