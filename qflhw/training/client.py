"""A federated client: its device, its private data, its model copy and its local training.

A round of local training is a few optimizer steps, each one provider job. Whatever goes wrong
inside a round (a failed job, an exhausted budget) comes back as data in the
:class:`ClientResult`, so the server can aggregate the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from qflhw._util import stable_seed
from qflhw.calibration.drift import CalibrationSchedule
from qflhw.circuits.ansatz import ModelCircuit
from qflhw.config.spec import ClientSpec, JobSpec
from qflhw.devices.base import Device, JobKey
from qflhw.errors import BudgetExceeded, ConfigError, QflhwError
from qflhw.execution.budget import Cost, Ledger
from qflhw.execution.evaluator import CircuitEvaluator, Runner, direct_runner
from qflhw.execution.mitigation import make_mitigation
from qflhw.execution.mitigation.base import Technique
from qflhw.execution.shots import AdaptiveShots
from qflhw.training import lr_schedule
from qflhw.training.classical import ClassicalModel, Model, make_model
from qflhw.training.fedprox import proximal_term
from qflhw.training.heads import make_loss
from qflhw.training.local_eval import ClientEval, evaluate_client
from qflhw.training.noise import estimate_noise
from qflhw.training.personalization import PersonalState
from qflhw.training.privacy import PrivacyPlan, make_release


@dataclass
class ClientResult:
    """One client's report for one round; ``params`` is None when it dropped out."""

    client: str
    device: str
    round: int
    params: np.ndarray | None
    num_samples: int
    loss: float = float("nan")
    steps: int = 0
    cost: Cost = field(default_factory=Cost)
    esp: float = 1.0
    variance: float = 0.0
    calibration_id: str = ""
    layout: str = ""  # physical qubit measured for each logical qubit, this round (space separated)
    noise_estimate: float = float("nan")  # the client's own noise level this round (qflhw.training.noise)
    job_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    zne_fallbacks: int = 0  # mitigated values whose zero-noise fit fell back to Richardson
    extra: dict[str, float] = field(default_factory=dict)  # e.g. the privacy figures of this report


