"""The ``qflhw.qpu`` PennyLane device: QNodes and TorchLayers run on any qflhw device profile.

    dev = qml.device("qflhw.qpu", wires=4, profile="fake_torino", shots=1000)

Registered through PennyLane's ``pennylane.plugins`` entry point. Every ``execute`` call PennyLane
makes (a broadcast batch of inputs, a gradient's shifted tapes) is **one provider job**: tapes are
grouped by structure, each structure transpiled for the device once (parameters stay symbolic,
see :mod:`qflhw.circuits.tapes`), and all their bindings sent as one batch through
:class:`~qflhw.plugins.session.Session` (budget, journal, mitigation, job records).

Gradients: with ``diff_method="best"`` (the default) or ``"device"`` the device computes values
and parameter-shift Jacobians together, PennyLane's own ``param_shift`` rules applied to every
tape, all shifted tapes in the same job as the values, so one optimizer step of a TorchLayer is
one provider job, as in qflhw's own runs. ``diff_method="parameter-shift"``, ``"spsa"`` or
``"finite-diff"`` use PennyLane's transforms instead (one job for the values, one for the
gradient tapes).

Measurements: ``expval`` and ``var`` of Pauli words and sums, ``probs``; ``sample`` and
``counts`` with shots. ``shots=None`` (no shots on the tape) is exact expectations, fake twins
only; ``noise_scale=0`` makes a twin ideal.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pennylane as qml
from pennylane import CompilePipeline
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.preprocess import decompose, validate_device_wires, validate_measurements, validate_observables
from pennylane.exceptions import PennyLaneDeprecationWarning
from pennylane.measurements import CountsMP, ExpectationMP, ProbabilityMP, SampleMP, VarianceMP
from pennylane.tape import QuantumScript
from pennylane.wires import Wires
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import stable_seed
from qflhw.circuits.tapes import GATES, circuit_of, marginal, parameter_rows, samples_from_counts, structure, supported, to_sparse_pauli
from qflhw.config.spec import MitigationSpec
from qflhw.errors import ConfigError
from qflhw.execution.mitigation.base import Technique
from qflhw.plugins.session import Answer, JobRecord, Request, Session

_ANALYTIC = (ExpectationMP, VarianceMP, ProbabilityMP)
_SAMPLED = (ExpectationMP, VarianceMP, ProbabilityMP, SampleMP, CountsMP)
_DISTRIBUTION = (ProbabilityMP, SampleMP, CountsMP)


@qml.transform
def diagonalize_sampled(tape: QuantumScript) -> tuple[list[QuantumScript], Any]:
    """Rotate observables of ``probs``/``sample``/``counts`` into the Z basis (PennyLane's transforms).

    Only those measurements go through ``split_non_commuting`` + ``diagonalize_measurements``
    (in tapes of their own); expectations and variances stay as they are, the device measures
    Pauli observables in any basis. All the tapes still go into the same job.
    """
    ms = tape.measurements
    rotate = [i for i, m in enumerate(ms) if isinstance(m, _DISTRIBUTION) and not _diagonal(m.obs)]
    if not rotate:
        return [tape], lambda results: results[0]
    keep = [i for i in range(len(ms)) if i not in rotate]
    groups, regroup = qml.transforms.split_non_commuting(tape.copy(measurements=[ms[i] for i in rotate]))
    out = [tape.copy(measurements=[ms[i] for i in keep])] if keep else []
    posts, sizes = [], []
    for group in groups:
        rotated, post = qml.transforms.diagonalize_measurements(group)
        out.extend(rotated)
        posts.append(post)
        sizes.append(len(rotated))
    entries = tape.shots.num_copies if tape.shots.has_partitioned_shots else 0

    def combine(results: Sequence[Any]) -> Any:
        k = 1 if keep else 0
        parts = []
        for post, n in zip(posts, sizes):
            parts.append(post(results[k : k + n]))
            k += n
        rotated_res = regroup(parts)
        kept_res: Any = results[0] if keep else None

        def merge(kept: Any, rot: Any) -> Any:
            kept_l = ([kept] if len(keep) == 1 else list(kept)) if keep else []
            rot_l = [rot] if len(rotate) == 1 else list(rot)
            merged = [None] * len(ms)
            for i, v in zip(keep, kept_l):
                merged[i] = v
            for i, v in zip(rotate, rot_l):
                merged[i] = v
            return merged[0] if len(ms) == 1 else tuple(merged)

        if entries:
            return tuple(merge(kept_res[e] if keep else None, rotated_res[e]) for e in range(entries))
        return merge(kept_res, rotated_res)

    return out, combine


def _diagonal(obs: Any) -> bool:
    """No observable, or a Pauli-Z product: its samples are read off computational-basis shots."""
    rep = obs.pauli_rep if obs is not None else None
    return obs is None or (rep is not None and len(rep) == 1 and all(p == "Z" for word in rep for p in word.values()))


@qml.transform
def expand_sampled_broadcasts(tape: QuantumScript) -> tuple[list[QuantumScript], Any]:
    """One tape per broadcast row when the tape returns samples or counts (shot records are per row)."""
    if tape.batch_size and any(isinstance(m, (SampleMP, CountsMP)) for m in tape.measurements):
        return qml.transforms.broadcast_expand(tape)
    return [tape], lambda results: results[0]


class QflhwQPU(Device):
    """A PennyLane device on one qflhw device profile (fake twin, IBM, Braket, or an emulated rehearsal).

    Keyword options (all optional but ``wires``): ``profile`` (a ``backends/`` profile, default
    ``fake_torino``), ``shots`` (the QNode default when it sets none; prefer ``qml.set_shots``),
    ``seed``, ``calibration`` (``<device>/<date>`` or a snapshot file), ``noise_scale`` (fake twins;
    0 = ideal), ``mitigation`` (``"zne"``, ``"rem"``, ``"zne+rem"`` or a ``[mitigation]`` dict),
    ``budget_usd`` (cap on this device's spend; 0 = free devices only), ``journal`` (a folder:
    jobs are journaled there and a re-run replays them instead of paying again), ``label`` (names
    the jobs; default the profile).
    """

    def __init__(
        self,
        wires: Any = None,
        shots: Any = None,
        *,
        profile: str = "fake_torino",
        seed: int = 1234,
        calibration: str | None = None,
        noise_scale: float = 1.0,
        mitigation: str | dict | MitigationSpec | Technique | None = None,
        budget_usd: float | None = None,
        journal: str | Path | None = None,
        label: str | None = None,
    ):
        with warnings.catch_warnings():  # a default for QNodes that set none, as the docs of qflhw promise
            warnings.filterwarnings("ignore", message="Setting shots on device", category=PennyLaneDeprecationWarning)
            super().__init__(wires=wires, shots=shots)
        self.session = Session.open(
            profile, seed=seed, calibration=calibration, noise_scale=noise_scale, mitigation=mitigation,
            budget_usd=budget_usd, journal=journal, label=label,
        )
        self._rng = np.random.default_rng(stable_seed(seed, self.session.label, "pennylane-samples"))
        self._circuits: dict[Hashable, tuple[QuantumCircuit, tuple]] = {}  # per structure: symbolic circuit, parameters
        self._paulis = _Paulis()

    @property
    def name(self) -> str:
        return "qflhw.qpu"

    # ------------------------------------------------------------ what qflhw reports
    @property
    def jobs(self) -> list[JobRecord]:
        """Every provider job this device sent (or replayed from its journal), in order."""
        return list(self.session.jobs)

    def report(self) -> dict[str, Any]:
        """Totals so far: jobs, circuits, shots, USD, QPU seconds, calibration id, lowest ESP."""
        return self.session.totals()

    @property
    def qflhw_device(self) -> Any:
        """The underlying :class:`qflhw.devices.base.Device` (its profile, calibration, transpiler)."""
        return self.session.device

    def transpiled(self) -> list[Any]:
        """The transpiled circuit of every tape structure run so far (``Transpiled``, with ESP)."""
        return list(self.session.transpiled.values())

    def close(self) -> None:
        """Close the device's provider session and its journal."""
        self.session.close()

    # ------------------------------------------------------------ PennyLane device API
    def setup_execution_config(self, config: ExecutionConfig | None = None, circuit: QuantumScript | None = None) -> ExecutionConfig:
        config = config or ExecutionConfig()
        if config.gradient_method in ("best", "device"):
            updated: dict[str, Any] = {"gradient_method": "device", "use_device_gradient": True}
            if config.grad_on_execution is None:  # values and Jacobian from one job, unless no one will ask
                updated["grad_on_execution"] = _gradients_wanted()
        else:
            updated = {"use_device_gradient": False, "grad_on_execution": bool(config.grad_on_execution)}
        if config.use_device_jacobian_product is None:
            updated["use_device_jacobian_product"] = False
        return replace(config, **updated)

    def supports_derivatives(self, execution_config: ExecutionConfig | None = None, circuit: QuantumScript | None = None) -> bool:
        return execution_config is None or execution_config.gradient_method in ("best", "device")

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> CompilePipeline:
        prog = CompilePipeline()
        prog.add_transform(validate_device_wires, self.wires, name=self.name)
        prog.add_transform(
            decompose, stopping_condition=supported, target_gates=set(GATES), skip_initial_state_prep=False, name=self.name
        )
        prog.add_transform(diagonalize_sampled)
        prog.add_transform(
            validate_measurements,
            analytic_measurements=lambda m: isinstance(m, _ANALYTIC),
            sample_measurements=lambda m: isinstance(m, _SAMPLED),
            name=self.name,
        )
        prog.add_transform(validate_observables, stopping_condition=lambda o: o.pauli_rep is not None, name=self.name)
        if execution_config is not None and execution_config.gradient_method == "device":
            # PennyLane's parameter shift cannot differentiate broadcast parameters (its issue #4462)
            prog.add_transform(qml.transforms.broadcast_expand)
        else:
            prog.add_transform(expand_sampled_broadcasts)
        return prog

    def execute(self, circuits: QuantumScript | Sequence[QuantumScript], execution_config: ExecutionConfig | None = None) -> Any:
        single = isinstance(circuits, QuantumScript)
        tapes = [circuits] if single else list(circuits)
        results = self._run(tapes)
        return results[0] if single else tuple(results)

    def execute_and_compute_derivatives(
        self, circuits: QuantumScript | Sequence[QuantumScript], execution_config: ExecutionConfig | None = None
    ) -> tuple[Any, Any]:
        """Values and parameter-shift Jacobians of every tape, all from one provider job."""
        single = isinstance(circuits, QuantumScript)
        tapes = [circuits] if single else list(circuits)
        plans = [qml.gradients.param_shift(t) for t in tapes]
        shifted = [s for tapes_k, _ in plans for s in tapes_k]
        everything = self._run(tapes + shifted)
        values, rest = everything[: len(tapes)], everything[len(tapes) :]
        jacobians, k = [], 0
        for tapes_k, post in plans:
            jacobians.append(post(tuple(rest[k : k + len(tapes_k)])))
            k += len(tapes_k)
        if single:
            return values[0], jacobians[0]
        return tuple(values), tuple(jacobians)

    def compute_derivatives(
        self, circuits: QuantumScript | Sequence[QuantumScript], execution_config: ExecutionConfig | None = None
    ) -> Any:
        return self.execute_and_compute_derivatives(circuits, execution_config)[1]

    # ------------------------------------------------------------ tapes -> one job -> results
    def _wire_order(self, tape: QuantumScript) -> Wires:
        return self.wires if self.wires is not None else tape.wires

    def _run(self, tapes: Sequence[QuantumScript]) -> list[Any]:
        if not tapes:
            return []
        groups: dict[tuple[Hashable, int | None], _Group] = {}
        slots = []  # per tape: a list of (group, first row, rows) per shot entry
        for tape in tapes:
            wires = self._wire_order(tape)
            key = (structure(tape.operations, wires), tuple(wires))
            rows = parameter_rows(tape.operations, tape.batch_size)
            needed = self._paulis.needed(tape, wires)
            if self.session.technique is not None and any(isinstance(m, _DISTRIBUTION) for m in tape.measurements):
                raise ConfigError(
                    f"{self.name}: mitigation corrects expectation values, not probs/sample/counts; "
                    "measure qml.expval(...) or make the device with mitigation=None"
                )
            entries = [s for s in tape.shots] if tape.shots else [None]  # a shot vector: one entry per part
            mine = []
            for shots in entries:
                g = groups.get((key, shots))
                if g is None:
                    g = groups[(key, shots)] = _Group(key, len(wires), shots)
                mine.append((g, g.add(rows, needed), len(rows)))
            slots.append(mine)
        requests = [g.request(self._circuit(g.key, g.num_qubits), self._paulis) for g in groups.values()]
        before = len(self.session.jobs)
        answers = dict(zip(groups.values(), self.session.run(requests), strict=True))
        sent = self.session.jobs[before:]
        results = []
        for tape, mine in zip(tapes, slots):
            parts = [self._measure(tape, g, answers[g], lo, n) for g, lo, n in mine]
            results.append(tuple(parts) if len(parts) > 1 else parts[0])
        if self.tracker.active:  # per tape its results, then the job (so `latest` is the job's record)
            for r in results:
                self.tracker.update(results=r)
            job = sent[-1]
            self.tracker.update(
                batches=1, jobs=len(sent), executions=sum(j.circuits for j in sent), shots=sum(j.shots for j in sent),
                cost_usd=sum(j.cost_usd for j in sent), qpu_seconds=sum(j.qpu_seconds for j in sent),
                job_id=job.job_id, device=job.device, calibration_id=job.calibration_id, esp=min(j.esp for j in sent),
            )
            self.tracker.record()
        return results

    def _circuit(self, key: Hashable, num_qubits: int) -> tuple[QuantumCircuit, tuple]:
        """The symbolic circuit of a structure, built once (its Parameters must stay the same objects)."""
        hit = self._circuits.get(key)
        if hit is None:
            hit = self._circuits[key] = circuit_of(key[0], num_qubits)  # type: ignore[index]
        return hit

    def _measure(self, tape: QuantumScript, group: _Group, answer: Answer, lo: int, n: int) -> Any:
        """One tape's results (for one shot entry) from its rows of the group's answer."""
        wires = self._wire_order(tape)
        out = []
        for m in tape.measurements:
            if isinstance(m, ExpectationMP):
                v = answer.values[lo : lo + n, group.index(self._paulis.key(m.obs, wires))]
            elif isinstance(m, VarianceMP):
                k = self._paulis.key(m.obs, wires)
                mean = answer.values[lo : lo + n, group.index(k)]
                v = np.maximum(answer.values[lo : lo + n, group.index(self._paulis.square(k))] - mean**2, 0.0)
            else:
                dist = _z_distribution(answer, wires, self.name)[lo : lo + n]
                if not isinstance(m, ProbabilityMP):  # a shot record of this one (unbroadcast) tape
                    out.append(self._sampled(m, dist, answer.shots or 0, wires))
                    continue
                v = marginal(dist, m.wires or wires, wires)
            out.append(v if tape.batch_size else v[0])  # rows -> one value when not broadcast
        return tuple(out) if len(out) > 1 else out[0]

    def _sampled(self, m: Any, dist: np.ndarray, shots: int, wires: Wires) -> Any:
        """``sample``/``counts`` of one (unbroadcast) tape from its sampled outcome frequencies."""
        counts = np.rint(dist[0] * shots)
        record = samples_from_counts(counts, len(wires), self._rng)
        return m.process_samples(record, wire_order=wires)


def _gradients_wanted() -> bool:
    """False inside ``torch.no_grad()``: then no backward pass will ask for a Jacobian.

    Values and Jacobians are computed together when a backward pass may follow; under
    ``no_grad`` (an evaluation loop) PennyLane is told to compute Jacobians only on request, so
    the job holds one circuit per data point. Read while PennyLane resolves the execution
    config, before its torch boundary (whose forward always runs with autograd off).
    """
    torch = sys.modules.get("torch")
    return bool(torch.is_grad_enabled()) if torch is not None else True


class _Paulis:
    """Observables of tapes as hashable Pauli terms; each converted to a ``SparsePauliOp`` once."""

    def __init__(self) -> None:
        self._keys: dict[tuple, tuple] = {}
        self._ops: dict[tuple, SparsePauliOp] = {}
        self._squares: dict[tuple, tuple] = {}

    def _store(self, op: SparsePauliOp) -> tuple:
        key = tuple(sorted(zip(op.paulis.to_labels(), np.round(np.real(op.coeffs), 15).tolist())))
        self._ops.setdefault(key, op)
        return key

    def key(self, obs: Any, wires: Wires) -> tuple:
        rep = obs.pauli_rep
        raw = (tuple((tuple(word.items()), complex(c)) for word, c in rep.items()) if rep is not None else repr(obs), tuple(wires))
        hit = self._keys.get(raw)
        if hit is None:
            hit = self._keys[raw] = self._store(to_sparse_pauli(obs, wires))
        return hit

    def square(self, key: tuple) -> tuple:
        hit = self._squares.get(key)
        if hit is None:
            op = self._ops[key]
            hit = self._squares[key] = self._store((op @ op).simplify(atol=1e-14))
        return hit

    def z_all(self, n: int) -> tuple:
        return self._store(SparsePauliOp("Z" * n))

    def op(self, key: tuple) -> SparsePauliOp:
        return self._ops[key]

    def needed(self, tape: QuantumScript, wires: Wires) -> list[tuple]:
        """The Pauli observables a tape's measurements need (Z on every qubit for distributions)."""
        out = []
        for m in tape.measurements:
            if isinstance(m, (ExpectationMP, VarianceMP)):
                k = self.key(m.obs, wires)
                out.append(k)
                if isinstance(m, VarianceMP):
                    out.append(self.square(k))
            else:
                out.append(self.z_all(len(wires)))
        return out


class _Group:
    """The tapes of one structure and shot count: their rows and the observables they need."""

    def __init__(self, key: Hashable, num_qubits: int, shots: int | None):
        self.key, self.num_qubits, self.shots = key, num_qubits, shots
        self.rows: list[np.ndarray] = []
        self.count = 0
        self.observables: dict[tuple, int] = {}

    def add(self, rows: np.ndarray, observables: list[tuple]) -> int:
        first = self.count
        self.rows.append(rows)
        self.count += len(rows)
        for o in observables:
            self.observables.setdefault(o, len(self.observables))
        return first

    def index(self, key: tuple) -> int:
        return self.observables[key]

    def request(self, symbolic: tuple[QuantumCircuit, tuple], paulis: _Paulis) -> Request:
        circuit, params = symbolic
        return Request(
            key=self.key,
            build=lambda: circuit,
            parameters=params,
            bindings=np.concatenate(self.rows),
            observables=tuple(paulis.op(k) for k in self.observables),
            shots=self.shots,
        )


def _z_distribution(answer: Answer, wires: Wires, name: str) -> np.ndarray:
    """The outcome distribution in the computational basis of every row of an answer."""
    basis = "Z" * len(wires)
    if basis not in answer.bases or not answer.distributions:
        raise ConfigError(
            f"{name}: device {answer.transpiled.calibration_id} returned expectation values only, not outcome "
            "distributions; measure qml.expval(...) on it"
        )
    return answer.distributions[answer.bases.index(basis)]
