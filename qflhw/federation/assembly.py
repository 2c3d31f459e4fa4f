"""Everything a spec says to build, built one way for every engine.

The in-process round loop, a Flower client site, ``qflhw estimate`` and the per-client quality
report all need the same pieces: the model circuit and its observables, the seeded data split,
each client's device (real, fake or an offline stand-in) and its :class:`Client`, the ledger and
the journaled runner. :class:`Assembly` builds them from a validated spec, so the engines cannot
drift apart; client selection per round is :func:`selected_indices`, also used by all of them.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import stable_seed
from qflhw.circuits.ansatz import ModelCircuit, build, observables
from qflhw.circuits.custom import load_model
from qflhw.config.spec import ClientSpec, JobSpec, ModelSpec
from qflhw.devices.base import Device
from qflhw.devices.factory import make_device, offline_device
from qflhw.execution.budget import Ledger
from qflhw.execution.evaluator import Runner
from qflhw.execution.events import EventSink
from qflhw.execution.journal import Journal
from qflhw.execution.mitigation.base import Technique
from qflhw.execution.retries import JournaledRunner
from qflhw.training.client import Client
from qflhw.training.data import FederatedData, federate, load_dataset
from qflhw.training.heads import Loss, make_loss, make_model
from qflhw.training.model import HybridModel


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
    return data, int(np.max(y)) + 1


def training_rows(spec: JobSpec, data: FederatedData, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``k``'s training rows, capped at ``spec.data.max_train_per_client``."""
    part, cap = data.clients[k], spec.data.max_train_per_client
    x_tr, y_tr = part.X_train, part.y_train
    return (x_tr[:cap], y_tr[:cap]) if cap else (x_tr, y_tr)


def selected_indices(spec: JobSpec, round_: int) -> list[int]:
    """Spec positions of the clients that train in ``round_``: seeded, so every engine picks the same."""
    n = len(spec.clients)
    k = max(1, int(round(spec.client_fraction * n)))
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(stable_seed(spec.seed, "select", str(round_)))
    return [int(i) for i in sorted(rng.choice(n, size=k, replace=False))]


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
        if spec.model.head:
            self.global_model()  # a head that cannot serve the data's classes fails here, before any job

    def index(self, name: str) -> int:
        """Spec position of the client ``name``."""
        return [c.name for c in self.spec.clients].index(name)

    def device(self, k: int, *, store: Path | None = None) -> Device:
        """Client ``k``'s device as a run uses it (connecting to a real QPU, if it is one)."""
        cs = self.spec.clients[k]
        rows = len(training_rows(self.spec, self.data, k)[1])
        return make_device(
            cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=cs.calibration, store=store,
            max_time=mode_max_time(self.spec, k, rows),
        )

    def offline_device(self, k: int) -> Device:
        """Client ``k``'s device on paper: it transpiles like the real one, offline, and never runs."""
        cs = self.spec.clients[k]
        return offline_device(cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=cs.calibration)

    def client(
        self, k: int, device: Device, *, ledger: Ledger, runner: Runner, mitigation: Technique | None = None
    ) -> Client:
        """Client ``k`` on ``device``, with its training rows; ``mitigation`` overrides the spec's."""
        x_tr, y_tr = training_rows(self.spec, self.data, k)
        return Client(
            self.spec.clients[k], self.spec, device, x_tr, y_tr, self.model, self.observables, self.n_classes,
            run_id=self.run_key, ledger=ledger, runner=runner, mitigation=mitigation,
        )

    def global_model(self) -> HybridModel:
        """The model every client starts from (seeded by the spec)."""
        return make_model(self.spec.model, len(self.model.weights), len(self.observables), self.n_classes, self.spec.seed)


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