class Client:
    def __init__(
        self,
        spec: ClientSpec,
        job: JobSpec,
        device: Device,
        x_train: np.ndarray,
        y_train: np.ndarray,
        model: ModelCircuit,
        observables,
        n_classes: int,
        *,
        run_id: str,
        ledger: Ledger,
        runner: Runner = direct_runner,
        mitigation: Technique | None = None,
        test_rows: tuple[np.ndarray, np.ndarray] | None = None,
        privacy: PrivacyPlan | None = None,
        calibrations: CalibrationSchedule | None = None,
    ):
        self.spec = spec
        self.job = job
        self.device = device
        self.x = np.asarray(x_train, dtype=float)
        self.y = np.asarray(y_train, dtype=int)
        self.run_id = run_id
        shots = job.client_setting(spec, "shots")
        self._own_mitigation = mitigation is None  # built from the calibration, so rebuilt when it changes
        if mitigation is None:  # an explicit object overrides the spec (tests, custom techniques)
            mitigation = make_mitigation(job.client_mitigation(spec), device.calibration)
        self.calibrations = calibrations if calibrations is not None and calibrations.changes else None
        if self.calibrations is not None and self.calibrations.at(0).id != device.calibration.id:
            device.set_calibration(self.calibrations.at(0))
            if self._own_mitigation:
                mitigation = make_mitigation(job.client_mitigation(spec), device.calibration)
        adaptive = _adaptive_shots(job, spec, device, observables, shots)
        self.evaluator = CircuitEvaluator(
            device,
            model,
            observables,
            client=spec.name,
            shots=shots or None,
            gradient=job.training.gradient,
            spsa_epsilon=job.training.spsa_epsilon,
            seed=stable_seed(job.seed, spec.name, "spsa"),
            mitigation=mitigation,
            ledger=ledger,
            runner=runner,
            shot_allocation=job.training.shot_allocation,
            adaptive=adaptive,
        )
        self.model: Model = make_model(job, len(model.weights), len(observables), n_classes)
        self.loss = make_loss(job.model)
        x_te, y_te = test_rows if test_rows is not None else (np.zeros((0, self.x.shape[1])), np.zeros(0, dtype=int))
        self.x_test, self.y_test = np.asarray(x_te, dtype=float), np.asarray(y_te, dtype=int)
        self.eval_evaluator: CircuitEvaluator | None = None  # made on first on-device evaluation
        self.personal = PersonalState(job, self.model, spec.name)
        self.privacy = privacy
        self.release = make_release(privacy, device, client=spec.name, run_id=run_id, ledger=ledger, runner=runner,
                                    seed=stable_seed(job.seed, spec.name, "privacy"))
        lr = job.client_setting(spec, "learning_rate")
        opt = torch.optim.Adam if job.training.optimizer == "adam" else torch.optim.SGD
        self.optimizer = opt(self.model.parameters(), lr=lr)
        self.scheduler = lr_schedule.make_scheduler(self.optimizer, job.training.lr_schedule)
        self.batch_size = job.client_setting(spec, "batch_size")
        self.local_epochs = job.client_setting(spec, "local_epochs")
        self.stopped: str | None = None  # set when the budget ran out: the client stays out

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def esp(self) -> float:
        """ESP of the client's compiled circuit (1 for the classical model, which runs no circuit)."""
        return 1.0 if isinstance(self.model, ClassicalModel) else self.evaluator.transpiled.esp

    def follow_calibration(self, round_: int) -> bool:
        """Put the device on its calibration of ``round_`` and re-transpile if it changed.

        Returns whether it changed. The noise-aware layout may move, and ESP, mitigation variants
        and circuit durations follow the new snapshot."""
        if self.calibrations is None:
            return False
        cal = self.calibrations.at(round_)
        if cal.id == self.device.calibration.id:
            return False
        self.device.set_calibration(cal)
        mitigation = make_mitigation(self.job.client_mitigation(self.spec), cal) if self._own_mitigation else self.evaluator.mitigation
        self.evaluator.retarget(mitigation)
        return True

    def train_round(self, global_params: np.ndarray, round_: int) -> ClientResult:
        """Local training from the global parameters; never raises for device or budget trouble."""
        start = time.perf_counter()
        self.follow_calibration(round_)
        res = ClientResult(
            client=self.name,
            device=self.device.name,
            round=round_,
            params=None,
            num_samples=len(self.y),
            esp=self.esp,
            calibration_id=self.device.calibration.id,
            layout=" ".join(str(q) for q in self.evaluator.transpiled.final_physical),
        )
        if self.stopped:
            res.error = self.stopped
            return res
        begin = self.personal.start(global_params)  # the global model, with this client's own local part
        self.model.set_flat(begin)
        anchor = torch.as_tensor(begin, dtype=torch.float64)
        rng = np.random.default_rng(stable_seed(self.job.seed, self.name, f"round{round_}"))
        losses: list[float] = []
        variances: list[float] = []
        step = 0
        params = None
        try:
            for _epoch in range(self.local_epochs):
                order = rng.permutation(len(self.y))
                for lo in range(0, len(order), self.batch_size):
                    idx = order[lo : lo + self.batch_size]
                    key = JobKey(self.run_id, round_, self.name, step)
                    loss = self.step(self.model, self.optimizer, idx, key, round_, res, variances, anchor,
                                     self.job.training.proximal_mu)
                    losses.append(loss)
                    lr_schedule.step(self.scheduler, self.model.parameters())
                    step += 1
            params = self._report(global_params, round_, res, variances, step)
        except BudgetExceeded as err:
            self.stopped = f"budget: {err}"
            res.error = self.stopped
        except QflhwError as err:
            res.error = f"{type(err).__name__}: {err}"
        res.steps = step
        res.seconds = time.perf_counter() - start
        res.loss = float(np.mean(losses)) if losses else float("nan")
        res.variance = float(np.mean(variances)) if variances else 0.0
        res.noise_estimate = estimate_noise(res.esp, res.variance)
        if res.error is None:
            res.params = params
        return res

    def step(
        self, net: Model, optimizer: torch.optim.Optimizer, idx: np.ndarray, key: JobKey, round_: int,
        res: ClientResult, variances: list[float], anchor: torch.Tensor, mu: float,
    ) -> float:
        """One optimizer step of ``net`` on the rows ``idx``: one provider job (none for the MLP)."""

        def evaluate(x, w):  # noqa: ANN001, ANN202
            vals, jac, info = self.evaluator(x, w, key=key, round_=round_, grad=True)
            res.job_ids.extend(info.job_ids)
            res.cost = res.cost + info.cost
            variances.append(info.variance)
            res.zne_fallbacks += info.fallbacks
            return vals, jac

        optimizer.zero_grad()
        logits = net(torch.as_tensor(self.x[idx]), evaluate)
        loss = self.loss(logits, torch.as_tensor(self.y[idx]))
        if mu > 0:
            flat = torch.cat([p.reshape(-1) for p in net.parameters()])
            loss = loss + proximal_term(flat, anchor, mu)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def _report(self, global_params: np.ndarray, round_: int, res: ClientResult, variances: list[float], step: int) -> np.ndarray:
        """What the client sends after local training: the shared coordinates only (the local
        ones are kept), released privately if ``[privacy]`` asks; then PQFL's personal fine-tuning."""
        trained = self.model.get_flat()
        self.personal.keep(trained)
        split = self.personal.split
        shared = split.shared(trained)
        if self.release is not None and self.privacy is not None:
            anchor = split.shared(global_params)
            rel = self.release.release(shared - anchor, round_)
            shared = anchor + rel.update
            res.cost = res.cost + rel.cost
            res.job_ids.extend(rel.job_ids)
            res.extra.update({"dp_noise_std": self.privacy.noise_std, "dp_quantum_std": rel.quantum_std,
                              "dp_gaussian_std": rel.gaussian_std, "dp_shots": float(getattr(self.release, "shots", 0))})
        if self.personal.method == "pqfl":
            self.personal.adapt(self, global_params, round_, res, step, variances)
        return shared

    def evaluate_round(self, global_params: np.ndarray, round_: int) -> ClientEval:
        """Score the global model (and the personalized one) on this client's test rows."""
        return evaluate_client(self, global_params, round_)

    def state(self) -> dict:
        """What the client carries from one round to the next (optimizer moments, random and shot
        states, a budget stop), for checkpoints and for Flower sites that train in a new process."""
        out = {
            "optimizer": self.optimizer.state_dict(),
            "rng": self.evaluator.rng.bit_generator.state,
            "shots": self.evaluator.shot_state(),
            "stopped": self.stopped,
            "personal": self.personal.state(),
        }
        if self.scheduler is not None:
            out["lr_schedule"] = self.scheduler.state_dict()
        return out

    def load_state(self, saved: dict) -> None:
        """Continue from :meth:`state`."""
        self.optimizer.load_state_dict(saved["optimizer"])
        self.evaluator.rng.bit_generator.state = saved["rng"]
        self.evaluator.restore_shot_state(saved.get("shots"))
        self.stopped = saved["stopped"]
        self.personal.load_state(saved.get("personal"))
        if self.scheduler is not None and saved.get("lr_schedule") is not None:
            self.scheduler.load_state_dict(saved["lr_schedule"])


def _adaptive_shots(job: JobSpec, spec: ClientSpec, device: Device, observables, shots: int) -> AdaptiveShots | None:  # noqa: ANN001
    """The client's iCANS-style shot policy, when ``training.adaptive_shots`` is on and it samples."""
    t = job.training
    if not (t.adaptive_shots and shots):
        return None
    try:
        return AdaptiveShots(
            shots,
            learning_rate=job.client_setting(spec, "learning_rate"),
            lipschitz=max(float(np.sum(np.abs(o.coeffs))) for o in observables),
            min_shots=t.min_shots,
            max_shots=t.max_shots or device.profile.limits.max_shots,
        )
    except ConfigError as err:
        raise ConfigError(f"client {spec.name}: {err}") from err

