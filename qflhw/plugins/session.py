"""One qflhw device used directly: each call is one provider job, charged, journaled and recorded.

The PennyLane device and the Qiskit primitives both hand over "these circuits at these bindings
for these observables" many times. :class:`Session` turns every such call into **one**
:class:`~qflhw.devices.base.Batch`, the same unit a federated run sends per optimizer step:

* circuits are transpiled for the device once per *structure* (the caller's key), so new
  parameter values are new binding rows, never a new transpilation;
* mitigation (``"zne"``, ``"rem"``, ``"zne+rem"``, as in a spec's ``[mitigation]``) expands every
  circuit into its variants inside the same batch and combines them after the job;
* the job's cost is charged to a :class:`~qflhw.execution.budget.Ledger` capped at ``budget_usd``
  *before* it is sent (0, the default, allows free devices only, as ``budget.max_usd`` does);
* with ``journal=DIR`` every job goes through the run journal (:mod:`qflhw.execution.retries`):
  its idempotency key is the call's position and a digest of its content, so re-running a
  script that crashed replays the jobs already paid for and sends only the rest.

Exact expectations (``shots=None``) exist only on fake twins. A call that mixes exact and
sampled circuits is sent as two jobs, one of each.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.measure import measurement_bases
from qflhw.circuits.transpile import Transpiled
from qflhw.config.spec import NAME_PATTERN, MitigationSpec
from qflhw.devices.base import Batch, BatchItem, BatchResult, Device, JobKey
from qflhw.devices.factory import make_device
from qflhw.errors import BudgetExceeded, ConfigError
from qflhw.execution.budget import Ledger, batch_cost
from qflhw.execution.evaluator import Runner, direct_runner
from qflhw.execution.journal import Journal
from qflhw.execution.mitigation import make_mitigation
from qflhw.execution.mitigation.base import Prepared, Technique
from qflhw.execution.retries import JournaledRunner


@dataclass(frozen=True, eq=False)
class Request:
    """One circuit structure evaluated at many bindings for some observables, at one shot count."""

    key: Hashable  # the structure: requests with equal keys share one transpiled circuit
    build: Callable[[], QuantumCircuit]  # the logical circuit (called once per key)
    parameters: tuple  # the circuit's Parameters, one per column of ``bindings``
    bindings: np.ndarray  # (rows, len(parameters))
    observables: tuple[SparsePauliOp, ...]
    shots: int | None  # None: exact expectations (fake twins only)


@dataclass
class Answer:
    """What came back for one request: values per binding and observable, and distributions."""

    values: np.ndarray  # (rows, n_observables), mitigated when the session mitigates
    stderr: np.ndarray
    bases: list[str]
    distributions: list[np.ndarray]  # per basis (rows, 2**n); empty when mitigated or not reported
    shots: int | None
    transpiled: Transpiled


@dataclass(frozen=True)
class JobRecord:
    """One provider job as the session saw it (``from_journal``: replayed, not sent again)."""

    job_id: str
    key: str
    device: str
    calibration_id: str
    circuits: int
    shots: int
    cost_usd: float
    qpu_seconds: float
    esp: float
    wall_seconds: float
    from_journal: bool = False


@dataclass
class _Compiled:
    transpiled: Transpiled
    prepared: Prepared | None
    variants: tuple[Transpiled, ...]


@dataclass
class Session:
    """A device and everything that goes with using it directly (budget, journal, mitigation)."""

    device: Device
    label: str
    ledger: Ledger
    technique: Technique | None = None
    journal: Journal | None = None
    runner: Runner = direct_runner
    jobs: list[JobRecord] = field(default_factory=list)
    _compiled: dict[Hashable, _Compiled] = field(default_factory=dict, repr=False)
    _calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls,
        profile: str,
        *,
        seed: int = 1234,
        calibration: str | None = None,
        noise_scale: float = 1.0,
        mitigation: str | dict | MitigationSpec | Technique | None = None,
        budget_usd: float | None = None,
        journal: str | Path | None = None,
        label: str | None = None,
        device: Device | None = None,
    ) -> Session:
        """A session on ``profile``'s device (or on ``device``, already built)."""
        label = label or profile
        if not re.match(NAME_PATTERN, label):
            raise ConfigError(f"label {label!r} must hold only letters, digits, _ . - (it names the device's jobs)")
        budget = 0.0 if budget_usd is None else budget_usd
        try:
            ledger = Ledger(max_usd=Decimal(str(budget)))
        except ConfigError as err:
            raise ConfigError(f"budget_usd must be >= 0, got {budget_usd}") from err
        where = Path(journal).expanduser() if journal is not None else None
        if where is not None and where.suffix == ".sqlite":
            where = where.parent
        if device is None:
            store = where / "fake-provider" / label if where is not None else None
            device = make_device(profile, seed=seed, noise_scale=noise_scale, calibration=calibration, store=store)
        technique = _technique(mitigation, device)
        session = cls(device=device, label=label, ledger=ledger, technique=technique)
        if where is not None:
            where.mkdir(parents=True, exist_ok=True)
            session.journal = Journal(where)
            session.runner = JournaledRunner(session.journal)
        return session

    # ------------------------------------------------------------ circuits
    def compiled(self, request: Request) -> _Compiled:
        """The transpiled circuit of a request's structure (and its mitigation variants), cached."""
        hit = self._compiled.get(request.key)
        if hit is None:
            tc = self.device.transpile(request.build())
            prepared = self.technique.prepare(tc) if self.technique else None
            hit = _Compiled(tc, prepared, tuple(prepared.variants) if prepared else (tc,))
            self._compiled[request.key] = hit
        return hit

    @property
    def transpiled(self) -> dict[Hashable, Transpiled]:
        """Every structure transpiled so far, by key."""
        return {k: c.transpiled for k, c in self._compiled.items()}

    # ------------------------------------------------------------ jobs
    def run(self, requests: Sequence[Request]) -> list[Answer]:
        """Answer every request: one provider job (two when exact and sampled requests are mixed)."""
        if not requests:
            return []
        exact = [i for i, r in enumerate(requests) if r.shots is None]
        sampled = [i for i, r in enumerate(requests) if r.shots is not None]
        if exact and self.device.profile.provider != "fake":
            raise ConfigError(
                f"device {self.device.name} is a real QPU: it only samples; give the circuit shots "
                "(qml.set_shots, shots=..., or a precision > 0)"
            )
        out: list[Answer | None] = [None] * len(requests)
        for group in (exact, sampled):
            if group:
                for i, answer in zip(group, self._job([requests[i] for i in group])):
                    out[i] = answer
        return [a for a in out if a is not None]

    def _job(self, requests: list[Request]) -> list[Answer]:
        with self._lock:
            compiled = [self.compiled(r) for r in requests]
            shots = requests[0].shots
            items = []
            for r, c in zip(requests, compiled):
                own = None if r.shots == shots else r.shots
                params, rows = _columns(r, c.transpiled)
                for v in c.variants:
                    items.append(BatchItem(v, params, rows, r.observables, tag=v.meta.get("tag", ""), shots=own))
            content = _content_digest(requests, shots)
            key = JobKey(f"{self.label}-{content}", 0, self.label, self._calls)
            self._calls += 1
            batch = Batch(tuple(items), key=key)
            cost = batch_cost(self.device, batch, shots)
            start = time.perf_counter()
            sent_before = self.journal.result(str(key)) is not None if self.journal else False
            try:
                result = self.runner(self.device, batch, shots, lambda: self.ledger.charge(self.label, 0, cost))
            except BudgetExceeded as err:
                raise BudgetExceeded(f"{self.label}: {err} (the device's cap is budget_usd)") from err
            self.jobs.append(
                JobRecord(
                    job_id=result.job_id,
                    key=str(key),
                    device=result.device,
                    calibration_id=result.calibration_id,
                    circuits=batch.num_circuits,
                    shots=cost.shots,
                    cost_usd=float(cost.usd),
                    qpu_seconds=cost.seconds,
                    esp=float(min(c.transpiled.esp for c in compiled)),
                    wall_seconds=time.perf_counter() - start,
                    from_journal=sent_before,
                )
            )
        return _answers(requests, compiled, result)

    def totals(self) -> dict[str, Any]:
        """Jobs, circuits, shots, USD and QPU seconds so far, the device's calibration id, and the
        lowest ESP of the circuits it ran."""
        return {
            "device": self.device.name,
            "calibration_id": self.device.calibration.id,
            "jobs": len(self.jobs),
            "circuits": sum(j.circuits for j in self.jobs),
            "shots": sum(j.shots for j in self.jobs),
            "cost_usd": float(self.ledger.spent.usd),
            "qpu_seconds": sum(j.qpu_seconds for j in self.jobs),
            "esp": min((c.transpiled.esp for c in self._compiled.values()), default=1.0),
        }

    def close(self) -> None:
        """Close the device (its open execution mode) and the journal."""
        self.device.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
            self.runner = direct_runner


