"""Client-level differential privacy of the updates a client sends: clipping, noise, accounting.

Each round a client's update ``u = params - global`` (its shared coordinates) is clipped to L2
norm ``clip_norm`` = C and released with noise, so that any two local datasets of that client
give report distributions within (epsilon, delta): a *local*, client-level guarantee that holds
against the server and anyone who sees a report, whatever the aggregator does afterwards
(post-processing). Two clipped updates differ by at most 2C (the sensitivity).

Mechanisms (``[privacy] mechanism``; assumptions and proofs in docs/privacy.md):

* ``gaussian``: qflhw adds N(0, (z * 2C)^2) to every coordinate; z comes from Opacus's RDP
  accountant (Mironov, arXiv:1702.07476; conversion of Balle et al., arXiv:1905.09982) over the
  rounds the client takes part in. Proven (epsilon, delta)-DP.
* ``shot-noise``: the clipped update is *measured* on the client's device: coordinate i is encoded
  as RY(theta_i)|0> with cos(theta_i) = u_i / (headroom * C) and estimated from ``shots`` shots. The
  shot noise of that estimate has a variance floor (1 - m_max^2) / shots, m_max the largest
  |<Z>| the device can show for an encoded coordinate; that floor is credited as Gaussian noise,
  and qflhw adds Gaussian noise for the rest. A heuristic: it assumes the central-limit
  approximation and a device whose noise is its calibration's readout matrix plus incoherent
  gate errors no larger than 1 - ESP.
* ``depolarizing``: the same measured release, each shot passed through a depolarizing channel
  of strength p (randomized response on the outcome: with probability p it is replaced by a fair
  coin). Pure epsilon-DP, device-independent: per shot and coordinate
  ln(1 + 2 (1 - p) eta_i / p), eta_i the trace distance of the two encoded states, summed
  over coordinates, shots and rounds (basic composition).

Client selection is public in qflhw (the server chooses, the metrics record it), so privacy
amplification by sampling does not apply: each client's epsilon composes over the rounds it
takes part in. The accountant functions accept a sampling rate for the secret-sampling case.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qflhw._util import stable_seed
from qflhw.config.spec import PrivacySpec
from qflhw.devices.base import Batch, BatchItem, Device, JobKey
from qflhw.errors import ConfigError, MissingExtra
from qflhw.execution.budget import Cost, Ledger, job_cost
from qflhw.execution.evaluator import Runner

MAX_NOISE_MULTIPLIER = 1e4  # beyond this the update is pure noise; a spec asking for more is refused


def _opacus():  # noqa: ANN202
    try:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
    except ImportError as err:
        raise MissingExtra("[privacy] needs Opacus's accountant: pip install 'qflhw[privacy]'") from err
    return RDPAccountant, get_noise_multiplier


def clip(update: np.ndarray, clip_norm: float) -> np.ndarray:
    """``update`` scaled down to L2 norm ``clip_norm`` if it is longer; unchanged otherwise."""
    update = np.asarray(update, dtype=np.float64)
    norm = float(np.linalg.norm(update))
    return update * (clip_norm / norm) if norm > clip_norm else update.copy()


def gaussian_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of ``steps`` compositions of the (Poisson-subsampled) Gaussian mechanism with noise
    std = ``noise_multiplier`` x sensitivity, at ``delta`` (Opacus's RDP accountant)."""
    if steps <= 0:
        return 0.0
    RDPAccountant, _ = _opacus()
    acc = RDPAccountant()
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with warnings.catch_warnings():  # "Optimal order is the largest alpha": harmless at large epsilon
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta))


