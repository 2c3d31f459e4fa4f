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

from qflhw.errors import ConfigError, field_error
from qflhw.paths import data_dir


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
    notes: str = ""

    @model_validator(mode="after")
    def _fake_needs_calibration(self) -> DeviceProfile:
        if self.provider == "fake" and not self.calibration:
            raise ValueError("a fake profile must name the calibration snapshot it twins")
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
