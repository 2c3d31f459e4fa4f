"""What every device offers: batches in, one provider job per batch, results out.

A :class:`Batch` is everything one client needs for one optimizer step (every parameter-shift
binding, every mitigation variant), so one step is one provider job. Results keep the shape of
the request: one :class:`ItemResult` per :class:`BatchItem`, values indexed
``[binding, observable]``.
"""

from __future__ import annotations

import abc
import io
import pickle
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.calibration.snapshot import Calibration
from qflhw.circuits.measure import measurement_bases
from qflhw.circuits.transpile import TranspileCache, Transpiled
from qflhw.config.profiles import DeviceProfile
from qflhw.errors import ConfigError

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
_KEY = re.compile(r"^(?P<run>[^/]+)/r(?P<round>\d+)/(?P<client>[^/]+)/(?P<phase>[sep])(?P<step>\d+)$")


@dataclass(frozen=True, order=True)
class JobKey:
    """The idempotency key of one provider job: which run, round, client and step it belongs to.

    Written ``<run>/r<round>/<client>/s<step>`` (``e<step>`` for an evaluation job, ``p<step>`` for
    the measured release of a differentially private update): the journal,
    job tags and the fake provider's store all use that text, and :meth:`parse` reads it back.
    Run and client names cannot hold ``/`` (the spec forbids it), so the text is unambiguous.
    """

    run: str
    round: int
    client: str
    step: int
    phase: Literal["s", "e", "p"] = "s"  # s: a training step; e: an evaluation; p: a private release

    def __post_init__(self) -> None:
        if "/" in self.run or "/" in self.client or not self.run or not self.client:
            raise ConfigError(f"job key parts must be non-empty and free of '/': run {self.run!r}, client {self.client!r}")

    def __str__(self) -> str:
        return f"{self.run}/r{self.round}/{self.client}/{self.phase}{self.step}"

    @classmethod
    def parse(cls, text: str) -> JobKey:
        m = _KEY.match(text)
        if m is None:
            raise ConfigError(f"{text!r} is not a job key <run>/r<round>/<client>/s<step>")
        return cls(m["run"], int(m["round"]), m["client"], int(m["step"]), m["phase"])  # type: ignore[arg-type]

    @property
    def round_group(self) -> str:
        """``<run>/r<round>``: the jobs of one round share a provider execution mode."""
        return f"{self.run}/r{self.round}"


@dataclass(frozen=True, eq=False)
class BatchItem:
    """One transpiled circuit evaluated at many bindings for a few logical observables."""

    circuit: Transpiled
    parameters: tuple  # logical Parameters, one per column of ``bindings``
    bindings: np.ndarray  # shape (n_bindings, len(parameters))
    observables: tuple[SparsePauliOp, ...]
    tag: str = ""  # e.g. "scale=3" for a ZNE variant
    shots: int | None = None  # this item's shots per circuit when sampled; None: the batch's

    def __post_init__(self) -> None:
        if self.shots is not None and self.shots < 1:
            raise ConfigError(f"item shots must be >= 1 for {self.circuit.logical.name!r}, got {self.shots}")
        b = np.asarray(self.bindings, dtype=float)
        if b.ndim != 2 or b.shape[1] != len(self.parameters):
            raise ConfigError(
                f"bindings must have shape (n, {len(self.parameters)}) for {self.circuit.logical.name!r}, "
                f"got {b.shape}"
            )
        if not np.all(np.isfinite(b)):
            raise ConfigError(f"bindings for {self.circuit.logical.name!r} contain NaN or infinity")
        object.__setattr__(self, "bindings", b)

    @property
    def num_bindings(self) -> int:
        return self.bindings.shape[0]


@dataclass(frozen=True, eq=False)
class Batch:
    """All items of one provider job; ``key`` is its idempotency key (None: an ad-hoc job).

    ``nonce`` names the run that sends it (the journal keeps it, so a resumed run keeps it too):
    cloud job tags carry it next to the key, so two runs of the same spec never adopt each
    other's jobs. It never enters a seed: the numbers depend on the key only.
    """

    items: tuple[BatchItem, ...]
    key: JobKey | None = None
    nonce: str = ""

    @property
    def num_bindings(self) -> int:
        return sum(i.num_bindings for i in self.items)

    @property
    def num_circuits(self) -> int:
        """Executables a provider bills for: one per binding per measurement basis."""
        return sum(i.num_bindings * len(measurement_bases(i.observables)) for i in self.items)

    def shot_groups(self, shots: int | None) -> list[tuple[int, int]]:
        """(executables, shots each) per item when sent with ``shots`` (items' own shots first)."""
        if shots is None:
            return []
        return [(i.num_bindings * len(measurement_bases(i.observables)), i.shots if i.shots is not None else shots)
                for i in self.items]

    def total_shots(self, shots: int | None) -> int:
        """Shots the batch runs when sent with ``shots`` (items' own shots take precedence)."""
        if shots is None:  # exact expectations: nothing is sampled
            return 0
        return sum(
            i.num_bindings * len(measurement_bases(i.observables)) * (i.shots if i.shots is not None else shots)
            for i in self.items
        )


@dataclass
class ItemResult:
    values: np.ndarray  # (n_bindings, n_observables)
    stderr: np.ndarray  # standard error of each value (0 in exact mode)
    bases: list[str] = field(default_factory=list)  # measurement bases, see devices.measure
    distributions: list[np.ndarray] = field(default_factory=list)  # per basis: (n_bindings, 2**n)