def gaussian_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier whose ``steps``-fold composition stays within (epsilon, delta)."""
    _, get_noise_multiplier = _opacus()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            z = float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                           steps=steps, accountant="rdp", epsilon_tolerance=0.005))
        except ValueError as err:
            raise ConfigError(f"privacy.epsilon = {epsilon} cannot be met at delta = {delta} over {steps} rounds ({err}); "
                              "raise epsilon or delta, or use fewer rounds") from err
    if z > MAX_NOISE_MULTIPLIER:
        raise ConfigError(f"privacy.epsilon = {epsilon} needs noise multiplier {z:.3g} (> {MAX_NOISE_MULTIPLIER:g}) over {steps} rounds; "
                          "raise epsilon or use fewer rounds")
    return z


def depolarizing_round_epsilon(p: float, shots: int, dimension: int, headroom: float) -> float:
    """Pure epsilon of one measured release of a ``dimension``-long clipped update with ``shots``
    shots per coordinate through a depolarizing channel of strength ``p`` (docs/privacy.md):

    S * d * ln(1 + 2 (1 - p) / p * eta), eta = min(1/headroom, 1/sqrt(d (headroom^2 - 1)))

    the worst case of sum_i ln(1 + 2 (1-p)/p * eta_i) over neighbouring updates, by concavity.
    """
    eta = min(1.0 / headroom, 1.0 / math.sqrt(dimension * (headroom**2 - 1)))
    return shots * dimension * math.log1p(2 * (1 - p) / p * eta)


def depolarizing_strength(epsilon_round: float, shots: int, dimension: int, headroom: float) -> float:
    """The weakest channel p whose release costs at most ``epsilon_round`` (inverse of the above)."""
    eta = min(1.0 / headroom, 1.0 / math.sqrt(dimension * (headroom**2 - 1)))
    b = epsilon_round / (shots * dimension)  # per shot and coordinate: ln(1 + x), x = 2 (1 - p) / p * eta
    t = (b + math.log(-math.expm1(-b))) - math.log(2 * eta)  # ln(x / (2 eta)), without overflow at large b
    return max(1.0 / (1.0 + math.exp(t)) if t < 700 else math.exp(-t), 1e-300)


def depolarizing_shots(epsilon_round: float, dimension: int, headroom: float, most: int = 4096) -> int:
    """Shots per coordinate that give the release the smallest variance at ``epsilon_round``.

    The estimate's variance goes as 1 / (S (1 - p_S)^2), p_S the channel that S shots allow: at a
    tight budget one shot is best (p grows with S), at a loose one many (p is near 0 anyway).
    """
    candidates = [2**k for k in range(int(math.log2(most)) + 1)]
    return min(candidates, key=lambda s: 1.0 / (s * (1.0 - depolarizing_strength(epsilon_round, s, dimension, headroom)) ** 2))


@dataclass(frozen=True)
class PrivacyPlan:
    """One client's privacy settings for a run: mechanism, noise and what each round costs."""

    client: str
    mechanism: str
    epsilon: float  # target over the run
    delta: float
    clip_norm: float
    participations: int  # rounds this client takes part in
    dimension: int  # coordinates released per round
    headroom: float
    gaussian_allowed: bool
    noise_multiplier: float = 0.0  # gaussian/shot-noise: total noise std / sensitivity
    shots: int | None = None  # measured release: shots per coordinate (shot-noise: None = chosen on the device)
    depolarizing: float = 0.0  # depolarizing: channel strength p

    @property
    def sensitivity(self) -> float:
        """Largest L2 distance of two clipped updates (replace-one-dataset neighbours)."""
        return 2.0 * self.clip_norm

    @property
    def noise_std(self) -> float:
        """Gaussian mechanisms: total noise std per coordinate the guarantee needs."""
        return self.noise_multiplier * self.sensitivity

    @property
    def pure(self) -> bool:
        return self.mechanism == "depolarizing"

    def epsilon_after(self, rounds: int) -> float:
        """This client's epsilon after taking part in ``rounds`` rounds."""
        if self.pure:
            return rounds * depolarizing_round_epsilon(self.depolarizing, self.shots or 1, self.dimension, self.headroom)
        return gaussian_epsilon(self.noise_multiplier, 1.0, rounds, self.delta)

    @property
    def epsilon_round(self) -> float:
        return self.epsilon_after(1)

    @property
    def guarantee(self) -> str:
        """'proven' for the Gaussian and depolarizing mechanisms; 'heuristic' when shot noise is credited."""
        return "heuristic" if self.mechanism == "shot-noise" else "proven"

    def describe(self) -> dict:
        return {
            "mechanism": self.mechanism, "guarantee": self.guarantee, "epsilon_target": self.epsilon,
            "delta": 0.0 if self.pure else self.delta, "clip_norm": self.clip_norm, "sensitivity": self.sensitivity,
            "participations": self.participations, "dimension": self.dimension,
            "noise_multiplier": self.noise_multiplier, "noise_std": self.noise_std, "shots": self.shots,
            "depolarizing": self.depolarizing, "epsilon_round": self.epsilon_round,
            "epsilon_total": self.epsilon_after(self.participations),
        }


