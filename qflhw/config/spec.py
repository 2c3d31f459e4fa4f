"""Job specs: the TOML file that describes one QFL experiment, validated before any work starts.

Unknown keys are errors (a misspelled option must not silently fall back to a default), and
every error is one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qflhw.errors import ConfigError, field_error

# Vocabularies: declared once here, and used by every module that needs the list of choices.
Ansatz = Literal["rot-crx", "hardware-efficient", "reuploading"]
Encoding = Literal["rx", "ry"]
Partition = Literal["iid", "dirichlet", "label-shards"]
Optimizer = Literal["adam", "sgd"]
GradientMethod = Literal["parameter-shift", "spsa"]
ShotAllocation = Literal["uniform", "variance-weighted"]
MitigationMethod = Literal["none", "zne", "rem", "zne+rem"]
Extrapolation = Literal["richardson", "linear", "exponential"]
Folding = Literal["two-qubit", "global"]
Loss = Literal["cross-entropy", "mse"]
AggregationMethod = Literal["fedavg", "noise-aware", "inverse-variance", "median", "trimmed-mean", "sporadic", "spoqfl"]
SporadicMode = Literal["skip", "scale"]
ModelKind = Literal["quantum", "classical"]
PersonalizationMethod = Literal["none", "local-head", "local-layers", "pqfl"]
PrivacyMechanism = Literal["gaussian", "shot-noise", "depolarizing"]
LRScheduleKind = Literal["constant", "sign-switch"]
LRTrigger = Literal["steps", "grad-norm"]
SchedulingMethod = Literal["all", "random", "greedy", "qaoa"]

ANSATZE: tuple[str, ...] = get_args(Ansatz)
PARTITIONS: tuple[str, ...] = get_args(Partition)
SHOT_ALLOCATIONS: tuple[str, ...] = get_args(ShotAllocation)
EXTRAPOLATIONS: tuple[str, ...] = get_args(Extrapolation)
FOLDINGS: tuple[str, ...] = get_args(Folding)
AGGREGATION_METHODS: tuple[str, ...] = get_args(AggregationMethod)
LOSSES: tuple[str, ...] = get_args(Loss)
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
PERSONALIZATION_METHODS: tuple[str, ...] = get_args(PersonalizationMethod)
PRIVACY_MECHANISMS: tuple[str, ...] = get_args(PrivacyMechanism)
LR_SCHEDULE_KINDS: tuple[str, ...] = get_args(LRScheduleKind)
SCHEDULING_METHODS: tuple[str, ...] = get_args(SchedulingMethod)
#: Characters that make a calibration reference a glob (``ibm_torino/2025-*``, ``drift/*.json``).
GLOB_CHARS = "*?["
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer")

#: Names that end up in idempotency keys, file names and job tags: no ``/``, no spaces.
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"
#: ``package.module:name``: a user's own circuit, head or loss, imported when the spec is assembled.
ENTRY_POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    dataset: str = Field(default="digits", description=f"{' | '.join(BUILTIN_DATASETS)} | path to .csv/.npz")
    classes: list[int] | list[str] | None = Field(
        default=None, description="keep only these labels or class names (re-labelled 0..k-1 in this order)"
    )
    partition: Partition = "iid"
    alpha: float = Field(default=0.5, gt=0, description="Dirichlet concentration (partition = dirichlet)")
    labels_per_client: int = Field(default=1, ge=1, description="for partition = label-shards")
    test_fraction: float = Field(default=0.2, ge=0, lt=1, description="per-client test split")
    global_test_fraction: float = Field(default=0.2, gt=0, lt=1, description="held out before partitioning")
    max_train_per_client: int | None = Field(default=None, gt=0, description="cap on local training rows")
    positive: list[int] | None = Field(
        default=None,
        description="one-vs-rest: these labels (after `classes`) become 1, e.g. the anomalies, every other 0; "
        "partitions still follow the original labels, so clients can differ in which normal classes they hold",
    )
    positive_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="with `positive`: keep a seeded subset of positive rows so they make this share"
    )

    @model_validator(mode="after")
    def _one_vs_rest(self) -> DataSpec:
        if self.positive_fraction is not None and not self.positive:
            raise ValueError("data.positive_fraction needs data.positive (the labels that count as positive)")
        if self.positive is not None and not self.positive:
            raise ValueError("data.positive must list at least one label, e.g. [8]")
        return self


class ModelSpec(_Strict):
    """``[model]``: a built-in ansatz, or your own circuit (and head and loss) by entry point."""

    qubits: int = Field(default=4, ge=1, le=32, description="width of a built-in ansatz; inputs of a PennyLane circuit")
    layers: int = Field(default=2, ge=1, le=50)
    ansatz: Ansatz = "rot-crx"
    encoding: Encoding = "ry"
    observables: list[str] = Field(default_factory=list, description="Pauli labels; default Z on each qubit")
    kind: ModelKind = Field(
        default="quantum",
        description="quantum: circuit + linear head on each client's device; classical: a small torch MLP with about as "
        "many trainable parameters, trained by the same federation (the classical-FL baseline; see qflhw.training.classical)",
    )
    hidden: int | None = Field(
        default=None, ge=1, description="classical: hidden units; default the count whose parameter total is closest to the quantum model's"
    )
    circuit: str | None = Field(
        default=None,
        description="'package.module:function' returning a qiskit QuantumCircuit (inputs x[i], weights w[j]) or "
        "(PennyLane qfunc or QNode, weight shapes); replaces ansatz and encoding (see qflhw.circuits.custom)",
    )
    head: str | None = Field(
        default=None, description="'package.module:factory': factory(n_observables, n_classes) -> torch.nn.Module; default linear"
    )
    loss: str = Field(default="cross-entropy", description="cross-entropy | mse | 'package.module:function' (outputs, labels) -> scalar")

    @field_validator("circuit", "head")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not re.match(ENTRY_POINT_PATTERN, value):
            raise ValueError(f"{value!r} is not an entry point; write 'package.module:function'")
        return value

    @field_validator("loss")
    @classmethod
    def _loss(cls, value: str) -> str:
        if value not in LOSSES and not re.match(ENTRY_POINT_PATTERN, value):
            raise ValueError(f"{value!r} is neither {' nor '.join(LOSSES)} nor an entry point 'package.module:function'")
        return value

    @model_validator(mode="after")
    def _own_circuit_alone(self) -> ModelSpec:
        ignored = sorted({"ansatz", "encoding"} & self.model_fields_set)
        if self.circuit is not None and ignored:
            raise ValueError(f"model.{ignored[0]} has no effect with model.circuit = {self.circuit!r}; remove it")
        if self.kind == "classical" and (self.circuit is not None or self.head is not None):
            raise ValueError("model.kind = 'classical' trains a torch MLP: remove model.circuit and model.head, or use kind = 'quantum'")
        return self


class LRScheduleSpec(_Strict):
    """``[training.lr_schedule]``: how the learning rate changes over a client's optimizer steps
    (see qflhw.training.lr_schedule). ``constant`` (the default) leaves the optimizer alone."""

    kind: LRScheduleKind = Field(
        default="constant", description="constant | sign-switch: positive phases alternate with negative (ascent) phases"
    )
    positive_steps: int = Field(default=10, ge=1, description="sign-switch: optimizer steps of each positive phase")
    negative_steps: int = Field(default=2, ge=1, description="sign-switch: optimizer steps of each negative phase")
    negative_scale: float = Field(
        default=0.5, gt=0, description="sign-switch: a negative phase steps with -negative_scale x the learning rate"
    )
    trigger: LRTrigger = Field(
        default="steps",
        description="steps: switch after positive_steps; grad-norm: after at least positive_steps, switch only at a step "
        "whose gradient norm is below grad_norm_below",
    )
    grad_norm_below: float = Field(default=1e-3, gt=0, description="trigger = grad-norm: the gradient-norm threshold")


class TrainingSpec(_Strict):
    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    optimizer: Optimizer = "adam"
    gradient: GradientMethod = "parameter-shift"
    spsa_epsilon: float = Field(default=0.1, gt=0)
    shots: int = Field(default=1000, ge=0, description="shots per circuit; 0 = exact expectations (fake only)")
    proximal_mu: float = Field(default=0.0, ge=0, description="FedProx proximal weight; 0 = plain local training")
    shot_allocation: ShotAllocation = Field(
        default="uniform",
        description="split of a step's shots over its circuits (e.g. ZNE scale factors); variance-weighted puts "
        "more where |weight| x std is larger, same total (see qflhw.execution.shots)",
    )
    adaptive_shots: bool = Field(
        default=False, description="iCANS-style shots per step from gradient variance; `shots` is the first step's"
    )
    min_shots: int = Field(default=16, ge=1, description="adaptive_shots: fewest shots per circuit")
    max_shots: int | None = Field(default=None, ge=1, description="adaptive_shots: most shots per circuit; default the device limit")
    lr_schedule: LRScheduleSpec = Field(default_factory=LRScheduleSpec, description="[training.lr_schedule]; default constant")

    @model_validator(mode="after")
    def _shot_range(self) -> TrainingSpec:
        if self.max_shots is not None and self.min_shots > self.max_shots:
            raise ValueError(f"training.min_shots ({self.min_shots}) is above training.max_shots ({self.max_shots}); swap or fix them")
        return self


def check_zne(scale_factors: Sequence[float], extrapolation: str, folding: str) -> None:
    """Raise ConfigError naming the field and the fix when a ZNE setting cannot work.

    The rules of ``[mitigation]`` for ZNE; :class:`MitigationSpec` and the ZNE technique built
    from Python both apply them.
    """
    sf = list(scale_factors)
    if extrapolation not in EXTRAPOLATIONS:
        raise ConfigError(f"mitigation.extrapolation must be one of {', '.join(EXTRAPOLATIONS)}, got {extrapolation!r}")
    if folding not in FOLDINGS:
        raise ConfigError(f"mitigation.folding must be one of {', '.join(FOLDINGS)}, got {folding!r}")
    if len(sf) < 2:
        raise ConfigError(f"mitigation.scale_factors needs at least 2 values to extrapolate, got {sf}; e.g. [1, 3, 5]")
    if any(not math.isfinite(s) or s < 1 for s in sf):
        raise ConfigError(f"mitigation.scale_factors must all be >= 1 (1 = the circuit as compiled), got {sf}")
    if len(set(sf)) != len(sf):
        raise ConfigError(f"mitigation.scale_factors must be distinct, got {sf}")
    if extrapolation == "exponential" and len(sf) < 3:
        raise ConfigError(
            f"mitigation.extrapolation = 'exponential' fits 3 parameters and needs at least 3 scale factors, "
            f"got {sf}; add one or use 'linear'"
        )


class MitigationSpec(_Strict):
    """``[mitigation]``: error mitigation with Mitiq (see qflhw.execution.mitigation)."""

    method: MitigationMethod = "none"
    scale_factors: list[float] = Field(default_factory=lambda: [1.0, 3.0, 5.0], description="ZNE noise scale factors, >= 1")
    extrapolation: Extrapolation = "richardson"
    folding: Folding = Field(default="two-qubit", description="fold two-qubit gates only, or the whole circuit")
    seed: int = Field(default=0, description="seed of Mitiq's random choice of gates to fold (non-odd scale factors)")

    @model_validator(mode="after")
    def _zne_settings(self) -> MitigationSpec:
        if "zne" in self.method:
            check_zne(self.scale_factors, self.extrapolation, self.folding)
        return self


class AggregationSpec(_Strict):
    method: AggregationMethod = "fedavg"
    trim_fraction: float = Field(default=0.2, ge=0, lt=0.5)
    threshold: float = Field(default=0.5, gt=0, lt=1, description="sporadic: noise level (1 - ESP) above which a client backs off")
    mode: SporadicMode = Field(default="scale", description="sporadic: drop a noisy client's update or damp it")
    gamma: float = Field(
        default=1.0, gt=0, description="spoqfl: suppression exp(-gamma x noise estimate) on a client's update each round"
    )
    skip_below: float = Field(default=0.3, ge=0, lt=1, description="spoqfl: a client whose suppression is below this sits the round out")
    min_clients: int = Field(default=1, ge=1, description="fewest reporting clients for a round to count")


class EvaluationSpec(_Strict):
    """``[evaluation]``: every round, each selected client scores the new global model (and its
    personalized one) on its own test rows (see qflhw.training.local_eval)."""

    per_client: bool = Field(default=True, description="score the global model on each client's own test split every round")
    on_device: bool = Field(
        default=False,
        description="true: on the client's own device with shots, charged and budgeted like training, one job per "
        "evaluation; false: exact noiseless expectations, nothing charged (training numbers unchanged either way)",
    )
    shots: int | None = Field(default=None, ge=1, description="on_device: shots per circuit; default the client's training shots")


class PersonalizationSpec(_Strict):
    """``[personalization]``: parameters that stay at the client, never sent or averaged
    (see qflhw.training.personalization)."""

    method: PersonalizationMethod = Field(
        default="none",
        description="none | local-head (the classical head stays local) | local-layers (the head and the last "
        "`local_layers` ansatz layers) | pqfl (a personal copy of the whole model, fine-tuned on the client's device "
        "with a proximal pull towards the global model, arXiv:2511.07471)",
    )
    local_layers: int = Field(default=1, ge=1, description="local-layers: how many of the last ansatz layers stay local, with the head")
    adapt_steps: int = Field(default=5, ge=1, description="pqfl: fine-tuning steps (one device job each) after each global model arrives")
    learning_rate: float | None = Field(default=None, gt=0, description="pqfl: fine-tuning learning rate; default training.learning_rate")
    lam: float = Field(default=0.1, ge=0, description="pqfl: weight of the proximal term lam/2 * ||w_personal - w_global||^2")


class PrivacySpec(_Strict):
    """``[privacy]``: client-level differential privacy of every update a client sends
    (see qflhw.training.privacy and docs/privacy.md)."""

    epsilon: float | None = Field(default=None, gt=0, description="each client's epsilon over the whole run; none = no DP")
    delta: float = Field(default=1e-5, ge=0, lt=1, description="delta of (epsilon, delta)-DP (depolarizing is pure: delta 0)")
    clip_norm: float = Field(default=1.0, gt=0, description="L2 norm every update (client params - global params) is clipped to")
    mechanism: PrivacyMechanism = Field(
        default="gaussian",
        description="gaussian: classical noise added by qflhw; shot-noise: the update is released by measuring it on "
        "the client's device, shot noise credited, Gaussian on top if needed; depolarizing: the same release through a "
        "depolarizing channel of tuned strength (pure epsilon-DP)",
    )
    noise_multiplier: float | None = Field(
        default=None, gt=0, description="gaussian/shot-noise: noise std / sensitivity, fixed; default the smallest that meets epsilon"
    )
    shots: int | None = Field(default=None, ge=1, description="measured release: shots per coordinate; default chosen (docs/privacy.md)")
    depolarizing: float | None = Field(default=None, gt=0, lt=1, description="depolarizing: strength p, fixed; default tuned to epsilon")
    headroom: float = Field(default=2.0, gt=1, description="measured release: an encoded coordinate has |<Z>| <= 1/headroom")
    gaussian: bool = Field(default=True, description="allow classical Gaussian noise on top when the quantum noise is not enough")

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None

    @model_validator(mode="after")
    def _settings(self) -> PrivacySpec:
        if self.enabled and self.mechanism != "depolarizing" and self.delta <= 0:
            raise ValueError(f"privacy.delta must be > 0 for mechanism {self.mechanism!r} (a Gaussian mechanism); e.g. 1e-5")
        if self.mechanism == "gaussian" and not self.gaussian:
            raise ValueError("privacy.gaussian = false leaves mechanism 'gaussian' no noise; use 'shot-noise' or 'depolarizing'")
        if self.depolarizing is not None and self.mechanism != "depolarizing":
            raise ValueError("privacy.depolarizing is the strength of mechanism 'depolarizing'; remove it or set that mechanism")
        if self.noise_multiplier is not None and self.mechanism == "depolarizing":
            raise ValueError("privacy.noise_multiplier is for the Gaussian mechanisms; mechanism 'depolarizing' tunes privacy.depolarizing")
        return self


class BudgetSpec(_Strict):
    max_usd: float = Field(default=0.0, ge=0, description="hard cap on spend for the whole run; 0 = free devices only")
    shots_per_round: int | None = Field(default=None, gt=0, description="per client per round")


class ResilienceSpec(_Strict):
    retries: int = Field(default=5, ge=0, description="retries of a transient provider error per job")
    backoff_initial_s: float = Field(default=1.0, ge=0, description="first backoff wait; doubles up to the max")
    backoff_max_s: float = Field(default=60.0, ge=0)
    job_timeout_s: float | None = Field(
        default=1800.0, gt=0,
        description="longest wait for one job, then the wait is retried (retries times); after the last one the "
        "job is cancelled and recorded; None: wait forever",
    )


class DriftSpec(_Strict):
    """``[clients.drift]``: a seeded Ornstein-Uhlenbeck drift of a client's calibration around its
    snapshot, one step per round (see qflhw.calibration.drift)."""

    sigma: float = Field(gt=0, le=3, description="stationary std of log(figure / snapshot figure): the relative spread")
    tau_rounds: float = Field(default=5.0, gt=0, description="correlation time in rounds: lag-1 correlation exp(-1/tau)")
    common: float = Field(
        default=0.0, ge=0, le=1, description="share of the variance common to all figures of the device (0: each drifts alone)"
    )
    recalibrate_every: int = Field(default=0, ge=0, description="rounds between recalibrations back to the snapshot; 0 = never")
    gates: bool = Field(default=True, description="drift every gate error")
    readout: bool = Field(default=True, description="drift both readout error probabilities of every qubit")
    coherence: bool = Field(default=True, description="drift T1 and T2 of every qubit (T2 stays <= 2 T1)")
    seed: int | None = Field(default=None, description="seed of the drift; default from the job seed and client name")


class TwinSpec(_Strict):
    """``[twin]``: what a fake device's simulation models beyond Aer's device noise model.

    In a device profile (``backends/<name>.toml``) or per client in a spec (a client's table
    overrides the keys it sets). Real devices ignore it. The defaults reproduce qiskit-aer's
    ``AerSimulator.from_backend`` on the ALAP-scheduled circuit, with the calibrated asymmetric
    readout; each extra term is off by default (sources in docs/twins.md).
    """

    idle_noise: bool = Field(
        default=True, description="T1/T2 relaxation of every used qubit in its idle windows of the ALAP schedule"
    )
    channel_correction: bool = Field(
        default=False,
        description="where relaxation alone is worse than a gate's calibrated error, relax for the shorter time that "
        "reproduces the calibration (default: Aer's channel, flagged)",
    )
    zz_crosstalk: bool = Field(
        default=False, description="static ZZ between coupled qubits idling together, from the snapshot's zz figures"
    )
    correlated_readout: bool = Field(
        default=False, description="joint two-qubit readout matrices where the snapshot has them (readout_pairs)"
    )
    virtual_rz: bool = Field(
        default=True, description="devices with an r(theta, phi) native (IQM) get virtual rz, as their compilers do"
    )

    def merged(self, override: TwinSpec | None) -> TwinSpec:
        """This table with the keys ``override`` sets explicitly replaced."""
        if override is None:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class ClientSpec(_Strict):
    name: str = Field(min_length=1, pattern=NAME_PATTERN, description="letters, digits, _ . - (it names jobs and files)")
    device: str = Field(description="a profile in backends/ (see `qflhw devices`)")
    calibration: str | list[str] | None = Field(
        default=None,
        description="override the profile's snapshot: <device>/<date> or a .json file; a glob (ibm_torino/2025-*, "
        "drift/ibm_torino/*.json) or a list of them is a series stepped through by round",
    )
    calibration_every: int = Field(default=1, ge=1, description="a calibration series: rounds each snapshot is used")
    drift: DriftSpec | None = Field(default=None, description="[clients.drift]: drift the calibration round by round")
    noise_scale: float = Field(default=1.0, ge=0, description="multiply every error of the calibration; 0 = an ideal (noiseless) twin")
    shots: int | None = Field(default=None, ge=0)
    local_epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    mitigation: MitigationSpec | None = Field(default=None, description="replaces the job's [mitigation] for this client")
    twin: TwinSpec | None = Field(default=None, description="fake devices: overrides the keys of the profile's [twin] it sets")

    @model_validator(mode="after")
    def _calibration_list(self) -> ClientSpec:
        if isinstance(self.calibration, list) and (not self.calibration or not all(self.calibration)):
            raise ValueError(f"clients.{self.name}.calibration: give a non-empty list of snapshot references, e.g. "
                             '["ibm_torino/2025-02-26", "whatif/torino-x2.json"]')
        return self

    @property
    def calibration_refs(self) -> list[str]:
        """The calibration references as a list (empty: the profile's snapshot)."""
        if self.calibration is None:
            return []
        return [self.calibration] if isinstance(self.calibration, str) else list(self.calibration)

    @property
    def calibration_changes(self) -> bool:
        """Whether this client's calibration may change during a run (a series, a glob or a drift)."""
        refs = self.calibration_refs
        return self.drift is not None or len(refs) > 1 or any(ch in r for r in refs for ch in GLOB_CHARS)


class SchedulingSpec(_Strict):
    """``[scheduling]``: each round, sub-channels and transmit powers for the clients' uploads over a
    wireless uplink, chosen to maximize the sum of Shannon rates (see qflhw.federation.scheduling)."""

    method: SchedulingMethod = Field(
        default="all",
        description="all: sub-channels round-robin at full power; random: random sub-channels at full power; greedy: "
        "best-response sub-channel moves + power BCD; qaoa: sub-channel blocks as QUBOs solved by QAOA + power BCD",
    )
    subchannels: int = Field(default=20, ge=1, description="K sub-channels shared by the clients")
    bandwidth_hz: float = Field(default=180e3, gt=0, description="bandwidth of one sub-channel")
    min_distance_m: float = Field(default=1.0, gt=0, description="clients sit at distances uniform in [min, max] from the base station")
    max_distance_m: float = Field(default=1800.0, gt=0)
    rician_k: float = Field(default=3.0, ge=0, description="Rician K-factor (linear), line-of-sight over scattered power")
    path_loss_db_1km: float = Field(default=128.1, description="path loss at 1 km, dB: PL = this + 10 x exponent x log10(d / km)")
    path_loss_exponent: float = Field(default=3.76, gt=0)
    noise_psd_dbm_hz: float = Field(default=-174.0, description="receiver noise power spectral density, dBm/Hz")
    min_power_dbm: float = Field(default=0.0, description="transmit power range of a client")
    max_power_dbm: float = Field(default=24.0)
    payload_bits: int | None = Field(default=None, gt=0, description="bits one upload carries; default 32 per model parameter")
    deadline_s: float = Field(default=0.0, ge=0, description="a client whose upload would take longer sits the round out; 0 = none")
    iterations: int = Field(default=3, ge=1, description="alternations of sub-channel assignment and power control per round")
    power_control: bool = Field(default=True, description="greedy/qaoa: optimize the powers (BCD); false keeps everyone at full power")
    block_clients: int = Field(
        default=2, ge=1, description="qaoa: clients re-assigned together in one QUBO (exact for 2, a second-order approximation above)"
    )
    block_subchannels: int = Field(default=4, ge=2, description="qaoa: sub-channels a block may use; qubits = clients x sub-channels")
    qaoa_reps: int = Field(default=3, ge=1, description="qaoa: QAOA layers p")
    qaoa_shots: int = Field(default=128, ge=1, description="qaoa: samples drawn from the optimized circuit")
    qaoa_maxiter: int = Field(default=100, ge=1, description="qaoa: COBYLA iterations per start")
    qaoa_restarts: int = Field(default=2, ge=1, description="qaoa: COBYLA starts (the first a linear ramp; the best is kept)")
    qaoa_warm_start: bool = Field(
        default=True,
        description="qaoa: later blocks of a round start from the previous block's tuned angles (one start, a third of the iterations)",
    )
    qaoa_device: str | None = Field(
        default=None, description="qaoa: a fake device profile to run QAOA on (e.g. fake_torino); default exact statevector"
    )

    @model_validator(mode="after")
    def _ranges(self) -> SchedulingSpec:
        if self.min_distance_m >= self.max_distance_m:
            raise ValueError(
                f"scheduling.min_distance_m ({self.min_distance_m:g}) must be below max_distance_m ({self.max_distance_m:g})"
            )
        if self.min_power_dbm > self.max_power_dbm:
            raise ValueError(f"scheduling.min_power_dbm ({self.min_power_dbm:g}) is above max_power_dbm ({self.max_power_dbm:g})")
        qubits = self.block_clients * min(self.block_subchannels, self.subchannels)
        if self.method == "qaoa" and qubits > 20:
            raise ValueError(
                f"scheduling: a QAOA block of {self.block_clients} clients x {min(self.block_subchannels, self.subchannels)} "
                f"sub-channels needs {qubits} qubits; lower block_clients or block_subchannels to stay at 20 or fewer"
            )
        return self


#: What ``qflhw plan`` searches by default (each a ``[plan]`` key that narrows or widens it).
PLAN_GRADIENTS: tuple[GradientMethod, ...] = get_args(GradientMethod)
PLAN_SHOTS: tuple[int, ...] = (10, 30, 100, 300, 1000)
PLAN_BATCH_SIZES: tuple[int, ...] = (8, 16, 64)
PLAN_LOCAL_EPOCHS: tuple[int, ...] = (1, 2)
PLAN_CLIENT_FRACTIONS: tuple[float, ...] = (1.0, 0.5)
PLAN_MITIGATIONS: tuple[MitigationMethod, ...] = get_args(MitigationMethod)


class PlanSpec(_Strict):
    """``[plan]``: what ``qflhw plan`` may change to fit a run into a budget (``qflhw run`` ignores it).

    Every list is a set of choices searched; the spec's own values are not kept unless listed.
    ``devices.<client>`` lists the profiles one client may run on (default: its own ``device``);
    a fake twin stands for the live device it twins, a live profile is rehearsed on its twin.
    """

    devices: dict[str, list[str]] = Field(
        default_factory=dict, description="client name -> device profiles it may use (live or twin); default its own"
    )
    gradients: list[GradientMethod] = Field(default_factory=lambda: list(PLAN_GRADIENTS), min_length=1)
    shots: list[int] = Field(default_factory=lambda: list(PLAN_SHOTS), min_length=1, description="shots per circuit to try (>= 1)")
    adaptive_shots: list[bool] = Field(
        default_factory=lambda: [False, True], min_length=1,
        description="iCANS-style shots (parameter shift only), capped at the planned shots so the price is an upper bound",
    )
    batch_sizes: list[int] = Field(
        default_factory=lambda: list(PLAN_BATCH_SIZES), min_length=1, description="above a client's rows: one full batch"
    )
    local_epochs: list[int] = Field(default_factory=lambda: list(PLAN_LOCAL_EPOCHS), min_length=1)
    max_rounds: int = Field(default=8, ge=1, le=100, description="most rounds a plan may have; every count up to it is tried")
    client_fractions: list[float] = Field(default_factory=lambda: list(PLAN_CLIENT_FRACTIONS), min_length=1)
    mitigation: list[MitigationMethod] = Field(
        default_factory=lambda: list(PLAN_MITIGATIONS), min_length=1,
        description="methods a client may get; per client and shots the one with the lowest predicted RMSE wins",
    )
    seeds: int = Field(default=3, ge=2, le=20, description="rehearsal seeds of each finalist (the spread)")
    finalists: int = Field(default=4, ge=1, le=50, description="settings rehearsed with every seed after one-seed screening")
    screen: int = Field(
        default=40, ge=1, le=1000,
        description="most settings rehearsed with one seed (after dropping those another affords with more shots)",
    )

    @field_validator("shots", "batch_sizes", "local_epochs")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError(f"every value must be >= 1, got {value}")
        return sorted(set(value))

    @field_validator("client_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in value):
            raise ValueError(f"client fractions must be in (0, 1], got {value}")
        return sorted(set(value), reverse=True)


class _PlanTable(_Strict):
    plan: PlanSpec


class JobSpec(_Strict):
    name: str = Field(default="qfl-run", min_length=1, pattern=NAME_PATTERN, description="letters, digits, _ . - (it names jobs and files)")
    seed: int = 0
    rounds: int = Field(default=5, ge=1)
    client_fraction: float = Field(default=1.0, gt=0, le=1, description="share of clients sampled each round")
    output: str = Field(default="runs", description="folder that receives one run directory per run")
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    aggregation: AggregationSpec = AggregationSpec()
    budget: BudgetSpec = BudgetSpec()
    resilience: ResilienceSpec = ResilienceSpec()
    mitigation: MitigationSpec = MitigationSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    personalization: PersonalizationSpec = PersonalizationSpec()
    privacy: PrivacySpec = PrivacySpec()
    scheduling: SchedulingSpec | None = Field(default=None, description="[scheduling]: wireless uplink scheduling; default none")
    clients: list[ClientSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_clients(self) -> JobSpec:
        names = [c.name for c in self.clients]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"clients: names must be unique; repeated: {', '.join(dupes)}")
        if self.aggregation.min_clients > len(self.clients):
            raise ValueError(
                f"aggregation.min_clients is {self.aggregation.min_clients} but there are only "
                f"{len(self.clients)} clients; lower it or add clients"
            )
        p = self.personalization
        if p.method == "local-layers":
            if self.model.kind != "quantum":
                raise ValueError("personalization.method = 'local-layers' keeps ansatz layers local; it needs model.kind = 'quantum' "
                                 "(use 'local-head' for the classical model)")
            if p.local_layers >= self.model.layers:
                raise ValueError(f"personalization.local_layers ({p.local_layers}) must be below model.layers ({self.model.layers}) "
                                 "so that at least one layer is shared; lower it or add layers")
        return self

    def client_setting(self, client: ClientSpec, key: str) -> Any:
        """A client's own value of a training setting, or the job-wide one."""
        own = getattr(client, key)
        return own if own is not None else getattr(self.training, key)

    def client_mitigation(self, client: ClientSpec) -> MitigationSpec:
        """A client's own ``mitigation`` table, or the job-wide one."""
        return client.mitigation if client.mitigation is not None else self.mitigation


def parse_spec(raw: dict[str, Any], source: str = "<spec>") -> JobSpec:
    """A validated job spec; a ``[plan]`` table is checked too (:func:`parse_plan`) but is not part of it."""
    if "sweep" in raw:
        raise ConfigError(f"{source}: has a [sweep] table, so it is a study; run it with `qflhw study {source}`")
    plan = raw.get("plan")
    raw = {k: v for k, v in raw.items() if k != "plan"}
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(field_error(source, err, "see jobs/quickstart.toml for a valid spec")) from err
    if plan is not None:
        parse_plan(plan, spec, source)
    return spec


def parse_plan(raw: Any, spec: JobSpec, source: str = "<spec>") -> PlanSpec:
    """The ``[plan]`` table of ``spec`` (an empty one: the defaults); its clients must exist."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: plan must be a table, e.g. [plan] shots = [10, 100]")
    try:
        plan = _PlanTable.model_validate({"plan": raw}).plan  # errors then name plan.<field>
    except ValidationError as err:
        raise ConfigError(field_error(source, err, "see docs/planning.md for the [plan] keys")) from err
    names = [c.name for c in spec.clients]
    unknown = sorted(set(plan.devices) - set(names))
    if unknown:
        raise ConfigError(
            f"{source}: plan.devices names client {unknown[0]!r}, which is not among the clients ({', '.join(names)}); fix the name"
        )
    empty = sorted(k for k, v in plan.devices.items() if not v)
    if empty:
        raise ConfigError(f"{source}: plan.devices.{empty[0]} is empty; list at least one device profile")
    return plan


def read_toml(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A spec file's text and parsed TOML; a missing, unreadable or invalid file is one line naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the spec ({err})") from err
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err


def load_plan_spec(path: str | Path) -> tuple[JobSpec, PlanSpec]:
    """A job spec file and its ``[plan]`` table (the defaults when it has none)."""
    _, raw = read_toml(path)
    spec = parse_spec(raw, str(path))
    return spec, parse_plan(raw.get("plan", {}), spec, str(path))


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a job spec (TOML; or JSON, as a run keeps a spec built in Python); every
    problem is one line naming the file and field."""
    if Path(path).suffix == ".json":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such spec file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not a readable JSON spec ({err})") from err
    else:
        _, raw = read_toml(path)
    return parse_spec(raw, str(path))
