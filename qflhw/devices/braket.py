"""IonQ, IQM and Rigetti QPUs through Amazon Braket: one client step is one program-set task.

Every executable of a batch (item x measurement basis x binding) is the transpiled circuit with
its parameters bound, rotated into the basis with native gates, measured, and wrapped in a
verbatim box on the device's physical qubits (``qiskit_braket_provider.to_braket(...,
verbatim=True, qubit_labels=...)``), so Braket's compiler changes nothing. Binding numerically
keeps IonQ's phase-frame rewrite (:func:`qflhw.circuits.ionq.to_ionq_native`) exact and
avoids Braket's reserved ``FreeParameter`` names (``b``, ``q``).

Where the device supports program sets (``DeviceActionType.OPENQASM_PROGRAM_SET``), the batch
is one ``ProgramSet`` task (split only past the device's executable or total-shot limits);
otherwise each executable is its own task. The profile's ``limits.max_circuits``
must match (the ledger charges ``ceil(executables / max_circuits)`` task fees), and is checked.

Two-qubit gates are emitted on the coupler direction the device lists (IQM lists each coupler
once and Braket checks the direction): a symmetric gate (cz, iswap, zz) on an unlisted direction
has its operands swapped. IonQ circuits become gpi/gpi2 plus Forte's zz or Aria's ms, whichever the
device lists. Limits (executables and shots per program set, shots per task) are read from the
device's properties.

Never paying twice: every task carries tags with the step's idempotency key, the run's nonce and
its part number, so :meth:`BraketDevice.find` can look a step up with ``SearchQuantumTasks``
(which has no tag filter: it filters on the device ARN and creation time and matches tags here).
A step that needed several tasks and failed part-way keeps the tasks it created; the next attempt
sends only the missing parts.

Offline, inject ``braket.devices.LocalSimulator`` or a ``LocalEmulator`` (:func:`local_emulator`,
what ``emulate = true`` profiles use) as ``device``: the same conversion, submission and parsing
code runs. Credentials: the standard AWS chain (boto3).
"""

from __future__ import annotations

import datetime as _dt
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from qflhw._util import digest
from qflhw.calibration import snapshot as _calibration
from qflhw.calibration.snapshot import Calibration
from qflhw.circuits.measure import measurement_bases
from qflhw.config.paths import data_dir
from qflhw.config.profiles import DeviceProfile
from qflhw.devices.base import Batch, BatchResult, Device, JobKey, JobStatus
from qflhw.devices.remote import (
    JobLayout,
    LayoutStore,
    adopt_snapshot,
    combined_status,
    item_results,
    measured_circuit,
    parameter_columns,
    probabilities,
    read_queue_depth,
    scrub,
    wait_final,
)
from qflhw.errors import ConfigError, JobFailed, QflhwError, TransientBackendError

#: Braket task states -> ours.
STATUS: dict[str, JobStatus] = {
    "CREATED": "queued",
    "QUEUED": "queued",
    "RUNNING": "running",
    "COMPLETED": "done",
    "FAILED": "failed",
    "CANCELLING": "cancelled",
    "CANCELLED": "cancelled",
}
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "InternalServiceException",
        "DeviceOfflineException",
        "ServiceUnavailableException",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CREDENTIAL_CODES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException"}
)
SEPARATOR = "|"  # between task ARNs of a job that needed several tasks
_SYMMETRIC_2Q = frozenset({"cz", "iswap", "rzz", "swap"})  # qiskit names whose operands may be swapped
#: Braket's local simulators (numba-compiled) abort the process when several threads run them at
#: once (clients train in threads): local tasks run one at a time, process-wide.
_LOCAL_RUN_LOCK = threading.Lock()


def normalize_status(raw: Any) -> JobStatus:
    name = str(raw).upper()
    try:
        return STATUS[name]
    except KeyError:
        raise JobFailed(f"unknown Braket task state {name!r}") from None


