"""Job specs: the TOML file that describes one QFL experiment, validated before any work starts.

Unknown keys are errors (a misspelled option must not silently fall back to a default), and
every error is one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qflhw.errors import ConfigError, field_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    dataset: str = Field(default="digits", description="digits | iris | wine | breast_cancer | path to .csv/.npz")
    classes: list[int] | None = Field(default=None, description="keep only these labels (re-labelled 0..k-1)")
    partition: Literal["iid", "dirichlet", "label-shards"] = "iid"
    alpha: float = Field(default=0.5, gt=0, description="Dirichlet concentration (partition = dirichlet)")
    labels_per_client: int = Field(default=1, ge=1, description="for partition = label-shards")
    test_fraction: float = Field(default=0.2, ge=0, lt=1, description="per-client test split")
    global_test_fraction: float = Field(default=0.2, gt=0, lt=1, description="held out before partitioning")
    max_train_per_client: int | None = Field(default=None, gt=0, description="cap on local training rows")


class ModelSpec(_Strict):
    qubits: int = Field(default=4, ge=1, le=32)
    layers: int = Field(default=2, ge=1, le=50)
    ansatz: Literal["rot-crx", "hardware-efficient", "reuploading"] = "rot-crx"
    encoding: Literal["rx", "ry"] = "ry"
    observables: list[str] = Field(default_factory=list, description="Pauli labels; default Z on each qubit")


class TrainingSpec(_Strict):
    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    gradient: Literal["parameter-shift", "spsa"] = "parameter-shift"
    spsa_epsilon: float = Field(default=0.1, gt=0)
    shots: int = Field(default=1000, ge=0, description="shots per circuit; 0 = exact expectations (fake only)")
    proximal_mu: float = Field(default=0.0, ge=0, description="FedProx proximal weight; 0 = plain local training")
    shot_allocation: Literal["uniform", "variance-weighted"] = Field(
        default="uniform",
        description="split of a step's shots over its circuits (e.g. ZNE scale factors); variance-weighted puts "
        "more where |weight| x std is larger, same total (see qflhw.shots)",
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


class MitigationSpec(_Strict):
    """``[mitigation]``: error mitigation with Mitiq (see qflhw.mitigation)."""

    method: Literal["none", "zne", "rem", "zne+rem"] = "none"
    scale_factors: list[float] = Field(default_factory=lambda: [1.0, 3.0, 5.0], description="ZNE noise scale factors, >= 1")
    extrapolation: Literal["richardson", "linear", "exponential"] = "richardson"
    folding: Literal["two-qubit", "global"] = Field(default="two-qubit", description="fold two-qubit gates only, or the whole circuit")
    seed: int = Field(default=0, description="seed of Mitiq's random choice of gates to fold (non-odd scale factors)")

    @model_validator(mode="after")
    def _zne_settings(self) -> MitigationSpec:
        if "zne" in self.method:
            from qflhw.mitigation import check_zne

            check_zne(self.scale_factors, self.extrapolation, self.folding)
        return self


class AggregationSpec(_Strict):
    method: Literal["fedavg", "noise-aware", "inverse-variance", "median", "trimmed-mean", "sporadic"] = "fedavg"
    trim_fraction: float = Field(default=0.2, ge=0, lt=0.5)
    threshold: float = Field(default=0.5, gt=0, lt=1, description="sporadic: noise level (1 - ESP) above which a client backs off")
    mode: Literal["skip", "scale"] = Field(default="scale", description="sporadic: drop a noisy client's update or damp it")
    min_clients: int = Field(default=1, ge=1, description="fewest reporting clients for a round to count")


class BudgetSpec(_Strict):
    max_usd: float = Field(default=0.0, ge=0, description="hard cap on spend for the whole run; 0 = free devices only")
    shots_per_round: int | None = Field(default=None, gt=0, description="per client per round")


class ResilienceSpec(_Strict):
    retries: int = Field(default=5, ge=0, description="retries of a transient provider error per job")
    backoff_initial_s: float = Field(default=1.0, ge=0, description="first backoff wait; doubles up to the max")
    backoff_max_s: float = Field(default=60.0, ge=0)
    job_timeout_s: float | None = Field(default=None, gt=0, description="longest wait for one job; then retry the wait")


class ClientSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    device: str = Field(description="a profile in backends/ (see `qflhw devices`)")
    calibration: str | None = Field(default=None, description="override the profile's snapshot: <device>/<date>")
    noise_scale: float = Field(default=1.0, gt=0, description="multiply every error of the calibration")
    shots: int | None = Field(default=None, ge=0)
    local_epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    mitigation: MitigationSpec | None = Field(default=None, description="replaces the job's [mitigation] for this client")


class JobSpec(_Strict):
    name: str = "qfl-run"
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
    """Read and validate a job spec; every problem is one line naming the file and field."""
    _, raw = read_toml(path)
    return parse_spec(raw, str(path))
