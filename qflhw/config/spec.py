"""Job specs: the TOML file that describes one QFL experiment, validated before any work starts.

Unknown keys are errors (a misspelled option must not silently fall back to a default), and
every error is one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
AggregationMethod = Literal["fedavg", "noise-aware", "inverse-variance", "median", "trimmed-mean", "sporadic"]
SporadicMode = Literal["skip", "scale"]

ANSATZE: tuple[str, ...] = get_args(Ansatz)
PARTITIONS: tuple[str, ...] = get_args(Partition)
SHOT_ALLOCATIONS: tuple[str, ...] = get_args(ShotAllocation)
EXTRAPOLATIONS: tuple[str, ...] = get_args(Extrapolation)
FOLDINGS: tuple[str, ...] = get_args(Folding)
AGGREGATION_METHODS: tuple[str, ...] = get_args(AggregationMethod)
BUILTIN_DATASETS: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer")

#: Names that end up in idempotency keys, file names and job tags: no ``/``, no spaces.
NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    dataset: str = Field(default="digits", description=f"{' | '.join(BUILTIN_DATASETS)} | path to .csv/.npz")
    classes: list[int] | None = Field(default=None, description="keep only these labels (re-labelled 0..k-1)")
    partition: Partition = "iid"
    alpha: float = Field(default=0.5, gt=0, description="Dirichlet concentration (partition = dirichlet)")
    labels_per_client: int = Field(default=1, ge=1, description="for partition = label-shards")
    test_fraction: float = Field(default=0.2, ge=0, lt=1, description="per-client test split")
    global_test_fraction: float = Field(default=0.2, gt=0, lt=1, description="held out before partitioning")
    max_train_per_client: int | None = Field(default=None, gt=0, description="cap on local training rows")


class ModelSpec(_Strict):
    qubits: int = Field(default=4, ge=1, le=32)
    layers: int = Field(default=2, ge=1, le=50)
    ansatz: Ansatz = "rot-crx"
    encoding: Encoding = "ry"
    observables: list[str] = Field(default_factory=list, description="Pauli labels; default Z on each qubit")


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
    min_clients: int = Field(default=1, ge=1, description="fewest reporting clients for a round to count")


class BudgetSpec(_Strict):
    max_usd: float = Field(default=0.0, ge=0, description="hard cap on spend for the whole run; 0 = free devices only")
    shots_per_round: int | None = Field(default=None, gt=0, description="per client per round")


class ResilienceSpec(_Strict):
    retries: int = Field(default=5, ge=0, description="retries of a transient provider error per job")
    backoff_initial_s: float = Field(default=1.0, ge=0, description="first backoff wait; doubles up to the max")
    backoff_max_s: float = Field(default=60.0, ge=0)
    job_timeout_s: float | None = Field(default=None, gt=0, description="longest wait for one job; then retry the wait")


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
    calibration: str | None = Field(default=None, description="override the profile's snapshot: <device>/<date>")
    noise_scale: float = Field(default=1.0, gt=0, description="multiply every error of the calibration")
    shots: int | None = Field(default=None, ge=0)
    local_epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    mitigation: MitigationSpec | None = Field(default=None, description="replaces the job's [mitigation] for this client")
    twin: TwinSpec | None = Field(default=None, description="fake devices: overrides the keys of the profile's [twin] it sets")


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
        return self

    def client_setting(self, client: ClientSpec, key: str) -> Any:
        """A client's own value of a training setting, or the job-wide one."""
        own = getattr(client, key)
        return own if own is not None else getattr(self.training, key)

    def client_mitigation(self, client: ClientSpec) -> MitigationSpec:
        """A client's own ``mitigation`` table, or the job-wide one."""
        return client.mitigation if client.mitigation is not None else self.mitigation


def parse_spec(raw: dict[str, Any], source: str = "<spec>") -> JobSpec:
    if "sweep" in raw:
        raise ConfigError(f"{source}: has a [sweep] table, so it is a study; run it with `qflhw study {source}`")
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(field_error(source, err, "see jobs/quickstart.toml for a valid spec")) from err


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