def classify(err: BaseException, where: str) -> QflhwError:
    """The qflhw error for an AWS/Braket exception: transient (retry) or permanent, scrubbed."""
    if isinstance(err, QflhwError):
        return err
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    msg = f"{where}: {type(err).__name__}: {scrub(err)}"
    if isinstance(err, (NoCredentialsError, PartialCredentialsError, NoRegionError)):
        return ConfigError(
            f"{where}: no usable AWS credentials or region ({type(err).__name__}); configure the standard "
            "AWS chain (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in TRANSIENT_CODES:
            return TransientBackendError(f"{msg} (retrying)")
        if code in _CREDENTIAL_CODES:
            return JobFailed(f"{msg} (check the AWS credentials and their Braket permissions)")
        return JobFailed(msg)
    if isinstance(err, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError,
                        ConnectionError, TimeoutError)):
        return TransientBackendError(msg)
    return JobFailed(msg)


def _is_aws_device(device: Any) -> bool:
    from braket.aws import AwsDevice

    return isinstance(device, AwsDevice)


def _program_set_limits(device: Any) -> tuple[bool, int | None, int | None]:
    """(supports program sets, max executables, max total shots) from the device's properties."""
    from braket.device_schema import DeviceActionType

    try:
        action = device.properties.action
    except Exception:  # noqa: BLE001 - a device without readable properties: assume no program sets
        return False, None, None
    ps = action.get(DeviceActionType.OPENQASM_PROGRAM_SET) if hasattr(action, "get") else None
    if ps is None:
        return False, None, None
    return True, getattr(ps, "maximumExecutables", None), getattr(ps, "maximumTotalShots", None)


def _native_gates(device: Any, profile: DeviceProfile) -> frozenset[str]:
    try:
        return frozenset(g.lower() for g in device.properties.paradigm.nativeGateSet)
    except Exception:  # noqa: BLE001 - simulators have no native gate set: use the profile's
        return frozenset(g.lower() for g in profile.native_gates)


def _directions(device: Any) -> frozenset[tuple[int, int]] | None:
    """The coupler directions a device lists, when it lists some only one way (IQM); else None."""
    try:
        conn = device.properties.paradigm.connectivity
    except Exception:  # noqa: BLE001 - simulators: any direction
        return None
    if conn.fullyConnected or not conn.connectivityGraph:
        return None
    listed = {(int(a), int(b)) for a, bs in conn.connectivityGraph.items() for b in bs}
    return frozenset(listed) if any((b, a) not in listed for a, b in listed) else None


def _max_shots(device: Any) -> int | None:
    try:
        return int(device.properties.service.shotsRange[1])
    except Exception:  # noqa: BLE001 - simulators publish no shot range here
        return None


def local_emulator(profile: DeviceProfile) -> Any:
    """Braket's ``LocalEmulator`` of a profile's device, from its ``properties`` JSON (under backends/)."""
    from braket.emulation.local_emulator import LocalEmulator

    if not profile.properties:
        raise ConfigError(f"profile {profile.name}: emulate = true needs properties = \"braket/<device>-properties.json\"")
    path = data_dir("backends") / profile.properties
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"profile {profile.name}: properties file {path} cannot be read ({err})") from err
    from qflhw.calibration.braket_import import load_braket_properties

    try:  # from the parsed capabilities, so the emulator also exposes them as .properties (limits, directions)
        return LocalEmulator.from_device_properties(load_braket_properties(text))
    except Exception as err:  # noqa: BLE001 - the SDK raises pydantic and value errors here
        raise ConfigError(f"profile {profile.name}: {path} is not device properties Braket can emulate ({err})") from err


def task_tags(key: JobKey | str, nonce: str, part: int, parts: int) -> dict[str, str]:
    """The tags of one task of a step: idempotency key (digest), run nonce, part i/n."""
    return {"qflhw": "1", "qflhw-key": digest(str(key)), "qflhw-run": nonce or "-", "qflhw-part": f"{part}/{parts}"}


