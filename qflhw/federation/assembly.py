"""Everything a spec says to build, built one way for every engine.

The in-process round loop, a Flower client site, ``qflhw estimate`` and the per-client quality
report all need the same pieces: the model circuit and its observables, the seeded data split,
each client's device (real, fake or an offline stand-in) and its :class:`Client`, the ledger and
the journaled runner. :class:`Assembly` builds them from a validated spec, so the engines cannot
drift apart; client selection per round is :func:`selected_indices`, also used by all of them, and
with ``[scheduling]`` the round's uplink plan is :func:`round_plan`, computed in the same place.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import stable_seed
from qflhw.calibration.drift import CalibrationSchedule, expand_refs
from qflhw.circuits.ansatz import ModelCircuit, build, observables
from qflhw.circuits.custom import load_model
from qflhw.config.profiles import load_profile
from qflhw.config.spec import ClientSpec, JobSpec, ModelSpec
from qflhw.devices.base import Device
from qflhw.devices.factory import make_device, offline_calibration, offline_device
from qflhw.errors import ConfigError
from qflhw.execution.budget import Ledger
from qflhw.execution.evaluator import Runner
from qflhw.execution.events import EventSink
from qflhw.execution.journal import Journal
from qflhw.execution.mitigation.base import Technique
from qflhw.execution.retries import JournaledRunner
from qflhw.federation.scheduling import RoundPlan, plan_round
from qflhw.training.classical import Model, make_model
from qflhw.training.client import Client
from qflhw.training.data import FederatedData, federate, keep_positive_fraction, load_dataset, one_vs_rest
from qflhw.training.heads import Loss, make_loss
from qflhw.training.personalization import Personalization, for_spec
from qflhw.training.privacy import PrivacyPlan, make_plan


def model_and_observables(spec: ModelSpec) -> tuple[ModelCircuit, list[SparsePauliOp]]:
    """The model circuit ``[model]`` describes (built-in ansatz or ``circuit`` entry point) and its observables."""
    if spec.circuit is None:
        return build(spec.ansatz, spec.qubits, spec.layers, spec.encoding), observables(spec.observables, spec.qubits)
    model, own = load_model(spec)
    return model, own if own is not None else observables(spec.observables, model.num_qubits)


def run_key(spec: JobSpec) -> str:
    """The run part of every idempotency key (and so of every shot-noise seed) of ``spec``.

    It derives from what the run *is*, not where it is written, so the same spec and seed give
    the same numbers in any directory.
    """
    return f"{spec.name}-seed{spec.seed}"


def federated_data(spec: JobSpec, num_features: int | None = None) -> tuple[FederatedData, int]:
    """The spec's dataset split into the global test set and one partition per client, and the
    number of classes; seeded, so a Flower site rebuilds its own partition exactly.

    Features are reduced to ``num_features`` angles (default ``model.qubits``; a model of your
    own gets one per input parameter)."""
    X, y = load_dataset(spec.data.dataset, classes=spec.data.classes)
    d = spec.data
    if d.positive and d.positive_fraction:
        X, y = keep_positive_fraction(X, y, d.positive, d.positive_fraction, stable_seed(spec.seed, "positive"))
    data = federate(
        X,
        y,
        n_clients=len(spec.clients),
        partition=d.partition,
        alpha=d.alpha,
        labels_per_client=d.labels_per_client,
        test_fraction=d.test_fraction,
        global_test_fraction=d.global_test_fraction,
        num_features=num_features or spec.model.qubits,
        seed=spec.seed,
    )
    if d.positive:
        return one_vs_rest(data, y, d.positive), 2
    return data, int(np.max(y)) + 1


def training_rows(spec: JobSpec, data: FederatedData, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``k``'s training rows, capped at ``spec.data.max_train_per_client``."""
    part, cap = data.clients[k], spec.data.max_train_per_client
    x_tr, y_tr = part.X_train, part.y_train
    return (x_tr[:cap], y_tr[:cap]) if cap else (x_tr, y_tr)


def sampled_indices(spec: JobSpec, round_: int) -> list[int]:
    """Spec positions of the clients sampled in ``round_`` (``client_fraction``), before any scheduling."""
    n = len(spec.clients)
    k = max(1, int(round(spec.client_fraction * n)))
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(stable_seed(spec.seed, "select", str(round_)))
    return [int(i) for i in sorted(rng.choice(n, size=k, replace=False))]


def participations(spec: JobSpec) -> list[int]:
    """How many rounds each client (in spec order) takes part in."""
    counts = [0] * len(spec.clients)
    for r in range(spec.rounds):
        for i in selected_indices(spec, r):
            counts[i] += 1
    return counts


