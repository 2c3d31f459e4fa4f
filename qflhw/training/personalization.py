"""Personalized federated learning: parameters that stay at the client, never sent or averaged.

``[personalization] method``:

* ``local-head``: the classical head is the client's own (FedPer-style, Arivazhagan et al.,
  arXiv:1912.00818): local training updates circuit and head, the client sends only the circuit
  weights, and the server averages only those.
* ``local-layers``: the head and the last ``local_layers`` ansatz layers stay local.
* ``pqfl``: every parameter is shared as in FedAvg, and each client also keeps a personal copy of
  the whole model. After the global model arrives and local training is done, the client
  fine-tunes its copy on its own device and data for ``adapt_steps`` steps (one job each, with
  its own learning rate) on the loss plus ``lam/2 * ||w_personal - w_global||^2``, so it adapts to
  its hardware and data while staying near the federation. This follows the proximal
  personalization that PQFL (Rahman et al., arXiv:2511.07471) describes; the paper's exact
  schedule is not public in the sources we could read, so these settings are ours.

The split is a boolean mask over the flat parameter vector, known to both sides from the spec:
a client's report carries the shared coordinates only, and the server aggregates only those.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from qflhw._util import stable_seed
from qflhw.config.spec import JobSpec
from qflhw.devices.base import JobKey
from qflhw.training.classical import Model, parameter_groups

Trainer = Any  # a qflhw.training.client.Client (not imported: the client module imports this one)


class Personalization:
    """Which coordinates of the flat parameter vector stay at the client (``local``)."""

    def __init__(self, method: str, groups: list[tuple[str, int]], local_layers: int = 1):
        self.method = method
        names = [g for g, _ in groups]
        keep: set[str] = set()
        if method in ("local-head", "local-layers"):
            keep.add("head")
        if method == "local-layers":
            layers = [g for g in names if g.startswith("layer")]
            keep.update(layers[len(layers) - local_layers :])
        self.local = np.concatenate([np.full(n, g in keep, dtype=bool) for g, n in groups]) if groups else np.zeros(0, bool)
        self.shared_index = np.flatnonzero(~self.local)

    @property
    def size(self) -> int:
        return len(self.local)

    @property
    def shared_size(self) -> int:
        return len(self.shared_index)

    def shared(self, flat: np.ndarray) -> np.ndarray:
        """The coordinates a client sends and the server averages."""
        return np.asarray(flat, dtype=np.float64)[self.shared_index].copy()

    def merge(self, full: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """``full`` with its shared coordinates replaced by ``shared``."""
        out = np.asarray(full, dtype=np.float64).copy()
        out[self.shared_index] = shared
        return out


def for_spec(job: JobSpec, net: Model) -> Personalization:
    p = job.personalization
    return Personalization(p.method, parameter_groups(net, job.model.layers), p.local_layers)


class PersonalState:
    """What a client keeps of its own: local coordinates, or PQFL's personal model and optimizer."""

    def __init__(self, job: JobSpec, net: Model, name: str):
        self.job, self.name = job, name
        self.split = for_spec(job, net)
        self.method = job.personalization.method
        self.values: np.ndarray | None = None  # the client's own values of the local coordinates
        self._template = net
        self.net: Model | None = None  # pqfl: the personal model, made on the first adaptation
        self.optimizer: torch.optim.Optimizer | None = None

    def start(self, global_params: np.ndarray) -> np.ndarray:
        """Where local training starts this round: the global model with the client's own local part."""
        if self.values is None:
            return np.asarray(global_params, dtype=np.float64)
        out = np.asarray(global_params, dtype=np.float64).copy()
        out[self.split.local] = self.values
        return out

    def keep(self, trained: np.ndarray) -> None:
        """After local training: remember the local coordinates (they are not sent)."""
        if self.split.local.any():
            self.values = np.asarray(trained, dtype=np.float64)[self.split.local].copy()

    def personal_params(self, global_params: np.ndarray) -> np.ndarray | None:
        """The full parameter vector of this client's personalized model (None: method none)."""
        if self.method == "none":
            return None
        if self.method == "pqfl":
            return self.net.get_flat() if self.net is not None else np.asarray(global_params, dtype=np.float64)
        return self.start(global_params)

    def _make_personal(self, global_params: np.ndarray) -> tuple[Model, torch.optim.Optimizer]:
        if self.net is None or self.optimizer is None:
            self.net = copy.deepcopy(self._template)
            self.net.set_flat(global_params)
            lr = self.job.personalization.learning_rate or self.job.training.learning_rate
            opt = torch.optim.Adam if self.job.training.optimizer == "adam" else torch.optim.SGD
            self.optimizer = opt(self.net.parameters(), lr=lr)
        return self.net, self.optimizer

    def adapt(self, client: Trainer, global_params: np.ndarray, round_: int, res: Any, first_step: int,
              variances: list[float]) -> None:
        """PQFL: ``adapt_steps`` fine-tuning steps of the personal model, one device job each."""
        p = self.job.personalization
        net, opt = self._make_personal(global_params)
        anchor = torch.as_tensor(np.asarray(global_params, dtype=np.float64))
        rng = np.random.default_rng(stable_seed(self.job.seed, self.name, f"adapt{round_}"))
        n = len(client.y)
        order = rng.permutation(n)
        pos = 0
        for j in range(p.adapt_steps):
            if pos >= n:
                order, pos = rng.permutation(n), 0
            idx = order[pos : pos + client.batch_size]
            pos += len(idx)
            key = JobKey(client.run_id, round_, self.name, first_step + j)
            client.step(net, opt, idx, key, round_, res, variances, anchor, p.lam)

    def state(self) -> dict:
        return {
            "values": None if self.values is None else self.values.tolist(),
            "net": None if self.net is None else self.net.get_flat().tolist(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
        }

    def load_state(self, saved: dict | None) -> None:
        if not saved:
            return
        self.values = None if saved.get("values") is None else np.asarray(saved["values"], dtype=np.float64)
        if saved.get("net") is None:
            self.net = self.optimizer = None
        else:
            flat = np.asarray(saved["net"], dtype=np.float64)
            net, opt = self._make_personal(flat)
            net.set_flat(flat)
            if saved.get("optimizer") is not None:
                opt.load_state_dict(saved["optimizer"])