def _count(value: Any) -> int:
    """A count the SDK reports, or 0 when it reports none."""
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else 0


class BraketJob:
    """One batch's task(s); ``result`` raises on failure or timeout, never returns None."""

    def __init__(self, device: BraketDevice, tasks: list[Any], layout: JobLayout, job_id: str | None = None):
        self.device = device
        self.tasks = tasks
        self.layout = layout
        self.job_id = job_id or SEPARATOR.join(str(t.id) for t in tasks)
        self._result: BatchResult | None = None

    def _where(self) -> str:
        return f"device {self.device.name}: task(s) {self.job_id}"

    def status(self) -> JobStatus:
        try:
            states = [normalize_status(t.state()) for t in self.tasks]
        except Exception as err:  # noqa: BLE001
            raise classify(err, self._where()) from err
        return combined_status(states)

    def _failure(self) -> str:
        reasons = []
        for t in self.tasks:
            try:
                meta = t.metadata()
                reasons.append(str(meta.get("failureReason") or meta.get("status") or ""))
            except Exception:  # noqa: BLE001 - the reason is a courtesy
                continue
        return scrub("; ".join(r for r in reasons if r)) or "no reason given"

    def queue_position(self) -> str | None:
        """The first unfinished task's position in its device queue (``AwsQuantumTask.queue_position``);
        None for local simulators, which have no queue."""
        for t in self.tasks:
            ask = getattr(t, "queue_position", None)
            if ask is None:
                return None
            try:
                info = ask()
            except Exception as err:  # noqa: BLE001
                raise classify(err, self._where()) from err
            position = getattr(info, "queue_position", None)
            if position is not None:
                return scrub(str(position))
        return None

    def cancel(self) -> None:
        try:
            for t in self.tasks:
                t.cancel()
        except Exception as err:  # noqa: BLE001
            raise classify(err, self._where()) from err

    def result(self, timeout: float | None = None) -> BatchResult:
        if self._result is not None:
            return self._result
        state = wait_final(self.status, timeout, self.device.poll_interval, self._where())
        if state != "done":
            raise JobFailed(f"{self._where()} {state}: {self._failure()}")
        dists: list[np.ndarray] = []
        shots_run = executables = 0
        try:
            for t in self.tasks:
                res = t.result()
                if res is None:  # the SDK's way of saying "no result" (failed, cancelled, timed out)
                    raise JobFailed(f"{self._where()}: task {t.id} gave no result: {self._failure()}")
                dists.extend(self._distributions(res, len(dists)))
                meta = getattr(res, "task_metadata", None)
                if hasattr(res, "entries"):  # a program set: successfulShots over all its executables
                    shots_run += _count(getattr(meta, "successfulShots", None))
                    executables += _count(getattr(res, "num_executables", None)) or len(res.entries)
                else:
                    shots_run += _count(getattr(meta, "shots", None))
                    executables += 1
        except Exception as err:  # noqa: BLE001
            raise classify(err, self._where()) from err
        self._result = BatchResult(
            items=item_results(self.layout, dists),
            job_id=self.job_id,
            device=self.device.name,
            calibration_id=self.layout.calibration_id,
            shots=self.layout.shots,
            metadata={
                "provider": "braket", "tasks": len(self.tasks), "local": not self.device.remote,
                "emulated": self.device.emulated,
                "usage": {"tasks": len(self.tasks), "shots": shots_run, "executables": executables},
            },
        )
        return self._result

    def _distributions(self, res: Any, start: int) -> list[np.ndarray]:
        """Outcome distributions of one task's executables (program set or single circuit)."""
        entries = [e.entries[0] for e in res.entries] if hasattr(res, "entries") else [res]
        per_exec = [(it, k) for it in self.layout.items for _ in it.bases for k in range(it.num_bindings)]
        out = []
        for j, entry in enumerate(entries):
            if getattr(entry, "measured_qubits", None) is None:  # ProgramSetExecutableFailure in place of a result
                meta = getattr(entry, "failureMetadata", None)
                reason = scrub(getattr(meta, "failureReason", None) or type(entry).__name__)
                category = getattr(getattr(meta, "category", None), "value", getattr(meta, "category", ""))
                raise JobFailed(f"{self._where()}: executable {start + j} of the program set failed ({category}): {reason}")
            it = per_exec[start + j][0]
            measured = [int(q) for q in entry.measured_qubits]
            cols = [measured.index(label) for label in it.measured]
            bits = np.asarray(entry.measurements, dtype=np.int64)[:, cols]
            out.append(probabilities(bits @ (1 << np.arange(len(cols), dtype=np.int64)), it.num_qubits))
        return out


