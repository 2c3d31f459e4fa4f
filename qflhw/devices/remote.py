"""What the real-QPU devices (IBM Runtime, Amazon Braket) share, kept free of any cloud SDK.

* :class:`JobLayout`: how a provider job's raw measurements map back to the batch (items, bases,
  bindings, observables, shots). It is written to the device's store before the job is sent, so
  a job fetched by id in another process (``qflhw resume``) can still be turned into values.
* :func:`measured_circuit`: a transpiled circuit rotated into one measurement basis with the
  device's native gates and measured into a register ``c`` whose bit i is logical qubit i.
* :func:`item_results`: outcome counts per executable -> :class:`ItemResult` (expectations from
  distributions exactly as on fake devices, see :mod:`qflhw.circuits.measure`).
* :func:`adopt_snapshot`: save a live capture as a dated snapshot (a new file when the day's
  figures changed), or reuse the stored one with the same figures.
* :func:`scrub`: remove credentials from text before it reaches an exception or a log.
* :func:`read_queue_depth`: the provider's queue depth at connect time (IBM pending jobs, Braket
  queue depth), recorded on the device for the run summary and wall-time estimates.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qiskit.circuit import ClassicalRegister, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import atomic_write, digest
from qflhw.calibration.snapshot import Calibration, save_capture
from qflhw.calibration.target import to_target
from qflhw.circuits.measure import basis_rotation, expectations, measurement_bases
from qflhw.circuits.transpile import Transpiled
from qflhw.devices.base import FINAL_STATES, Batch, ItemResult, JobKey, JobStatus
from qflhw.errors import ConfigError, JobFailed, TransientBackendError

log = logging.getLogger("qflhw.devices")

#: Environment variables whose values are credentials: never in a message, file or log.
SECRET_ENV = ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_SECRET_WORDS = re.compile(
    r"(?i)\b(token|api[_-]?key|apikey|secret|password|authorization|bearer|crn:v1)([\"'\s:=]+)([^\s\"',;)]+)"
)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")


def scrub(text: object) -> str:
    """``text`` with credential values (env secrets, tokens, AWS key ids) replaced by ``***``."""
    out = str(text)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            out = out.replace(value, "***")
    out = _SECRET_WORDS.sub(lambda m: m.group(1) + m.group(2) + "***", out)
    return _AWS_KEY_ID.sub("***", out)


# ------------------------------------------------------------------------------------ layouts
@dataclass(frozen=True)
class ItemLayout:
    num_bindings: int
    bases: tuple[str, ...]
    observables: tuple[tuple[tuple[str, float], ...], ...]  # per observable: (Pauli label, real coeff)
    shots: int
    num_qubits: int  # logical qubits measured (bits per outcome)
    tag: str = ""
    measured: tuple[int, ...] = ()  # Braket: the qubit label measuring each logical qubit

    def operators(self) -> list[SparsePauliOp]:
        return [SparsePauliOp([lab for lab, _ in terms], [c for _, c in terms]) for terms in self.observables]


@dataclass(frozen=True)
class JobLayout:
    """How to read one job's executables back into the batch's items (JSON-serialisable).

    Executables are ordered item by item, basis by basis, binding by binding (IBM groups the
    bindings of one (item, basis) into one pub; Braket sends each as its own executable).
    """

    key: str
    device: str
    calibration_id: str
    shots: int
    primitive: str  # "sampler": distributions; "estimator": Runtime expectation values
    items: tuple[ItemLayout, ...]

    @classmethod
    def of(
        cls,
        batch: Batch,
        shots: int,
        *,
        device: str,
        calibration_id: str,
        primitive: str = "sampler",
        labels: Sequence[int] | None = None,
    ) -> JobLayout:
        """The layout of ``batch``; ``labels`` (Braket) maps snapshot qubit index -> device label."""
        items = []
        for it in batch.items:
            obs = tuple(
                tuple((p.to_label(), float(np.real(c))) for p, c in zip(op.paulis, op.coeffs)) for op in it.observables
            )
            items.append(
                ItemLayout(
                    num_bindings=it.num_bindings,
                    bases=tuple(measurement_bases(it.observables)),
                    observables=obs,
                    shots=it.shots if it.shots is not None else shots,
                    num_qubits=it.circuit.logical.num_qubits,
                    tag=it.tag,
                    measured=tuple(labels[p] for p in it.circuit.final_physical) if labels is not None else (),
                )
            )
        return cls(str(batch.key) if batch.key else "", device, calibration_id, shots, primitive, tuple(items))

    @property
    def num_executables(self) -> int:
        return sum(i.num_bindings * len(i.bases) for i in self.items)

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "device": self.device,
                "calibration_id": self.calibration_id,
                "shots": self.shots,
                "primitive": self.primitive,
                "items": [
                    {
                        "num_bindings": i.num_bindings,
                        "bases": list(i.bases),
                        "observables": [[list(t) for t in o] for o in i.observables],
                        "shots": i.shots,
                        "num_qubits": i.num_qubits,
                        "tag": i.tag,
                        "measured": list(i.measured),
                    }
                    for i in self.items
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> JobLayout:
        raw = json.loads(text)
        items = tuple(
            ItemLayout(
                num_bindings=i["num_bindings"],
                bases=tuple(i["bases"]),
                observables=tuple(tuple((lab, float(c)) for lab, c in o) for o in i["observables"]),
                shots=i["shots"],
                num_qubits=i["num_qubits"],
                tag=i.get("tag", ""),
                measured=tuple(i.get("measured", ())),
            )
            for i in raw["items"]
        )
        return cls(raw["key"], raw["device"], raw["calibration_id"], raw["shots"], raw["primitive"], items)


class LayoutStore:
    """Job layouts by job id and by idempotency key: in memory, and on disk when given a folder."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else None
        self._mem: dict[str, str] = {}

    def _path(self, name: str) -> Path | None:
        return self.folder / f"layout-{digest(name)}.json" if self.folder else None

    def _put(self, name: str, text: str) -> None:
        self._mem[name] = text
        path = self._path(name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, text, fsync=False)

    def _get(self, name: str) -> str | None:
        if name in self._mem:
            return self._mem[name]
        path = self._path(name)
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None

    def before_submit(self, layout: JobLayout) -> None:
        if layout.key:
            self._put("key:" + layout.key, layout.to_json())

    def submitted(self, job_id: str, layout: JobLayout) -> None:
        self._put("job:" + job_id, layout.to_json())

    def by_job(self, job_id: str) -> JobLayout | None:
        text = self._get("job:" + job_id)
        return JobLayout.from_json(text) if text else None

    def by_key(self, key: JobKey) -> JobLayout | None:
        text = self._get("key:" + str(key))
        return JobLayout.from_json(text) if text else None

    def for_earlier_job(self, job_id: str, where: str, *, remote: bool) -> JobLayout:
        """The stored layout of a job another process sent, needed to read its results back.

        Local-mode jobs (Runtime local mode, Braket local simulators) live only in their process,
        and a job without a stored layout cannot be decoded: both are a :class:`JobFailed`, which
        makes the runner send the step again.
        """
        if not remote:
            raise JobFailed(f"{where}: local jobs are kept only in the process that ran them")
        layout = self.by_job(job_id)
        if layout is None:
            raise JobFailed(f"{where}: no stored layout for it, so its results cannot be read; it will be sent again")
        return layout


