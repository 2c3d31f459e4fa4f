"""Device profiles: ``backends/<name>.toml`` says which device a client uses and what it costs.

A profile names the provider (``fake``, ``ibm``, ``braket``), the device (IBM backend name or
Braket ARN), its region, limits and prices with the date they were read. A fake profile names the
calibration snapshot it twins.

``emulate = true`` makes a real-QPU profile a dress rehearsal: the same submission code runs
offline (IBM: Runtime local testing mode; Braket: ``LocalEmulator`` built from the device's
``properties`` file), charged at the real prices and marked emulated. ``retired`` marks a device
the provider no longer runs: it stays usable as a fake twin or an emulation, and is refused as a
live target with an error naming its ``replacement``.
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
    max_executions: int | None = Field(
        default=None, gt=0,
        description="most executions (bindings x shots, twirling included) in one provider job; None: no limit "
        "(IBM Sampler jobs: 10 million, https://quantum.cloud.ibm.com/docs/guides/job-limits)",
    )


class Price(_Strict):
    """Prices in USD. IBM bills QPU time (per_second); Braket bills per task plus per shot."""

    per_task: Decimal = Field(default=Decimal(0), ge=0)
    per_shot: Decimal = Field(default=Decimal(0), ge=0)
    per_second: Decimal = Field(default=Decimal(0), ge=0)
    read: _dt.date | None = Field(default=None, description="date the prices were read")
    source: str = ""


class QueueFigure(_Strict):
    """``[queue]``: how long a job waits and runs on the device, offline, with the date it was read.

    ``qflhw plan`` and ``qflhw estimate`` use it for expected wall time; waits measured in earlier
    runs (``qflhw plan --calibrate-from RUN_DIR``) replace it. Queue waits change by the hour:
    treat it as an order of magnitude.
    """

    wait_s: float = Field(ge=0, description="typical wait of one job (task) in the queue before it runs, seconds")
    pending_jobs: int | None = Field(default=None, ge=0, description="queue depth seen when the figure was read")
    seconds_per_shot: float = Field(
        default=0.0, ge=0, description="wall time per shot run, where the cost model has no QPU time (Braket)"
    )
    seconds_per_task: float = Field(default=0.0, ge=0, description="fixed run time of one task (Braket)")
    read: _dt.date = Field(description="date the figure was read or assumed")
    source: str = Field(default="", description="where it comes from; 'assumed' when no live reading backs it")


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
    twirling_randomizations: int | None = Field(default=None, gt=0, description="None: Runtime's 'auto'")
    twirling_shots_per_randomization: int | None = Field(default=None, gt=0, description="None: Runtime's 'auto'")
    dynamical_decoupling: Literal["XX", "XpXm", "XY4"] | None = Field(default=None, description="DD sequence; None: off")
    execution_mode: Literal["batch", "session"] = Field(
        default="batch",
        description="Runtime execution mode of a run's jobs on this device; sessions need a paid plan "
        "(Open Plan users cannot submit session jobs)",
    )

    @property
    def estimator(self) -> bool:
        return self.resilience_level is not None

    @property
    def zne(self) -> bool:
        """Runtime ZNE on (Estimator only): explicitly, or by resilience level 2."""
        on = self.zne_mitigation if self.zne_mitigation is not None else self.resilience_level == 2
        return bool(on) and self.estimator

    @property
    def trex(self) -> bool:
        """Runtime TREX readout mitigation on (Estimator only): explicitly, or by resilience level >= 1."""
        on = self.measure_mitigation if self.measure_mitigation is not None else (self.resilience_level or 0) >= 1
        return bool(on) and self.estimator

    @property
    def noise_factors(self) -> tuple[float, ...]:
        return tuple(self.zne_noise_factors or (1, 3, 5)) if self.zne else (1,)

    @property
    def twirled(self) -> bool:
        """Whether Runtime twirls the circuits (and so rounds shots up to whole randomizations)."""
        gates = self.twirling_gates if self.twirling_gates is not None else (self.estimator and self.resilience_level == 2)
        measure = self.twirling_measure if self.twirling_measure is not None else self.trex
        return bool(gates or measure or self.trex)

    @property
    def shots_factor(self) -> int:
        """How many times the circuits run per shot requested (ZNE runs one copy per noise factor)."""
        return len(self.noise_factors)

    def twirl_shape(self, shots: int) -> tuple[int, int]:
        """(randomizations, shots per randomization) Runtime runs for ``shots`` per binding.

        Runtime's rule (qiskit_ibm_runtime.executor.calculate_twirling_shots): with both 'auto',
        spr = max(64, ceil(shots / 32)) and nr = ceil(shots / spr); a fixed one sets the other.
        """
        nr, spr = self.twirling_randomizations, self.twirling_shots_per_randomization
        if nr is None and spr is None:
            spr = max(64, -(-shots // 32))
            nr = -(-shots // spr)
        elif nr is None:
            nr = -(-shots // spr)  # type: ignore[operator]
        elif spr is None:
            spr = -(-shots // nr)
        assert nr is not None and spr is not None
        return int(nr), int(spr)

    def executed_shots(self, shots: int) -> int:
        """Shots Runtime actually runs per binding and noise factor when ``shots`` are asked for:
        twirled circuits run whole randomizations (10 asked run 64)."""
        if not self.twirled:
            return shots
        nr, spr = self.twirl_shape(shots)
        return nr * spr

    def calibration_executions(self, shots: int) -> int:
        """Executions of the TREX readout-calibration circuits Runtime adds to one Estimator job."""
        if not self.trex:
            return 0
        nr, spr = self.twirl_shape(shots)
        return nr * spr


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
    queue: QueueFigure | None = Field(default=None, description="queue wait and run time, offline (real QPUs); None: not known")
    emulate: bool = Field(
        default=False,
        description="run offline through the provider's own local mode (IBM: Runtime local testing; Braket: "
        "LocalEmulator from `properties`), charged as for real and marked emulated",
    )
    properties: str | None = Field(
        default=None, description="Braket device-properties JSON (path relative to backends/) the emulator is built from"
    )
    retired: _dt.date | None = Field(default=None, description="the day the provider retired the device; None: current")
    replacement: str | None = Field(default=None, description="a current profile to use instead of a retired one")
    twin: TwinSpec = Field(default_factory=TwinSpec, description="what the fake twin simulates (fake only)")
    notes: str = ""

    @model_validator(mode="after")
    def _fake_needs_calibration(self) -> DeviceProfile:
        if self.provider == "fake" and not self.calibration:
            raise ValueError("a fake profile must name the calibration snapshot it twins")
        if self.runtime is not None and self.provider != "ibm":
            raise ValueError(f"[runtime] options are for IBM devices only, not provider {self.provider!r}; remove them")
        if self.emulate and self.provider == "fake":
            raise ValueError("emulate = true is for ibm and braket profiles; a fake profile is already local")
        if self.emulate and self.provider == "braket" and not self.properties:
            raise ValueError("emulate = true on a braket profile needs `properties` (the device-properties JSON to emulate)")
        if self.retired is not None and not self.replacement:
            raise ValueError("a retired profile must name its `replacement` (a current profile)")
        if "twin" in self.model_fields_set and self.provider != "fake":
            raise ValueError(f"[twin] options are for fake devices only, not provider {self.provider!r}; remove them")
        return self

    def check_live(self) -> None:
        """Raise ConfigError when the profile cannot be a live target (a retired device)."""
        if self.retired is not None and not self.emulate:
            raise ConfigError(
                f"device profile {self.name}: {self.device} was retired on {self.retired}; use {self.replacement} "
                "instead (its fake twin still works for studies)"
            )


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