def make_plan(spec: PrivacySpec, *, client: str, participations: int, dimension: int) -> PrivacyPlan | None:
    """The plan of one client, or None without ``privacy.epsilon``; refuses settings that cannot
    meet epsilon (a ConfigError naming the field and the fix)."""
    if not spec.enabled:
        return None
    assert spec.epsilon is not None
    eps, rounds = spec.epsilon, max(participations, 1)
    base = dict(client=client, mechanism=spec.mechanism, epsilon=eps, delta=spec.delta, clip_norm=spec.clip_norm,
                participations=participations, dimension=dimension, headroom=spec.headroom, gaussian_allowed=spec.gaussian)
    if spec.mechanism == "depolarizing":
        shots = spec.shots or (1 if spec.depolarizing is not None else depolarizing_shots(eps / rounds, dimension, spec.headroom))
        if spec.depolarizing is not None:
            p = spec.depolarizing
            spent = rounds * depolarizing_round_epsilon(p, shots, dimension, spec.headroom)
            if spent > eps * (1 + 1e-9):
                need = depolarizing_strength(eps / rounds, shots, dimension, spec.headroom)
                raise ConfigError(
                    f"client {client}: privacy.depolarizing = {p} with {shots} shot(s) per coordinate over {rounds} rounds "
                    f"gives epsilon {spent:.3g} > privacy.epsilon = {eps}; raise it to >= {need:.6f}, use fewer shots or "
                    "rounds, or leave privacy.depolarizing unset to tune it"
                )
        else:
            p = depolarizing_strength(eps / rounds, shots, dimension, spec.headroom)
        return PrivacyPlan(**base, shots=shots, depolarizing=p)  # type: ignore[arg-type]
    if spec.noise_multiplier is not None:
        z = spec.noise_multiplier
        spent = gaussian_epsilon(z, 1.0, rounds, spec.delta)
        if spent > eps * 1.001:
            need = gaussian_noise_multiplier(eps, spec.delta, 1.0, rounds)
            raise ConfigError(
                f"client {client}: privacy.noise_multiplier = {z} over {rounds} rounds gives epsilon {spent:.3g} > "
                f"privacy.epsilon = {eps} at delta {spec.delta}; raise it to >= {need:.4g} or leave it unset"
            )
    else:
        z = gaussian_noise_multiplier(eps, spec.delta, 1.0, rounds)
    return PrivacyPlan(**base, noise_multiplier=z, shots=spec.shots)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ releasing an update
@dataclass
class Release:
    """What one private release did: the noisy update and what it cost."""

    update: np.ndarray
    cost: Cost = field(default_factory=Cost)
    job_ids: list[str] = field(default_factory=list)
    quantum_std: float = 0.0  # credited std per coordinate from the measurement
    gaussian_std: float = 0.0  # classical Gaussian std per coordinate qflhw added


class GaussianRelease:
    """``mechanism = "gaussian"``: clip, then add N(0, noise_std^2) per coordinate."""

    def __init__(self, plan: PrivacyPlan, *, seed: int):
        self.plan, self.seed = plan, seed

    def gaussian(self, n: int, std: float, round_: int) -> np.ndarray:
        rng = np.random.default_rng(stable_seed(self.seed, "dp-gaussian", round_))
        return rng.normal(0.0, std, size=n) if std > 0 else np.zeros(n)

    def release(self, update: np.ndarray, round_: int) -> Release:
        u = clip(update, self.plan.clip_norm)
        std = self.plan.noise_std
        return Release(u + self.gaussian(len(u), std, round_), gaussian_std=std)