# ------------------------------------------------------------------------------------ circuits
def placed_circuit(
    tc: Transpiled, calibration: Calibration, space: Sequence[int] | None = None
) -> tuple[QuantumCircuit, list[int]]:
    """``tc``'s compact circuit on the qubits ``space`` (default: the whole device), unmeasured.

    Compact qubit j lands on physical qubit ``tc.physical_qubits[j]``; returns the circuit and
    the position in ``space`` of each logical qubit at the end (where it is measured).
    """
    space = list(range(calibration.num_qubits)) if space is None else list(space)
    where = {p: i for i, p in enumerate(space)}
    missing = [p for p in tc.physical_qubits if p not in where]
    if missing:
        raise ConfigError(f"physical qubits {missing} of {tc.logical.name!r} are outside the backend's qubits")
    out = QuantumCircuit(len(space), name=tc.compact.name, global_phase=tc.compact.global_phase)
    out.compose(tc.compact, qubits=[where[p] for p in tc.physical_qubits], inplace=True)
    return out, [where[p] for p in tc.final_physical]


def measured_circuit(
    tc: Transpiled, basis: str, calibration: Calibration, space: Sequence[int] | None = None
) -> QuantumCircuit:
    """:func:`placed_circuit` rotated into ``basis`` with native gates and measured into ``c``.

    Bit i of ``c`` measures logical qubit i, so outcome indices follow :mod:`qflhw.circuits.measure`.
    """
    out, finals = placed_circuit(tc, calibration, space)
    rot = basis_rotation(basis, to_target(calibration, tc.final_physical))
    if rot.size():
        out.compose(rot, qubits=finals, inplace=True)
    creg = ClassicalRegister(len(finals), "c")
    out.add_register(creg)
    for i, q in enumerate(finals):
        out.measure(q, creg[i])
    return out