def _columns(request: Request, tc: Transpiled) -> tuple[tuple, np.ndarray]:
    """The transpiled circuit's own Parameters and the request's bindings in their order.

    Matched by name: a circuit equal in content to one transpiled earlier (the cache's key) may
    hold other Parameter objects of the same names.
    """
    names = [p.name for p in request.parameters]
    params = tuple(tc.logical.parameters)
    missing = [p.name for p in params if p.name not in names]
    if missing:
        raise ConfigError(f"circuit {tc.logical.name!r}: no values given for parameter(s) {missing}")
    rows = np.asarray(request.bindings, dtype=float).reshape(len(request.bindings), len(names))
    return params, rows[:, [names.index(p.name) for p in params]]


def _technique(mitigation: str | dict | MitigationSpec | Technique | None, device: Device) -> Technique | None:
    """A mitigation technique from a method name, a ``[mitigation]`` table, or a technique object."""
    if mitigation is None:
        return None
    if isinstance(mitigation, str):
        mitigation = {"method": mitigation}
    if isinstance(mitigation, dict):
        from pydantic import ValidationError

        from qflhw.errors import field_error

        try:
            mitigation = MitigationSpec.model_validate(mitigation)
        except ValidationError as err:
            raise ConfigError(field_error("mitigation", err, "e.g. mitigation='zne+rem' or a [mitigation] table as a dict")) from err
    if isinstance(mitigation, MitigationSpec):
        return make_mitigation(mitigation, device.calibration)
    if hasattr(mitigation, "prepare"):
        return mitigation
    raise ConfigError(f"mitigation must be a method name, a dict, a MitigationSpec or a technique, got {type(mitigation).__name__}")