def selected_indices(spec: JobSpec, round_: int) -> list[int]:
    """Spec positions of the clients that train in ``round_``: seeded, so every engine picks the same.

    The sampled clients (``client_fraction``); with ``[scheduling]`` and a deadline, those whose
    upload makes it in time (see :func:`round_plan`)."""
    sampled = sampled_indices(spec, round_)
    if spec.scheduling is None or spec.scheduling.deadline_s == 0:
        return sampled  # the uplink plan decides nothing about who trains
    return list(round_plan(spec, round_).selected)  # type: ignore[union-attr]


def round_plan(spec: JobSpec, round_: int) -> RoundPlan | None:
    """The uplink plan of ``round_`` (sub-channels, powers, rates, latency), None without ``[scheduling]``."""
    if spec.scheduling is None:
        return None
    return plan_round(spec, round_, sampled_indices(spec, round_), payload_bits(spec))


@functools.lru_cache(maxsize=64)
def _parameter_count(model_json: str, data_json: str) -> int:
    from qflhw.config.spec import DataSpec, ModelSpec
    from qflhw.training.data import load_dataset

    m, d = ModelSpec.model_validate_json(model_json), DataSpec.model_validate_json(data_json)
    circuit, obs = model_and_observables(m)  # a linear head assumed: the payload is an estimate
    n_classes = 2 if d.positive else len(d.classes) if d.classes else int(np.max(load_dataset(d.dataset)[1])) + 1
    return len(circuit.weights) + len(obs) * n_classes + n_classes


def payload_bits(spec: JobSpec) -> int:
    """Bits one client upload carries: ``[scheduling] payload_bits``, else 32 per model parameter."""
    if spec.scheduling is not None and spec.scheduling.payload_bits:
        return spec.scheduling.payload_bits
    return 32 * _parameter_count(spec.model.model_dump_json(), spec.data.model_dump_json())


def device_seed(spec: JobSpec, client: ClientSpec) -> int:
    """The seed of a client's device (transpilation and shot noise)."""
    return stable_seed(spec.seed, client.name, "device")


#: Longest Runtime execution mode qflhw asks for (8 h, IBM's documented session maximum).
MAX_MODE_SECONDS = 8 * 3600


