"""Qiskit V2 primitives on any qflhw device profile: ``Estimator`` and ``Sampler``.

    from qflhw.primitives import Estimator, Sampler
    est = Estimator(profile="fake_torino", seed=1)              # BaseEstimatorV2
    qnn = EstimatorQNN(circuit=qc, estimator=est, ...)         # qiskit-machine-learning

Each ``run([...pubs])`` is **one provider job** (see :class:`~qflhw.plugins.session.Session`):
pubs are merged by circuit, so the hundreds of scalar pubs a parameter-shift gradient sends on one
circuit become one transpiled circuit with one binding row per distinct parameter point, measured
for every observable the pubs ask about. Options are the PennyLane device's: ``profile``,
``seed``, ``calibration``, ``noise_scale`` (0 = ideal twin), ``mitigation``, ``budget_usd``,
``journal``, ``label``.

Precision and shots: a pub's precision p is run with ``ceil(1 / p**2)`` shots per circuit, the
shots at which a single Pauli term's standard error is at most p; precision 0 is exact (fake twins
only). ``stds`` are the standard errors the device reports. The Sampler needs circuits whose
measurements come last (no mid-circuit measurement) and returns one ``BitArray`` per classical
register, as ``StatevectorSampler`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2, PrimitiveResult, PubResult, SamplerPubResult
from qiskit.primitives.base.base_primitive_job import BasePrimitiveJob
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import stable_seed
from qflhw.circuits.tapes import samples_from_counts
from qflhw.circuits.transpile import fingerprint
from qflhw.config.spec import MitigationSpec
from qflhw.errors import ConfigError
from qflhw.execution.mitigation.base import Technique
from qflhw.plugins.session import Answer, JobRecord, Request, Session


class QflhwPrimitiveJob(BasePrimitiveJob):
    """A finished primitive job; ``job_id()`` is the provider's id (ids joined by ``,`` if two)."""

    def __init__(self, job_id: str, result: PrimitiveResult):
        super().__init__(job_id)
        self._result = result

    def result(self) -> PrimitiveResult:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def in_final_state(self) -> bool:
        return True

    def cancel(self) -> None:
        """Nothing to cancel: the job has finished when ``run`` returns."""


class _Primitive:
    """What the Estimator and the Sampler share: the session and the per-call circuit keys."""

    def __init__(
        self,
        profile: str,
        *,
        seed: int,
        calibration: str | None,
        noise_scale: float,
        mitigation: str | dict | MitigationSpec | Technique | None,
        budget_usd: float | None,
        journal: str | Path | None,
        label: str | None,
    ):
        self.session = Session.open(
            profile, seed=seed, calibration=calibration, noise_scale=noise_scale, mitigation=mitigation,
            budget_usd=budget_usd, journal=journal, label=label,
        )

    @property
    def jobs(self) -> list[JobRecord]:
        """Every provider job sent (or replayed from the journal), in order."""
        return list(self.session.jobs)

    def report(self) -> dict[str, Any]:
        """Totals so far: jobs, circuits, shots, USD, QPU seconds, calibration id, lowest ESP."""
        return self.session.totals()

    def close(self) -> None:
        """Close the device's provider session and the journal."""
        self.session.close()

    def _submit(self, requests: list[Request]) -> tuple[list[Answer], str]:
        before = len(self.session.jobs)
        answers = self.session.run(requests)
        return answers, ",".join(j.job_id for j in self.session.jobs[before:])


class _Merged:
    """Pub elements of one circuit at one shot count: distinct binding rows and observables."""

    def __init__(self, circuit: QuantumCircuit, key: str, shots: int | None):
        self.circuit, self.key, self.shots = circuit, key, shots
        self.rows: dict[bytes, int] = {}
        self.row_values: list[np.ndarray] = []
        self.observables: dict[tuple, int] = {}
        self.ops: list[SparsePauliOp] = []

    def row(self, values: np.ndarray) -> int:
        k = np.ascontiguousarray(values, dtype=float).tobytes()
        if k not in self.rows:
            self.rows[k] = len(self.row_values)
            self.row_values.append(np.asarray(values, dtype=float))
        return self.rows[k]

    def observable(self, terms: dict[str, float]) -> int:
        k = tuple(sorted((lab, float(np.real(c))) for lab, c in terms.items()))
        if k not in self.observables:
            self.observables[k] = len(self.ops)
            self.ops.append(SparsePauliOp(list(terms), coeffs=np.asarray(list(terms.values()), dtype=complex)))
        return self.observables[k]

    def request(self, observables: tuple[SparsePauliOp, ...] | None = None) -> Request:
        params = tuple(self.circuit.parameters)
        rows = np.array(self.row_values) if self.row_values else np.zeros((1, len(params)))
        return Request(
            key=(self.key, tuple(p.name for p in params)),
            build=lambda: self.circuit,
            parameters=params,
            bindings=rows.reshape(len(rows), len(params)),
            observables=observables if observables is not None else tuple(self.ops),
            shots=self.shots,
        )


