"""Device profiles: ``backends/<name>.toml`` says which device a client uses and what it costs.

A profile names the provider (``fake``, ``ibm``, ``braket``), the device (IBM backend name or
Braket ARN), its region, limits and prices with the date they were read. A fake profile names the
calibration snapshot it twins.
"""

from __future__ import annotations

import datetime as _dt
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qflhw.config.paths import data_dir
from qflhw.config.spec import TwinSpec
from qflhw.errors import ConfigError, field_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    max_shots: int = Field(default=100_000, gt=0, description="most shots per circuit")
    max_circuits: int = Field(default=10_000, gt=0, description="most executables in one job")


class Price(_Strict):
    """Prices in USD. IBM bills QPU time (per_second); Braket bills per task plus per shot."""

    per_task: Decimal = Field(default=Decimal(0), ge=0)
    per_shot: Decimal = Field(default=Decimal(0), ge=0)
    per_second: Decimal = Field(default=Decimal(0), ge=0)
    read: _dt.date | None = Field(default=None, description="date the prices were read")
    source: str = ""


class IBMRuntimeOptions(_Strict):
    """Error suppression and mitigation done by Qiskit Runtime: an alternative to qflhw's own.

    Unset (the default), an IBM device samples raw counts with the Runtime Sampler, so readout
    mitigation and ZNE work exactly as on the fake twins (client side). A ``resilience_level``
    switches to the Runtime Estimator, which returns mitigated expectation values (no counts):
    do not combine it with a client-side ``mitigation``.
    """

    resilience_level: Literal[0, 1, 2] | None = Field(
        default=None, description="None: Sampler (raw counts); 0/1/2: Estimator (1 = TREX readout, 2 = + ZNE)"
    )
    measure_mitigation: bool | None = Field(default=None, description="TREX; default from the level")
    zne_mitigation: bool | None = Field(default=None, description="zero-noise extrapolation; default from the level")
    zne_noise_factors: tuple[float, ...] | None = Field(default=None, description="default (1, 3, 5)")
    zne_extrapolator: (
        Literal["linear", "exponential", "double_exponential", "polynomial_degree_1", "polynomial_degree_2",
                "polynomial_degree_3", "fallback"]
        | None
    ) = Field(default=None, description="Runtime's ZNE extrapolator; default from Runtime")
    twirling_gates: bool | None = None
    twirling_measure: bool | None = None
    dynamical_decoupling: Literal["XX", "XpXm", "XY4"] | None = Field(default=None, description="DD sequence; None: off")

    @property
    def estimator(self) -> bool:
        return self.resilience_level is not None

    @property
    def shots_factor(self) -> int:
        """How many times the circuits run per shot requested (ZNE runs one copy per noise factor)."""
        zne = self.zne_mitigation if self.zne_mitigation is not None else self.resilience_level == 2
        return len(self.zne_noise_factors or (1, 3, 5)) if zne and self.estimator else 1


class DeviceProfile(_Strict):
    name: str
    provider: Literal["fake", "ibm", "braket"]
    device: str = Field(description="IBM backend name, Braket device ARN, or the twinned device")
    calibration: str | None = Field(
        default=None, description="snapshot reference <device>[/<date>|/latest]; required for fake"
    )
    region: str | None = None
    qubits: int = Field(gt=0)
    native_gates: tuple[str, ...] = ()
    optimization_level: int = Field(default=3, ge=0, le=3)
    limits: Limits = Limits()
    price: Price = Price()
    runtime: IBMRuntimeOptions | None = Field(default=None, description="Qiskit Runtime mitigation (ibm only)")
    twin: TwinSpec = Field(default_factory=TwinSpec, description="what the fake twin simulates (fake only)")
    notes: str = ""

    @model_validator(mode="after")
    def _fake_needs_calibration(self) -> DeviceProfile:
        if self.provider == "fake" and not self.calibration:
            raise ValueError("a fake profile must name the calibration snapshot it twins")
        if self.runtime is not None and self.provider != "ibm":
            raise ValueError(f"[runtime] options are for IBM devices only, not provider {self.provider!r}; remove them")
        if "twin" in self.model_fields_set and self.provider != "fake":
            raise ValueError(f"[twin] options are for fake devices only, not provider {self.provider!r}; remove them")
        return self


def profile_dir() -> Path:
    return data_dir("backends")


def available() -> list[str]:
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load ``backends/<name>.toml`` (or a path); errors name the file and field."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = profile_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown device profile {str(name_or_path)!r} (no {path}); known: {', '.join(available()) or 'none'}"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    raw.setdefault("name", path.stem)
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(field_error(path, err)) from err