def mode_max_time(spec: JobSpec, k: int, rows: int) -> int:
    """``max_time`` (s) of client ``k``'s Runtime execution mode: every job of the run may take
    up to the job timeout, so rounds x steps per round x job_timeout_s, capped at 8 h (1 h a job
    when the spec waits forever)."""
    cs = spec.clients[k]
    steps = -(-rows // spec.client_setting(cs, "batch_size")) * spec.client_setting(cs, "local_epochs")
    per_job = spec.resilience.job_timeout_s or 3600.0
    return int(min(MAX_MODE_SECONDS, max(60.0, spec.rounds * max(steps, 1) * per_job)))


def drift_seed(spec: JobSpec, client: ClientSpec) -> int:
    """The seed of a client's calibration drift: its ``[clients.drift] seed``, else from the job seed and name."""
    if client.drift is not None and client.drift.seed is not None:
        return client.drift.seed
    return stable_seed(spec.seed, client.name, "drift")


def calibration_schedule(spec: JobSpec, client: ClientSpec) -> CalibrationSchedule | None:
    """The client's calibration round by round, when it changes during the run (a series, a glob
    or a drift); None for one fixed snapshot. Only fake twins drift: a real QPU has its own."""
    if not client.calibration_changes:
        return None
    profile = load_profile(client.device)
    where = f"client {client.name}"
    if profile.provider != "fake":
        raise ConfigError(
            f"{where}: calibration series and [clients.drift] apply to fake devices only; {client.device} is a "
            f"{profile.provider} QPU, which reports its own calibration"
        )
    try:
        refs: list[str | None] = list(expand_refs(client.calibration_refs)) or [None]
        snapshots = [offline_calibration(profile, ref, client.noise_scale) for ref in refs]
        return CalibrationSchedule(
            snapshots, every=client.calibration_every, drift=client.drift, seed=drift_seed(spec, client), rounds=spec.rounds
        )
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


def make_ledger(spec: JobSpec) -> Ledger:
    """The run's ledger: its USD cap and per-client, per-round shot cap."""
    return Ledger(max_usd=Decimal(str(spec.budget.max_usd)), shots_per_round=spec.budget.shots_per_round)


def make_runner(spec: JobSpec, journal: Journal, events: EventSink | None = None) -> JournaledRunner:
    """The journaled runner with the spec's retry and timeout settings, reporting to ``events``."""
    r = spec.resilience
    return JournaledRunner(
        journal,
        retries=r.retries,
        backoff_initial=r.backoff_initial_s,
        backoff_max=r.backoff_max_s,
        job_timeout=r.job_timeout_s,
        events=events,
    )


class Assembly:
    """The pieces of one spec: model, observables, data split; clients and devices on request."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.run_key = run_key(spec)
        self.model, self.observables = model_and_observables(spec.model)
        self.loss: Loss = make_loss(spec.model)
        self.data, self.n_classes = federated_data(spec, len(self.model.inputs))
        # a head that cannot serve the data's classes fails here, before any job
        #: which coordinates stay at the clients ([personalization]); the server aggregates the rest
        self.split: Personalization = for_spec(spec, self.global_model())
        #: each client's differential-privacy plan ([privacy]); refuses an epsilon it cannot meet
        counts = participations(spec)
        self.privacy: dict[str, PrivacyPlan | None] = {
            c.name: make_plan(spec.privacy, client=c.name, participations=counts[k], dimension=self.split.shared_size)
            for k, c in enumerate(spec.clients)
        }
        self._schedules: dict[int, CalibrationSchedule | None] = {}

    def index(self, name: str) -> int:
        """Spec position of the client ``name``."""
        return [c.name for c in self.spec.clients].index(name)

    def schedule(self, k: int) -> CalibrationSchedule | None:
        """Client ``k``'s calibration schedule (None: one snapshot for the whole run); built once."""
        if k not in self._schedules:
            self._schedules[k] = calibration_schedule(self.spec, self.spec.clients[k])
        return self._schedules[k]

    def device(self, k: int, *, store: Path | None = None) -> Device:
        """Client ``k``'s device as a run uses it (connecting to a real QPU, if it is one); a drifting
        client's device starts on its round-0 calibration."""
        cs = self.spec.clients[k]
        rows = len(training_rows(self.spec, self.data, k)[1])
        max_time = mode_max_time(self.spec, k, rows)
        sched = self.schedule(k)
        if sched is not None:
            return make_device(
                cs.device, seed=device_seed(self.spec, cs), calibration=sched.at(0), store=store, max_time=max_time, twin=cs.twin
            )
        ref = cs.calibration_refs[0] if cs.calibration_refs else None
        return make_device(
            cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=ref, store=store, max_time=max_time,
            twin=cs.twin,
        )

    def offline_device(self, k: int) -> Device:
        """Client ``k``'s device on paper: it transpiles like the real one, offline, and never runs."""
        cs = self.spec.clients[k]
        sched = self.schedule(k)
        if sched is not None:
            return offline_device(cs.device, seed=device_seed(self.spec, cs), calibration=sched.at(0), twin=cs.twin)
        ref = cs.calibration_refs[0] if cs.calibration_refs else None
        return offline_device(
            cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=ref, twin=cs.twin
        )

    def client(
        self, k: int, device: Device, *, ledger: Ledger, runner: Runner, mitigation: Technique | None = None
    ) -> Client:
        """Client ``k`` on ``device``, with its training and test rows; ``mitigation`` overrides the spec's."""
        x_tr, y_tr = training_rows(self.spec, self.data, k)
        part = self.data.clients[k]
        return Client(
            self.spec.clients[k], self.spec, device, x_tr, y_tr, self.model, self.observables, self.n_classes,
            run_id=self.run_key, ledger=ledger, runner=runner, mitigation=mitigation, calibrations=self.schedule(k),
            test_rows=(part.X_test, part.y_test), privacy=self.privacy[self.spec.clients[k].name],
        )

    def global_model(self) -> Model:
        """The model every client starts from (seeded by the spec): hybrid (with the spec's head),
        or the classical MLP."""
        return make_model(self.spec, len(self.model.weights), len(self.observables), self.n_classes)


def describe_client(c: Client) -> dict:
    """A client's device and transpiled-circuit facts as the run summary reports them."""
    t = c.evaluator.transpiled
    return {
        "device": c.device.name,
        "calibration_id": c.device.calibration.id,
        "esp": t.esp,
        "physical_qubits": [int(q) for q in t.physical_qubits],
        "two_qubit_gates": t.two_qubit_gates,
        "depth": t.depth,
        "emulated": bool(getattr(c.device, "emulated", False)),
        "stopped": c.stopped or "",
        # the provider's queue depth when the client connected (real QPUs only)
        **({"queue": c.device.queue.to_dict()} if c.device.queue is not None else {}),
    }
