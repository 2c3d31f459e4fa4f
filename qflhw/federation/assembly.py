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
from qflhw.config.spec import ClientSpec, JobSpec
from qflhw.devices.base import Device
from qflhw.devices.factory import make_device, offline_device
from qflhw.execution.budget import Ledger
from qflhw.execution.evaluator import Runner
from qflhw.execution.journal import Journal
from qflhw.execution.mitigation.base import Technique
from qflhw.execution.retries import JournaledRunner
from qflhw.training.client import Client
from qflhw.training.data import FederatedData, federate, load_dataset
from qflhw.training.model import HybridModel


def run_key(spec: JobSpec) -> str:
    """The run part of every idempotency key (and so of every shot-noise seed) of ``spec``.

    It derives from what the run *is*, not where it is written, so the same spec and seed give
    the same numbers in any directory.
    """
    return f"{spec.name}-seed{spec.seed}"


def federated_data(spec: JobSpec) -> tuple[FederatedData, int]:
    """The spec's dataset split into the global test set and one partition per client, and the
    number of classes; seeded, so a Flower site rebuilds its own partition exactly."""
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
        num_features=spec.model.qubits,
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


def make_ledger(spec: JobSpec) -> Ledger:
    """The run's ledger: its USD cap and per-client, per-round shot cap."""
    return Ledger(max_usd=Decimal(str(spec.budget.max_usd)), shots_per_round=spec.budget.shots_per_round)


def make_runner(spec: JobSpec, journal: Journal) -> JournaledRunner:
    """The journaled runner with the spec's retry and timeout settings."""
    r = spec.resilience
    return JournaledRunner(
        journal,
        retries=r.retries,
        backoff_initial=r.backoff_initial_s,
        backoff_max=r.backoff_max_s,
        job_timeout=r.job_timeout_s,
    )


class Assembly:
    """The pieces of one spec: model, observables, data split; clients and devices on request."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.run_key = run_key(spec)
        self.model: ModelCircuit = build(spec.model.ansatz, spec.model.qubits, spec.model.layers, spec.model.encoding)
        self.observables: list[SparsePauliOp] = observables(spec.model.observables, spec.model.qubits)
        self.data, self.n_classes = federated_data(spec)

    def index(self, name: str) -> int:
        """Spec position of the client ``name``."""
        return [c.name for c in self.spec.clients].index(name)

    def device(self, k: int, *, store: Path | None = None) -> Device:
        """Client ``k``'s device as a run uses it (connecting to a real QPU, if it is one)."""
        cs = self.spec.clients[k]
        return make_device(
            cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=cs.calibration, store=store,
            twin=cs.twin,
        )

    def offline_device(self, k: int) -> Device:
        """Client ``k``'s device on paper: it transpiles like the real one, offline, and never runs."""
        cs = self.spec.clients[k]
        return offline_device(
            cs.device, seed=device_seed(self.spec, cs), noise_scale=cs.noise_scale, calibration=cs.calibration, twin=cs.twin
        )

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
        return HybridModel(len(self.model.weights), len(self.observables), self.n_classes, self.spec.seed)


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
        "stopped": c.stopped or "",
    }