class MeasuredRelease(GaussianRelease):
    """``shot-noise`` / ``depolarizing``: the clipped update measured on the client's device.

    Coordinate i is the one-qubit state RY(theta_i)|0> with <Z> = cos(theta_i) = u_i / (headroom C),
    estimated with ``shots`` shots in one provider job (``JobKey`` phase ``p``). The estimate is
    unbiased with the calibration's readout matrix of the measured qubit, <Z>_read = gain <Z> + offset.
    """

    def __init__(self, plan: PrivacyPlan, device: Device, *, client: str, run_id: str, ledger: Ledger,
                 runner: Runner, seed: int):
        super().__init__(plan, seed=seed)
        from qiskit.circuit import Parameter, QuantumCircuit
        from qiskit.quantum_info import SparsePauliOp

        self.device, self.client, self.run_id, self.ledger, self.runner = device, client, run_id, ledger, runner
        self.theta = Parameter("theta")
        qc = QuantumCircuit(1, name="dp-release")
        qc.ry(self.theta, 0)
        self.transpiled = device.transpile(qc)
        self.observable = SparsePauliOp("Z")
        qubit = device.calibration.qubits[self.transpiled.final_physical[0]]
        a, b = qubit.prob_meas1_prep0, qubit.prob_meas0_prep1
        self.gain, self.offset = 1.0 - a - b, b - a
        # the largest |<Z>| an encoded coordinate can show: the headroom, widened by up to twice the
        # circuit's error probability (1 - ESP), then through the readout matrix
        z_max = min(1.0, 1.0 / plan.headroom + 2.0 * (1.0 - self.transpiled.esp))
        self.m_max = min(1.0, abs(self.gain) * z_max + abs(self.offset))
        self.shots = plan.shots or self._chosen_shots()
        quantum_var = self.credited_variance(self.shots) if plan.mechanism == "shot-noise" else 0.0
        self.gaussian_std = math.sqrt(max(plan.noise_std**2 - quantum_var, 0.0)) if plan.mechanism == "shot-noise" else 0.0
        self.quantum_std = math.sqrt(quantum_var)
        if self.gaussian_std > 0 and not plan.gaussian_allowed:
            raise ConfigError(
                f"client {client}: the shot noise of {self.shots} shot(s) per coordinate gives std {self.quantum_std:.3g}, below "
                f"the {plan.noise_std:.3g} that privacy.epsilon = {plan.epsilon} needs, and privacy.gaussian = false; "
                "allow Gaussian noise on top, raise epsilon or use fewer rounds"
            )

    @property
    def scale(self) -> float:
        """From the read-out <Z> to the update's units."""
        return self.plan.headroom * self.plan.clip_norm / self.gain

    def credited_variance(self, shots: int) -> float:
        """Shot-noise variance floor of one released coordinate, in the update's units."""
        return self.scale**2 * (1.0 - self.m_max**2) / shots

    def _chosen_shots(self) -> int:
        """Shot noise: the most shots whose noise alone suffices, up to the device's limit (else 1,
        and Gaussian noise on top); depolarizing: the plan's (see :func:`depolarizing_shots`)."""
        if self.plan.mechanism != "shot-noise":
            return 1
        need = self.plan.noise_std**2
        most = self.device.profile.limits.max_shots
        return min(most, max(1, int(self.scale**2 * (1.0 - self.m_max**2) / need))) if need > 0 else most

    def estimate_cost(self) -> Cost:
        return job_cost(self.device.profile, self.plan.dimension, self.shots)

    def release(self, update: np.ndarray, round_: int) -> Release:
        plan = self.plan
        u = clip(update, plan.clip_norm)
        cos = np.clip(u / (plan.headroom * plan.clip_norm), -1.0, 1.0)
        bindings = np.arccos(cos).reshape(-1, 1)
        item = BatchItem(self.transpiled, (self.theta,), bindings, (self.observable,))
        batch = Batch((item,), key=JobKey(self.run_id, round_, self.client, 0, "p"))
        cost = job_cost(self.device.profile, batch.num_circuits, self.shots)
        result = self.runner(self.device, batch, self.shots, lambda: self.ledger.charge(self.client, round_, cost))
        read = np.asarray(result.items[0].values, dtype=np.float64)[:, 0]
        if plan.mechanism == "depolarizing":
            read = self._depolarize(read, round_) / (1.0 - plan.depolarizing)
        noisy = (read - self.offset) * self.scale + self.gaussian(len(u), self.gaussian_std, round_)
        return Release(noisy, cost, [result.job_id], self.quantum_std, self.gaussian_std)

    def _depolarize(self, read: np.ndarray, round_: int) -> np.ndarray:
        """Randomized response on every shot: the outcome statistics of measuring D_p(rho) in Z."""
        s, p = self.shots, self.plan.depolarizing
        zeros = np.rint(s * (1.0 + read) / 2.0).astype(np.int64)  # shots that read 0 (<Z> = +1)
        rng = np.random.default_rng(stable_seed(self.seed, "dp-depolarize", round_))
        replaced0 = rng.binomial(zeros, p)  # outcomes 0 replaced by a fair coin
        replaced1 = rng.binomial(s - zeros, p)
        coins0 = rng.binomial(replaced0 + replaced1, 0.5)
        zeros_after = zeros - replaced0 + coins0
        return (2.0 * zeros_after - s) / s


ReleaseFn = Callable[[np.ndarray, int], Release]


def make_release(plan: PrivacyPlan | None, device: Device, *, client: str, run_id: str, ledger: Ledger,
                 runner: Runner, seed: int) -> GaussianRelease | None:
    """The release a client uses (None without privacy)."""
    if plan is None:
        return None
    if plan.mechanism == "gaussian":
        return GaussianRelease(plan, seed=seed)
    return MeasuredRelease(plan, device, client=client, run_id=run_id, ledger=ledger, runner=runner, seed=seed)