def _content_digest(requests: Sequence[Request], shots: int | None) -> str:
    """A short hash of what a job computes, so a journal replays a result only for the same job."""
    h = hashlib.sha256(repr(shots).encode())
    for r in requests:
        h.update(repr((r.key, r.shots)).encode())
        h.update(np.ascontiguousarray(r.bindings, dtype=float).tobytes())
        for o in r.observables:
            h.update(repr((o.paulis.to_labels(), np.round(o.coeffs, 12).tolist())).encode())
    return h.hexdigest()[:12]


def _answers(requests: Sequence[Request], compiled: Sequence[_Compiled], result: BatchResult) -> list[Answer]:
    """Each request's values (variants combined) from the job's items, in order."""
    out, k = [], 0
    for r, c in zip(requests, compiled):
        parts = result.items[k : k + len(c.variants)]
        k += len(c.variants)
        item = parts[0]
        if c.prepared is not None:
            combined = c.prepared.combine(parts, r.observables)
            out.append(Answer(combined.values, np.sqrt(combined.variance), list(item.bases), [], r.shots, c.transpiled))
        else:
            bases = list(item.bases) or measurement_bases(r.observables)
            out.append(Answer(item.values, item.stderr, bases, list(item.distributions), r.shots, c.transpiled))
    return out