class BraketDevice(Device):
    """A client's Braket QPU (``AwsDevice``) or a local stand-in (``LocalSimulator``, ``LocalEmulator``).

    ``store``: folder for job layouts (fetching a job by its task ARN from a later process).
    ``task_factory``: how a task is rebuilt from its ARN (default ``AwsQuantumTask``; tests inject).
    """

    def __init__(
        self,
        profile: DeviceProfile,
        calibration: Calibration,
        *,
        device: Any,
        seed: int = 1234,
        store: Path | None = None,
        poll_interval: float | None = None,
        task_factory: Any = None,
        emulated: bool = False,
        lookback_days: float = 14.0,
    ):
        super().__init__(profile, calibration, seed=seed)
        self.device = device
        self.remote = _is_aws_device(device)
        self.emulated = emulated
        self.lookback_days = lookback_days
        self.labels = calibration.labels
        self.natives = _native_gates(device, profile)
        self.directions = _directions(device)
        twin_2q = {g for g in calibration.native_gates if g in ("rxx", "rzz", "ms", "zz")}
        for braket_name, twin in (("zz", ("rxx", "ms")), ("ms", ("rzz", "zz"))):
            if braket_name in self.natives and twin_2q & set(twin) and not ({"zz", "ms"} - {braket_name}) & self.natives:
                raise ConfigError(
                    f"profile {profile.name}: {profile.device} entangles with {braket_name.upper()} but the snapshot "
                    f"{calibration.id} is in the {sorted(twin_2q & set(twin))[0]} basis; use a snapshot of this device "
                    "(`qflhw calibration import` its properties)"
                )
        device_shots = _max_shots(device)
        if device_shots is not None and profile.limits.max_shots > device_shots:
            raise ConfigError(
                f"profile {profile.name}: limits.max_shots = {profile.limits.max_shots} but {profile.device} takes at "
                f"most {device_shots} shots per task; set limits.max_shots = {device_shots}"
            )
        self.program_sets, dev_max, self.max_total_shots = _program_set_limits(device)
        limit = profile.limits.max_circuits
        if self.program_sets and dev_max is not None and dev_max < limit:
            raise ConfigError(
                f"profile {profile.name}: limits.max_circuits = {limit} but {profile.device} takes at most "
                f"{dev_max} executables per program set; set limits.max_circuits = {dev_max} so the budget counts tasks"
            )
        if not self.program_sets and limit != 1:
            raise ConfigError(
                f"profile {profile.name}: {profile.device} runs no program sets, so every executable is a task; "
                "set limits.max_circuits = 1 so the budget charges each task fee"
            )
        self.max_executables = limit
        self.layouts = LayoutStore(store)
        self.poll_interval = poll_interval if poll_interval is not None else (5.0 if self.remote else 0.01)
        self._task_factory = task_factory
        self._circuits: dict[tuple[int, str], Any] = {}
        self._jobs: dict[str, BraketJob] = {}
        self._partial: dict[str, dict[int, Any]] = {}  # key -> tasks created so far, by part
        self._lock = threading.Lock()
        self.submissions = 0  # jobs (batches) this object sent
        self.tasks_sent = 0  # Braket tasks created

    # ------------------------------------------------------------------ circuits
    def _oriented(self, circuit, labels: list[int]):  # noqa: ANN001, ANN202
        """Symmetric two-qubit gates turned onto the coupler direction the device lists."""
        if self.directions is None:
            return circuit
        out = circuit.copy_empty_like()
        for ci in circuit.data:
            qargs = list(ci.qubits)
            if len(qargs) == 2:
                a, b = (labels[circuit.find_bit(q).index] for q in qargs)
                if (a, b) not in self.directions and (b, a) in self.directions:
                    if ci.operation.name not in _SYMMETRIC_2Q:
                        raise ConfigError(
                            f"device {self.name}: {ci.operation.name} on {a}->{b}, but the device lists only {b}->{a}"
                        )
                    qargs.reverse()
            out.append(ci.operation, qargs, ci.clbits)
        return out

    def _native(self, circuit):  # noqa: ANN001, ANN202
        """A bound circuit in the snapshot's qiskit basis -> the device's Braket native gates."""
        if "gpi2" in self.natives:
            from qflhw.circuits.ionq import to_ionq_native

            return to_ionq_native(circuit)[0]
        if {"prx", "r"} & self.natives and "rz" not in self.natives:  # IQM: virtual rz (qflhw.circuits.iqm)
            from qflhw.circuits.iqm import absorb_virtual_rz

            return absorb_virtual_rz(circuit)[0]
        if "rx" in self.natives and not {"sx", "x"} & self.natives:
            from qiskit.circuit.library import RXGate

            out = circuit.copy_empty_like()
            for ci in circuit.data:
                op = ci.operation
                if op.name in ("sx", "x"):
                    op = RXGate(np.pi / 2 if op.name == "sx" else np.pi)
                out.append(op, ci.qubits, ci.clbits)
            return out
        return circuit

    def _measured(self, tc, basis: str):  # noqa: ANN001, ANN202
        key = (id(tc), basis)
        hit = self._circuits.get(key)
        if hit is None:
            circ = measured_circuit(tc, basis, self.calibration, tc.physical_qubits)
            self._circuits[key] = hit = (tc, circ)  # keep tc alive: its id stays unique
        return hit[1]

    def executables(self, batch: Batch) -> list[tuple[Any, int | None]]:
        """(Braket verbatim circuit, shots) per executable, in :class:`JobLayout` order."""
        from qiskit_braket_provider import to_braket

        out = []
        for item in batch.items:
            tc = item.circuit
            labels = [self.labels[p] for p in tc.physical_qubits]
            for basis in measurement_bases(item.observables):
                circ = self._measured(tc, basis)
                cols = parameter_columns(circ, item.parameters, tc.logical.name)
                for row in item.bindings:
                    bound = circ.assign_parameters(dict(zip(circ.parameters, row[cols]))) if cols else circ
                    with warnings.catch_warnings():  # "device does not support global phase": irrelevant here
                        warnings.simplefilter("ignore")
                        native = self._native(self._oriented(bound, labels))
                        out.append((to_braket(native, verbatim=True, qubit_labels=labels), item.shots))
        return out

    # ------------------------------------------------------------------ submission
    def _chunk_size(self, shots: int) -> int:
        """Executables per task at ``shots`` each: the program-set limits (executables, total shots)."""
        size = self.max_executables if self.program_sets else 1
        if self.program_sets and self.max_total_shots:
            size = max(1, min(size, self.max_total_shots // shots))
        return size

    def _chunks(self, execs: list[tuple[Any, int | None]], shots: int) -> list[tuple[list[Any], int]]:
        """Executables grouped into tasks: one per shot count, split at the device's limits."""
        groups: dict[int, list[Any]] = {}
        for circ, own in execs:
            groups.setdefault(own if own is not None else shots, []).append(circ)
        chunks: list[tuple[list[Any], int]] = []
        for s, circs in groups.items():
            size = self._chunk_size(s)
            chunks.extend((circs[i : i + size], s) for i in range(0, len(circs), size))
        return chunks

    def jobs_needed(self, batch: Batch, shots: int | None) -> int | None:
        """Tasks the step will be (the ledger charges their fees): per shot value, split at the limits."""
        if not shots:
            return None
        groups: dict[int, int] = {}
        for n, s in batch.shot_groups(shots):
            groups[s] = groups.get(s, 0) + n
        return sum(-(-n // self._chunk_size(s)) for s, n in groups.items())

    def submit(self, batch: Batch, shots: int | None) -> BraketJob:
        if not shots or shots < 1:
            raise ConfigError(f"device {self.name}: Braket devices sample; set training.shots >= 1 (0 means exact, fake only)")
        layout = JobLayout.of(batch, shots, device=self.name, calibration_id=self.calibration.id, labels=self.labels)
        where = f"device {self.name}: submitting {batch.key or 'a batch'}"
        too_many = [s for _, s in batch.shot_groups(shots) if self.program_sets and self.max_total_shots and s > self.max_total_shots]
        if too_many:
            raise ConfigError(
                f"{where}: {max(too_many)} shots per circuit exceed the {self.max_total_shots} shots {self.profile.device} "
                "takes in one program set; lower training.shots"
            )
        execs = self.executables(batch)
        chunks = self._chunks(execs, shots)
        ref = str(batch.key) if batch.key else ""
        with self._lock:
            self.layouts.before_submit(layout)
            done = self._partial.setdefault(ref, {}) if ref else {}
            try:
                for part, (circs, s) in enumerate(chunks):
                    if part in done:  # created by an earlier attempt: never sent twice
                        continue
                    kwargs = {"tags": task_tags(ref, batch.nonce, part, len(chunks))} if self.remote and ref else {}
                    spec_: Any = circs[0]
                    task_shots = s
                    if self.program_sets:
                        from braket.program_sets import ProgramSet

                        spec_ = ProgramSet(circs, shots_per_executable=s)
                        task_shots = spec_.total_shots
                    if self.remote:
                        done[part] = self.device.run(spec_, shots=task_shots, **kwargs)
                    else:
                        with _LOCAL_RUN_LOCK:
                            done[part] = self.device.run(spec_, shots=task_shots, **kwargs)
                    self.tasks_sent += 1
            except Exception as err:  # noqa: BLE001
                raise classify(err, where + (f" (part {len(done) + 1} of {len(chunks)}; the {len(done)} created are kept "
                                             "and not sent again)" if done else "")) from err
            tasks = [done[i] for i in range(len(chunks))]
            self._partial.pop(ref, None)
            self.submissions += 1
            handle = BraketJob(self, tasks, layout)
            self.layouts.submitted(handle.job_id, layout)
            self._jobs[handle.job_id] = handle
        return handle

    # ------------------------------------------------------------------ fetching
    def job(self, job_id: str) -> BraketJob:
        """An earlier job by its task ARN(s): this process's, or (remote) rebuilt with ``AwsQuantumTask``."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        where = f"device {self.name}: task(s) {job_id}"
        layout = self.layouts.for_earlier_job(job_id, where, remote=self.remote)
        factory = self._task_factory
        if factory is None:
            from braket.aws import AwsQuantumTask

            factory = AwsQuantumTask
        try:
            tasks = [factory(arn) for arn in job_id.split(SEPARATOR)]
        except Exception as err:  # noqa: BLE001
            raise classify(err, where) from err
        return BraketJob(self, tasks, layout, job_id)

    def find(self, key: JobKey, nonce: str = "") -> BraketJob | None:
        """The step sent earlier under ``key`` by this run (tags: key digest and run nonce).

        ``SearchQuantumTasks`` filters on the device ARN and creation time only, so the tags are
        matched here. All parts found: the job. Some parts found: they are kept, so the next
        :meth:`submit` sends only the missing ones, and None is returned.
        """
        if not self.remote:
            return None
        layout = self.layouts.by_key(key)
        if layout is None:
            return None
        where = f"device {self.name}: looking up {key}"
        want = {"qflhw-key": digest(str(key)), "qflhw-run": nonce or "-"}
        since = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=self.lookback_days)
        parts: dict[int, str] = {}
        total = 0
        try:
            client = self.device.aws_session.braket_client
            kwargs: dict[str, Any] = {
                "filters": [
                    {"name": "deviceArn", "operator": "EQUAL", "values": [self.profile.device]},
                    {"name": "createdAt", "operator": "GTE", "values": [since.strftime("%Y-%m-%dT%H:%M:%SZ")]},
                ],
                "maxResults": 100,
            }
            while True:
                page = client.search_quantum_tasks(**kwargs)
                for summary in page.get("quantumTasks", []):
                    tags = summary.get("tags") or {}
                    if all(tags.get(k) == v for k, v in want.items()) and "/" in tags.get("qflhw-part", ""):
                        if str(summary.get("status", "")).upper() in ("FAILED", "CANCELLED", "CANCELLING"):
                            continue
                        part, _, n = tags["qflhw-part"].partition("/")
                        parts.setdefault(int(part), summary["quantumTaskArn"])
                        total = int(n)
                token = page.get("nextToken")
                if not token:
                    break
                kwargs["nextToken"] = token
        except Exception as err:  # noqa: BLE001
            raise classify(err, where) from err
        if not parts:
            return None
        factory = self._task_factory
        if factory is None:
            from braket.aws import AwsQuantumTask

            factory = AwsQuantumTask
        try:
            found = {i: factory(arn) for i, arn in parts.items()}
        except Exception as err:  # noqa: BLE001
            raise classify(err, where) from err
        if len(found) < total:
            with self._lock:
                self._partial.setdefault(str(key), {}).update(found)
            return None
        handle = BraketJob(self, [found[i] for i in range(total)], layout)
        self.layouts.submitted(handle.job_id, layout)
        self._jobs[handle.job_id] = handle
        return handle


def connect(
    profile: DeviceProfile,
    *,
    seed: int = 1234,
    calibration: str | None = None,
    store: Path | None = None,
    device: Any = None,
    calibration_root: Path | None = None,
) -> BraketDevice:
    """Open the ``AwsDevice`` of the profile's ARN and snapshot its live properties."""
    where = f"device {profile.name} (Braket {profile.device})"
    try:
        if device is None:
            from braket.aws import AwsDevice

            device = AwsDevice(profile.device)  # standard AWS credential chain; region from the ARN
        status = str(getattr(device, "status", "ONLINE")).upper()
        if status == "RETIRED":
            raise ConfigError(f"{where} is retired; use {profile.replacement or 'a current device profile (see `qflhw devices`)'}")
        if calibration:
            cal = _calibration.load(calibration)
        else:
            from qflhw.calibration.braket_import import from_braket_properties

            live = from_braket_properties(
                device.properties, device=profile.name, kind="live", source=f"AwsDevice({profile.device}).properties"
            )
            cal = adopt_snapshot(live, calibration_root)
    except QflhwError:
        raise
    except Exception as err:  # noqa: BLE001
        raise classify(err, where) from err
    dev = BraketDevice(profile, cal, device=device, seed=seed, store=store)
    dev.queue = read_queue_depth(lambda: _normal_queue(device.queue_depth()), where)
    return dev


def _normal_queue(info: Any) -> object:
    """The normal (not Hybrid Jobs priority) quantum-task queue of ``AwsDevice.queue_depth()``."""
    from braket.aws.queue_information import QueueType

    return info.quantum_tasks.get(QueueType.NORMAL)
