"""A client scores models on its own test rows: the global model, and its personalized one.

Each client's test split (``data.test_fraction`` of its rows, disjoint from its training rows) is
used every round (``[evaluation]``). With ``on_device = true`` the model circuit runs on the
client's own device, one provider job per evaluated weight vector (``JobKey`` phase ``e``), its
shots charged to the ledger and counted against ``budget.shots_per_round`` like training; with
``on_device = false`` the circuit is evaluated exactly and noiselessly, nothing is charged, and
nothing about training changes. A client reports scores only, never its rows.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.ansatz import ModelCircuit
from qflhw.circuits.exact import ideal_expectations
from qflhw.devices.base import JobKey
from qflhw.errors import BudgetExceeded, QflhwError
from qflhw.execution.budget import Cost
from qflhw.execution.evaluator import CircuitEvaluator
from qflhw.training.classical import ClassicalModel, Model
from qflhw.training.metrics import Scores, score

Client = Any  # a qflhw.training.client.Client (not imported: the client module imports this one)


@dataclass
class ClientEval:
    """One client's scores for one round: the global model and (if personalized) its own."""

    client: str
    round: int
    scores: Scores  # the global model on the client's test rows
    personal: Scores | None = None  # the client's personalized model on the same rows
    cost: Cost = field(default_factory=Cost)
    job_ids: list[str] = field(default_factory=list)
    error: str | None = None


def exact_logits(net: Model, model: ModelCircuit, observables: Sequence[SparsePauliOp], x: np.ndarray) -> torch.Tensor:
    """Logits of ``net`` at the rows ``x`` with noiseless circuit evaluation (or the MLP)."""
    with torch.no_grad():
        if isinstance(net, ClassicalModel):
            return net(torch.as_tensor(np.asarray(x, dtype=np.float64)))
        flat = net.get_flat()
        q = ideal_expectations(model, observables, x, flat[: len(model.weights)])
        return net.logits_from_expectations(torch.as_tensor(q))


def _device_evaluator(client: Client) -> CircuitEvaluator:
    """The client's evaluator for scoring on its device (its own shots, no adaptive policy)."""
    if client.eval_evaluator is None:
        job, base = client.job, client.evaluator
        shots = job.evaluation.shots or job.client_setting(client.spec, "shots")
        client.eval_evaluator = CircuitEvaluator(
            client.device, base.model, base.observables, client=client.name, shots=shots or None,
            mitigation=base.mitigation, ledger=base.ledger, runner=base.runner,
        )
    return client.eval_evaluator


def estimate_cost(client: Client) -> Cost:
    """What one round of this client's evaluation costs (nothing unless it runs on the device)."""
    if not (client.job.evaluation.per_client and client.job.evaluation.on_device) or isinstance(client.model, ClassicalModel):
        return Cost()
    if len(client.y_test) == 0:
        return Cost()
    jobs = 2 if client.job.personalization.method in ("local-layers", "pqfl") else 1
    one = _device_evaluator(client).estimate(len(client.y_test), grad=False)
    return Cost(one.usd * jobs, one.tasks * jobs, one.shots * jobs, one.seconds * jobs)


def evaluate_client(client: Client, global_params: np.ndarray, round_: int) -> ClientEval:
    """Score the global model (and the client's personalized one) on the client's test rows.

    Never raises for device or budget trouble: the error comes back in :attr:`ClientEval.error`.
    """
    x, y = client.x_test, client.y_test
    ev = ClientEval(client.name, round_, Scores(len(y)))
    if len(y) == 0:
        return ev
    net = copy.deepcopy(client.model)
    weights = [np.asarray(global_params, dtype=np.float64)]
    personal = client.personal.personal_params(global_params)
    if personal is not None:
        weights.append(personal)
    on_device = client.job.evaluation.on_device and not isinstance(net, ClassicalModel)
    results: list[Scores] = []
    try:
        if on_device and client.stopped:
            raise BudgetExceeded(client.stopped)
        n_w = len(client.evaluator.model.weights)
        cached: dict[bytes, np.ndarray] = {}
        for k, flat in enumerate(weights):
            net.set_flat(flat)
            if not on_device:
                logits = exact_logits(net, client.evaluator.model, client.evaluator.observables, x)
            else:
                w = flat[:n_w]
                if w.tobytes() not in cached:  # a local head shares the global circuit: one job serves both
                    vals, _, info = _device_evaluator(client)(x, w, key=JobKey(client.run_id, round_, client.name, k, "e"),
                                                               round_=round_, grad=False)
                    cached[w.tobytes()] = np.asarray(vals)
                    ev.cost = ev.cost + info.cost
                    ev.job_ids.extend(info.job_ids)
                assert not isinstance(net, ClassicalModel)
                with torch.no_grad():
                    logits = net.logits_from_expectations(torch.as_tensor(cached[w.tobytes()]))
            results.append(score(logits, y, client.loss))
    except BudgetExceeded as err:
        ev.error = f"budget: {err}"
    except QflhwError as err:
        ev.error = f"{type(err).__name__}: {err}"
    if results:
        ev.scores = results[0]
    if len(results) > 1:
        ev.personal = results[1]
    return ev
