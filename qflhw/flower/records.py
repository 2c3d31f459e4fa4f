"""What travels between the server and a client site, as Flower records.

The server sends an *instruction*: the global parameters, the round, which clients train and a
digest of the spec sections both sides must agree on. A site answers with a *report*: its trained
parameters (none when it dropped out) and everything the aggregators and the run's metrics need
(samples, shots, cost, ESP, variance, calibration id, job ids, error), plus what it was billed
including retries and its device facts for the summary. Money travels as a decimal string, so no
cent is rounded away; parameters travel as float64 arrays, bit for bit. A site's trained
parameters are its *shared* coordinates only: personalized ones (``[personalization]``) never
leave it. After aggregation the server sends the same instruction as an evaluation message; the
site answers with an :class:`EvalReport`: its scores on its own test rows, never the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from qflhw.flower import require_flwr

require_flwr()  # a clear error without the extra; Flower's telemetry off by default

from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from qflhw.config.spec import JobSpec
from qflhw.errors import InvalidUpdate
from qflhw.execution.budget import Cost
from qflhw.training.client import ClientResult
from qflhw.training.local_eval import ClientEval
from qflhw.training.metrics import Scores

Status = Literal["trained", "dropped", "skipped"]


def spec_digest(spec: JobSpec) -> str:
    """A short hash of what server and sites must share: name, seed, data, model, training and
    the client list (devices, credentials, budgets and outputs may differ per site)."""
    shared = spec.model_dump(
        mode="json", include={"name", "seed", "data", "model", "training", "evaluation", "personalization", "privacy"}
    )
    shared["clients"] = [c.name for c in spec.clients]
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Instruction:
    """One round's order from the server to every site it contacts."""

    params: np.ndarray
    round: int
    selected: tuple[str, ...]
    digest: str

    def content(self) -> RecordDict:
        return RecordDict(
            {
                "arrays": ArrayRecord({"params": Array(np.asarray(self.params, dtype=np.float64))}),
                "config": ConfigRecord(
                    {"round": self.round, "selected": list(self.selected), "spec-digest": self.digest}
                ),
            }
        )

    @classmethod
    def read(cls, content: RecordDict) -> Instruction:
        try:
            cfg: Mapping[str, Any] = content.config_records["config"]
            arrays: Mapping[str, Any] = content.array_records["arrays"]
            params = arrays["params"].numpy()
            return cls(params, int(cfg["round"]), tuple(cfg["selected"]), str(cfg["spec-digest"]))
        except (KeyError, TypeError) as err:
            raise InvalidUpdate(f"not a qflhw training instruction (missing {err}); is the server a qflhw ServerApp?") from err