@dataclass
class BatchResult:
    items: list[ItemResult]
    job_id: str
    device: str
    calibration_id: str
    shots: int | None  # None: exact expectations
    metadata: dict = field(default_factory=dict)


class JobHandle(Protocol):
    """A submitted provider job; ``result`` raises on failure or timeout, never returns None."""

    job_id: str

    def status(self) -> JobStatus: ...

    def result(self, timeout: float | None = None) -> BatchResult: ...

    def cancel(self) -> None:
        """Ask the provider to cancel the job (a no-op once it is final)."""
        ...

    def queue_position(self) -> str | None:
        """The job's place in the device queue as the provider words it (e.g. ``"12"``, ``">2000"``),
        or None when it is not queued or the SDK does not report it."""
        ...


class Device(abc.ABC):
    """A client's QPU (or its fake twin): transpiles for itself and runs batches as jobs.

    A device may hold provider resources (an open Runtime execution mode): ``close()`` releases
    them, and ``with make_device(...) as dev:`` closes it on the way out.
    """

    #: Seconds between state polls while waiting for a job (remote devices set their own).
    poll_interval: float = 0.01
    #: The provider's queue depth read when a real QPU connected (``devices.remote.QueueReading``); None: not known.
    queue: Any = None

    def __init__(
        self,
        profile: DeviceProfile,
        calibration: Calibration,
        *,
        seed: int = 1234,
        virtual_rz: bool = True,
        channel_correction: bool = False,
    ):
        self.profile = profile
        self.calibration = calibration
        self.seed = seed
        self._transpiled = TranspileCache(
            calibration, profile.optimization_level, seed, virtual_rz=virtual_rz, channel_correction=channel_correction
        )

    @property
    def name(self) -> str:
        return self.profile.name

    def set_calibration(self, calibration: Calibration) -> None:
        """Switch this device to another snapshot of itself (the device drifted or was recalibrated).

        Later :meth:`transpile` calls compile for the new calibration (the noise-aware layout may
        move); subclasses rebuild whatever else depends on it (a fake twin its noise).
        """
        if calibration.num_qubits != self.calibration.num_qubits:
            raise ConfigError(
                f"device {self.name}: calibration {calibration.id} has {calibration.num_qubits} qubits, the device "
                f"{self.calibration.num_qubits}; use a snapshot of the same device"
            )
        self.calibration = calibration
        self._transpiled.use(calibration)

    def transpile(self, circuit: QuantumCircuit) -> Transpiled:
        """Compile a logical circuit for this device (cached per circuit and calibration)."""
        return self._transpiled.get(circuit)

    @abc.abstractmethod
    def submit(self, batch: Batch, shots: int | None) -> JobHandle:
        """Send one batch as one provider job; returns as soon as the job id exists."""

    @abc.abstractmethod
    def job(self, job_id: str) -> JobHandle:
        """Fetch an earlier job by id (for resume)."""

    def find(self, key: JobKey, nonce: str = "") -> JobHandle | None:
        """The job sent earlier under idempotency ``key`` by the run ``nonce``, if the provider can
        tell (job tags).

        Covers a crash between sending a job and journaling its id, and a submission that failed
        ambiguously (a timeout after the provider created the job). Providers that cannot look
        jobs up by tag return None.
        """
        return None

    def jobs_needed(self, batch: Batch, shots: int | None) -> int | None:
        """How many provider jobs (tasks) ``batch`` becomes, when the device knows better than its
        profile's limits (mixed shots, device limits); None: one job, or as the profile says."""
        return None

    def run(self, batch: Batch, shots: int | None, timeout: float | None = None) -> BatchResult:
        return self.submit(batch, shots).result(timeout)

    def close(self) -> None:  # noqa: B027 - an optional hook: only devices holding resources override it
        """Release provider resources (open execution modes); jobs already sent still run."""

    def __enter__(self) -> Device:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def pack_result(result: BatchResult) -> bytes:
    """Bytes of a result (arrays as npz): for the journal and the fake provider's job store."""
    arrays: dict[str, np.ndarray] = {}
    for i, item in enumerate(result.items):
        arrays[f"v{i}"] = item.values
        arrays[f"s{i}"] = item.stderr
        for k, d in enumerate(item.distributions):
            arrays[f"d{i}_{k}"] = d
    meta = {
        "job_id": result.job_id,
        "device": result.device,
        "calibration_id": result.calibration_id,
        "shots": result.shots,
        "metadata": result.metadata,
        "bases": [item.bases for item in result.items],
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return pickle.dumps((meta, buf.getvalue()), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_result(blob: bytes) -> BatchResult:
    meta, npz = pickle.loads(blob)
    arrays = np.load(io.BytesIO(npz))
    items = []
    for i, bases in enumerate(meta["bases"]):
        dists = [arrays[f"d{i}_{k}"] for k in range(len(bases))] if f"d{i}_0" in arrays else []
        items.append(ItemResult(arrays[f"v{i}"], arrays[f"s{i}"], list(bases), dists))
    return BatchResult(
        items=items,
        job_id=meta["job_id"],
        device=meta["device"],
        calibration_id=meta["calibration_id"],
        shots=meta["shots"],
        metadata=meta["metadata"],
    )