def _shots_for(precision: float) -> int | None:
    if precision < 0 or not math.isfinite(precision):
        raise ConfigError(f"precision must be a finite number >= 0 (0 = exact, fake twins only), got {precision}")
    return None if precision == 0 else max(1, math.ceil(1.0 / precision**2))


class Estimator(_Primitive, BaseEstimatorV2):
    """``BaseEstimatorV2`` on a qflhw device: each ``run`` is one provider job."""

    def __init__(
        self,
        profile: str = "fake_torino",
        *,
        default_precision: float = 0.015625,
        seed: int = 1234,
        calibration: str | None = None,
        noise_scale: float = 1.0,
        mitigation: str | dict | MitigationSpec | Technique | None = None,
        budget_usd: float | None = None,
        journal: str | Path | None = None,
        label: str | None = None,
    ):
        _shots_for(default_precision)
        self.default_precision = default_precision
        super().__init__(
            profile, seed=seed, calibration=calibration, noise_scale=noise_scale, mitigation=mitigation,
            budget_usd=budget_usd, journal=journal, label=label,
        )

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> QflhwPrimitiveJob:
        precision = self.default_precision if precision is None else precision
        coerced = [EstimatorPub.coerce(p, precision) for p in pubs]
        keys: dict[int, str] = {}
        merged: dict[tuple[str, int | None], _Merged] = {}
        where = []  # per pub: (merged, row index array, observable index array)
        for pub in coerced:
            pub.validate()
            circuit = pub.circuit
            if id(circuit) not in keys:
                keys[id(circuit)] = fingerprint(circuit)
            shots = _shots_for(pub.precision if pub.precision is not None else precision)
            m = merged.setdefault((keys[id(circuit)], shots), _Merged(circuit, keys[id(circuit)], shots))
            if circuit.parameters:
                values = pub.parameter_values.as_array(circuit.parameters)
            else:
                values = np.zeros(pub.parameter_values.shape + (0,))
            values = np.broadcast_to(values, pub.shape + (values.shape[-1],))
            obs = np.empty(pub.observables.shape, dtype=object)
            for idx in np.ndindex(*pub.observables.shape):
                obs[idx] = pub.observables[idx]
            obs = np.broadcast_to(obs, pub.shape)
            rows = np.zeros(pub.shape, dtype=int)
            cols = np.zeros(pub.shape, dtype=int)
            for idx in np.ndindex(*pub.shape):
                rows[idx] = m.row(values[idx])
                cols[idx] = m.observable(obs[idx])
            where.append((m, rows, cols))
        groups = list(merged.values())
        answers, job_id = self._submit([g.request() for g in groups])
        by_group = dict(zip(map(id, groups), answers))
        results = []
        for pub, (m, rows, cols) in zip(coerced, where):
            a = by_group[id(m)]
            evs, stds = a.values[rows, cols], a.stderr[rows, cols]
            meta = {"target_precision": pub.precision, "shots": m.shots, "job_id": job_id, "circuit_metadata": pub.circuit.metadata}
            results.append(PubResult(DataBin(evs=evs, stds=stds, shape=pub.shape), metadata=meta))
        return QflhwPrimitiveJob(job_id, PrimitiveResult(results, metadata={"version": 2, "job_id": job_id}))