@dataclass
class Report:
    """A site's answer to an instruction."""

    result: ClientResult
    status: Status
    billed: Cost = field(default_factory=Cost)  # the site ledger's charges this round, retries included
    facts: dict = field(default_factory=dict)  # federation.describe_client() of the site's client

    def content(self) -> RecordDict:
        res = self.result
        records: dict = {
            "metrics": MetricRecord(
                {
                    "num-examples": int(res.num_samples),
                    "loss": float(res.loss),
                    "steps": int(res.steps),
                    "esp": float(res.esp),
                    "variance": float(res.variance),
                    "noise-estimate": float(res.noise_estimate),
                    "seconds": float(res.seconds),
                    "shots": int(res.cost.shots),
                    "tasks": int(res.cost.tasks),
                    "qpu-seconds": float(res.cost.seconds),
                    "zne-fallbacks": int(res.zne_fallbacks),
                    **{f"x-{k}": float(v) for k, v in res.extra.items()},
                }
            ),
            "report": ConfigRecord(
                {
                    "client": res.client,
                    "device": res.device,
                    "round": int(res.round),
                    "status": self.status,
                    "error": res.error or "",
                    "calibration-id": res.calibration_id,
                    "layout": res.layout,
                    "cost-usd": str(res.cost.usd),
                    "job-ids": [str(j) for j in res.job_ids],
                    "billed-usd": str(self.billed.usd),
                    "billed-tasks": int(self.billed.tasks),
                    "billed-shots": int(self.billed.shots),
                    "billed-seconds": float(self.billed.seconds),
                    "facts-json": json.dumps(self.facts, sort_keys=True),
                }
            ),
        }
        if res.params is not None:
            records["arrays"] = ArrayRecord({"params": Array(np.asarray(res.params, dtype=np.float64))})
        return RecordDict(records)

    @classmethod
    def read(cls, content: RecordDict) -> Report:
        """Decode a reply; a malformed one raises :class:`InvalidUpdate` (the server drops that client)."""
        try:
            m: Mapping[str, Any] = content.metric_records["metrics"]
            r: Mapping[str, Any] = content.config_records["report"]
            arrays: Mapping[str, Any] = content.array_records["arrays"] if "arrays" in content else {}
            params = arrays["params"].numpy() if arrays else None
            result = ClientResult(
                client=str(r["client"]),
                device=str(r["device"]),
                round=int(r["round"]),
                params=params,
                num_samples=int(m["num-examples"]),
                loss=float(m["loss"]),
                steps=int(m["steps"]),
                cost=Cost(Decimal(str(r["cost-usd"])), int(m["tasks"]), int(m["shots"]), float(m["qpu-seconds"])),
                esp=float(m["esp"]),
                variance=float(m["variance"]),
                calibration_id=str(r["calibration-id"]),
                layout=str(r.get("layout", "")),
                noise_estimate=float(m.get("noise-estimate", float("nan"))),
                job_ids=[str(j) for j in r["job-ids"]],
                seconds=float(m["seconds"]),
                error=str(r["error"]) or None,
                zne_fallbacks=int(m["zne-fallbacks"]),
                extra={str(k)[2:]: float(v) for k, v in m.items() if str(k).startswith("x-")},
            )
            billed = Cost(
                Decimal(str(r["billed-usd"])), int(r["billed-tasks"]), int(r["billed-shots"]), float(r["billed-seconds"])
            )
            status = str(r["status"])
            if status not in ("trained", "dropped", "skipped"):
                raise ValueError(f"status {status!r}")
            return cls(result, status, billed, json.loads(str(r["facts-json"])))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, ArithmeticError) as err:
            raise InvalidUpdate(f"malformed qflhw report from a site ({type(err).__name__}: {err})") from err


_SCORE_KEYS = ("rows", "accuracy", "loss", "auroc", "aupr")


@dataclass
class EvalReport:
    """A site's scores of the global (and its personalized) model on its own test rows."""

    result: ClientEval

    def content(self) -> RecordDict:
        ev = self.result
        metrics: dict = {f"global-{k}": float(getattr(ev.scores, k)) for k in _SCORE_KEYS}
        if ev.personal is not None:
            metrics.update({f"personal-{k}": float(getattr(ev.personal, k)) for k in _SCORE_KEYS})
        metrics.update({"shots": int(ev.cost.shots), "tasks": int(ev.cost.tasks), "qpu-seconds": float(ev.cost.seconds)})
        return RecordDict({
            "metrics": MetricRecord(metrics),
            "report": ConfigRecord({
                "client": ev.client, "round": int(ev.round), "error": ev.error or "",
                "cost-usd": str(ev.cost.usd), "job-ids": [str(j) for j in ev.job_ids],
            }),
        })

    @classmethod
    def read(cls, content: RecordDict) -> EvalReport:
        """Decode an evaluation reply; a malformed one raises :class:`InvalidUpdate`."""
        try:
            m: Mapping[str, Any] = content.metric_records["metrics"]
            r: Mapping[str, Any] = content.config_records["report"]

            def scores(prefix: str) -> Scores:
                return Scores(int(m[f"{prefix}-rows"]), *(float(m[f"{prefix}-{k}"]) for k in _SCORE_KEYS[1:]))

            return cls(ClientEval(
                client=str(r["client"]), round=int(r["round"]), scores=scores("global"),
                personal=scores("personal") if "personal-rows" in m else None,
                cost=Cost(Decimal(str(r["cost-usd"])), int(m["tasks"]), int(m["shots"]), float(m["qpu-seconds"])),
                job_ids=[str(j) for j in r["job-ids"]], error=str(r["error"]) or None,
            ))
        except (KeyError, TypeError, ValueError, ArithmeticError) as err:
            raise InvalidUpdate(f"malformed qflhw evaluation report from a site ({type(err).__name__}: {err})") from err