def parameter_columns(circuit: QuantumCircuit, parameters: Sequence, name: str) -> list[int]:
    """Binding columns in ``circuit.parameters`` order (how every SDK wants parameter values)."""
    column = {p: i for i, p in enumerate(parameters)}
    missing = [p.name for p in circuit.parameters if p not in column]
    if missing:
        raise ConfigError(f"no binding column for parameter(s) {missing} of {name!r}")
    return [column[p] for p in circuit.parameters]


# ------------------------------------------------------------------------------------ results
def probabilities(outcomes: np.ndarray, num_bits: int) -> np.ndarray:
    """Empirical distribution (2**num_bits,) of integer outcomes (bit i = logical qubit i)."""
    counts = np.bincount(np.asarray(outcomes, dtype=np.int64), minlength=2**num_bits)
    return counts / max(len(outcomes), 1)


def item_results(layout: JobLayout, distributions: Sequence[np.ndarray]) -> list[ItemResult]:
    """Values from one distribution per executable, in :class:`JobLayout` order."""
    out, k = [], 0
    for it in layout.items:
        per_basis = []
        for _ in it.bases:
            per_basis.append(np.stack(distributions[k : k + it.num_bindings]))
            k += it.num_bindings
        values, var = expectations(per_basis, list(it.bases), it.operators())
        out.append(ItemResult(values, np.sqrt(var / it.shots), list(it.bases), per_basis))
    if k != len(distributions):
        raise JobFailed(f"job for {layout.key or 'a batch'} returned {len(distributions)} executables, expected {k}")
    return out


# ------------------------------------------------------------------------------------ waiting
def combined_status(states: Sequence[JobStatus]) -> JobStatus:
    """The state of one batch sent as several provider jobs: failed or cancelled if any part is,
    done when all are, running once any part has started, else queued."""
    for final in ("failed", "cancelled"):
        if final in states:
            return final
    if all(s == "done" for s in states):
        return "done"
    return "running" if "running" in states or "done" in states else "queued"


def wait_final(status: Callable[[], JobStatus], timeout: float | None, poll: float, what: str) -> JobStatus:
    """Poll ``status`` until a final state; past ``timeout`` raise TransientBackendError (retry the wait)."""
    start = time.monotonic()
    while True:
        state = status()
        if state in FINAL_STATES:
            return state
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TransientBackendError(f"{what}: still {state} after {timeout:g} s; waiting again resumes it")
        time.sleep(poll)


# ------------------------------------------------------------------------------------ queues
@dataclass(frozen=True)
class QueueReading:
    """The provider's queue depth for a device when a client connected (UTC ISO time)."""

    pending: int  # jobs or tasks waiting; '>4000' (Braket's cap) reads as 4000
    read: str
    capped: bool = False  # the provider only said "more than ``pending``"

    def to_dict(self) -> dict:
        return {"pending": self.pending, "read": self.read, **({"capped": True} if self.capped else {})}


def read_queue_depth(ask: Callable[[], object], where: str) -> QueueReading | None:
    """Ask the provider for the queue depth (``ask`` returns an int or Braket's string, e.g.
    ``'12'`` or ``'>4000'``); None when it cannot tell. A courtesy: it never fails a connection."""
    import datetime as _dt

    try:
        raw = ask()
    except Exception as err:  # noqa: BLE001 - the depth informs estimates; the run does not need it
        log.info("%s: queue depth not available (%s)", where, scrub(err))
        return None
    text = str(raw).strip()
    match = re.match(r"^(>?)\s*(\d+)", text)
    if raw is None or match is None:
        return None
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return QueueReading(int(match.group(2)), now, capped=bool(match.group(1)))


# ------------------------------------------------------------------------------------ snapshots
def adopt_snapshot(cal: Calibration, root: Path | None = None) -> Calibration:
    """Save a live capture as a dated snapshot, or reuse the stored one holding the same figures
    (see :func:`qflhw.calibration.snapshot.save_capture`)."""
    kept, path, new = save_capture(cal, root)
    if new:
        log.info("saved live calibration snapshot %s", path)
    return kept