class Sampler(_Primitive, BaseSamplerV2):
    """``BaseSamplerV2`` on a qflhw device: each ``run`` is one provider job; shots default 1024."""

    def __init__(
        self,
        profile: str = "fake_torino",
        *,
        default_shots: int = 1024,
        seed: int = 1234,
        calibration: str | None = None,
        noise_scale: float = 1.0,
        mitigation: str | dict | MitigationSpec | Technique | None = None,
        budget_usd: float | None = None,
        journal: str | Path | None = None,
        label: str | None = None,
    ):
        if default_shots < 1:
            raise ConfigError(f"default_shots must be >= 1, got {default_shots}")
        if mitigation is not None:
            raise ConfigError("the Sampler returns raw shots, which mitigation cannot correct; use the Estimator with mitigation=...")
        self.default_shots = default_shots
        super().__init__(
            profile, seed=seed, calibration=calibration, noise_scale=noise_scale, mitigation=None,
            budget_usd=budget_usd, journal=journal, label=label,
        )
        self._rng = np.random.default_rng(stable_seed(seed, self.session.label, "sampler-records"))

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> QflhwPrimitiveJob:
        shots = self.default_shots if shots is None else shots
        coerced = [SamplerPub.coerce(p, shots) for p in pubs]
        merged: dict[tuple[str, int], _Merged] = {}
        where = []
        for pub in coerced:
            pub.validate()
            logical, measured = _split_measurements(pub.circuit)
            key = fingerprint(logical)
            n_shots = pub.shots if pub.shots is not None else shots
            m = merged.setdefault((key, n_shots), _Merged(logical, key, n_shots))
            values = pub.parameter_values.as_array(pub.circuit.parameters) if pub.circuit.parameters else np.zeros(pub.shape + (0,))
            # the logical circuit keeps the pub circuit's Parameters (same objects, same order)
            rows = np.zeros(pub.shape, dtype=int)
            for idx in np.ndindex(*pub.shape):
                rows[idx] = m.row(values[idx])
            where.append((m, rows, measured))
        groups = list(merged.values())
        all_z = lambda g: (SparsePauliOp("Z" * g.circuit.num_qubits),)  # noqa: E731 - the computational basis
        answers, job_id = self._submit([g.request(all_z(g)) for g in groups])
        by_group = dict(zip(map(id, groups), answers))
        results = []
        for pub, (m, rows, measured) in zip(coerced, where):
            a = by_group[id(m)]
            dist = a.distributions[a.bases.index("Z" * m.circuit.num_qubits)]
            n_shots = int(m.shots or 0)
            registers = {name: np.zeros(pub.shape + (n_shots, size), dtype=bool) for name, size in _registers(pub.circuit)}
            for idx in np.ndindex(*pub.shape):
                record = samples_from_counts(np.rint(dist[rows[idx]] * n_shots), m.circuit.num_qubits, self._rng)
                for qubit, (reg, bit) in measured:
                    registers[reg][idx][:, bit] = record[:, qubit].astype(bool)
            data = {name: BitArray.from_bool_array(bits, order="little") for name, bits in registers.items()}
            meta = {"shots": n_shots, "job_id": job_id, "circuit_metadata": pub.circuit.metadata}
            results.append(SamplerPubResult(DataBin(**data, shape=pub.shape), metadata=meta))
        return QflhwPrimitiveJob(job_id, PrimitiveResult(results, metadata={"version": 2, "job_id": job_id}))


def _registers(circuit: QuantumCircuit) -> list[tuple[str, int]]:
    return [(r.name, r.size) for r in circuit.cregs]


def _split_measurements(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[tuple[int, tuple[str, int]]]]:
    """The circuit without its final measurements, and (qubit, (register, bit)) per measurement."""
    logical = QuantumCircuit(circuit.num_qubits, name=circuit.name, global_phase=circuit.global_phase)
    measured: list[tuple[int, tuple[str, int]]] = []
    done: set[int] = set()
    for ci in circuit.data:
        qubits = [circuit.find_bit(q).index for q in ci.qubits]
        name = ci.operation.name
        if name == "measure":
            clbit = circuit.find_bit(ci.clbits[0])
            if not clbit.registers:
                raise ConfigError(f"circuit {circuit.name!r}: measure into a classical register (e.g. measure_all())")
            reg, bit = clbit.registers[0]
            measured.append((qubits[0], (reg.name, bit)))
            done.add(qubits[0])
            continue
        if name == "barrier":
            continue
        if done & set(qubits) or ci.clbits:
            raise ConfigError(
                f"circuit {circuit.name!r}: {name} acts after a measurement or on classical bits; qflhw's Sampler "
                "runs circuits whose measurements come last"
            )
        logical.append(ci.operation, qubits)
    if not measured:
        raise ConfigError(f"circuit {circuit.name!r} measures nothing; add measurements (e.g. measure_all())")
    return logical, measured
