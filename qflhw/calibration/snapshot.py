"""Calibration snapshots: one device's noise on one day, with units and provenance.

A snapshot lives at ``calibration/<device>/<YYYY-MM-DD>.json``; a later capture of the same day
whose figures differ is added as ``<YYYY-MM-DD>T<HHMMSS>Z.json`` (its capture time, UTC), so the
day's first file is never replaced and ``<device>/<YYYY-MM-DD>`` keeps naming it. It holds what the noise model and
the noise-aware transpiler need: per-qubit T1/T2 and asymmetric readout errors, per-gate errors
and durations on the coupling map, and the native gate set (qiskit instruction names). Files are
validated on load (a bad one names the file and the field) and never overwritten.

Schema versions: ``qflhw.calibration/2`` adds ``qubit_labels``, the provider's label of each
qubit index (Braket's IQM devices count from 1). Version 1 files kept those labels as text in
``provenance.notes``; they still load, with the labels read from the notes, and write back
exactly as they were (so their content hash, :attr:`Calibration.id`, does not change).
``captured`` (version 2, optional) is the capture time of the figures; a file without it writes
back without it.

Version 2 also keeps readout probabilities **as measured**: up to 1 (a qubit whose readout is
broken reads the wrong value most of the time; version 1 exporters clipped them at 0.5), and
adds optional figures that version 1 cannot hold:

* ``operational`` per qubit and per gate (IBM's ``properties()`` flags; written only when false).
  Non-operational qubits and gates, and gates calibrated with error 1 (IBM reports 1.0 for a
  broken coupler), are left out of the device's Target, so no layout uses them;
* ``zz``: static ZZ crosstalk per coupled pair, in Hz (the conditional phase rate, see
  :class:`CouplingZZ`), for twins that switch ZZ on;
* ``readout_pairs``: joint two-qubit assignment matrices where the calibration has measured
  correlated readout, for twins that switch correlated readout on.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qflhw.config.paths import data_dir
from qflhw.errors import CalibrationError, ConfigError, field_error

SCHEMA_V1 = "qflhw.calibration/1"
SCHEMA: Literal["qflhw.calibration/2"] = "qflhw.calibration/2"
_V1_LABELS = re.compile(r"braket_qubit_labels=(\d+)\.\.(\d+)|braket_qubit_labels=\[([0-9, ]*)\]")
UNITS = {
    "t1": "s",
    "t2": "s",
    "frequency": "Hz",
    "duration": "s",
    "readout_length": "s",
    "error": "probability",
    "prob_meas1_prep0": "probability",
    "prob_meas0_prep1": "probability",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Strict):
    """Where the numbers came from, so a study can cite them."""

    kind: Literal["exported", "live", "published", "scaled", "drifted"]
    source: str = Field(description="SDK and object, URL or document the numbers were read from")
    retrieved: str = Field(description="ISO date the numbers were read")
    notes: str = ""


class QubitCalibration(_Strict):
    """One physical qubit. Probabilities: prob_meas1_prep0 = P(read 1 | prepared 0), as measured
    (up to 1 in schema version 2; version 1 files hold at most 0.5)."""

    t1: float | None = Field(default=None, gt=0)
    t2: float | None = Field(default=None, gt=0)
    frequency: float | None = Field(default=None, gt=0)
    prob_meas1_prep0: float = Field(ge=0, le=1)
    prob_meas0_prep1: float = Field(ge=0, le=1)
    readout_length: float | None = Field(default=None, ge=0)
    operational: bool = Field(default=True, description="False: the provider flags the qubit as unusable (schema 2)")

    @property
    def readout_error(self) -> float:
        return 0.5 * (self.prob_meas1_prep0 + self.prob_meas0_prep1)


class GateCalibration(_Strict):
    """One native gate on one tuple of physical qubits."""

    gate: str
    qubits: tuple[int, ...] = Field(min_length=1, max_length=2)
    error: float = Field(ge=0, le=1)
    duration: float = Field(ge=0)
    operational: bool = Field(default=True, description="False: the provider flags the gate as unusable (schema 2)")


class CouplingZZ(_Strict):
    """Static ZZ crosstalk of one coupled pair: ``zz`` = zeta / 2 pi in Hz, where
    ``zeta = E11 - E10 - E01 + E00`` (angular). Idling together for ``t`` seconds, the pair picks
    up the conditional phase ``exp(-i 2 pi zz t |11><11|)`` in the frame where each qubit's
    frequency is calibrated with its neighbour in ``|0>`` (schema 2)."""

    qubits: tuple[int, int]
    zz: float = Field(description="Hz; the sign is the physics' (both signs occur)")


class PairReadout(_Strict):
    """A measured joint assignment matrix of two qubits read out together (schema 2).

    ``matrix[measured][prepared]``, outcomes indexed ``b0 + 2 b1`` with ``b0`` the bit of
    ``qubits[0]``; each column sums to one. Where present and switched on, it replaces the
    product of the two qubits' own matrices."""

    qubits: tuple[int, int]
    matrix: tuple[tuple[float, float, float, float], ...] = Field(min_length=4, max_length=4)

    @model_validator(mode="after")
    def _stochastic(self) -> PairReadout:
        m = np.asarray(self.matrix, dtype=float)
        if np.any(m < 0) or np.any(np.abs(m.sum(axis=0) - 1) > 1e-9):
            raise ValueError(f"readout_pairs {list(self.qubits)}: matrix entries must be >= 0 and each column must sum to 1")
        if self.qubits[0] == self.qubits[1]:
            raise ValueError(f"readout_pairs {list(self.qubits)}: two different qubits")
        return self


class Calibration(_Strict):
    """A validated calibration snapshot of one device."""

    schema_: Literal["qflhw.calibration/1", "qflhw.calibration/2"] = Field(alias="schema", default=SCHEMA)
    device: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    date: _dt.date
    provenance: Provenance
    units: dict[str, str] = Field(default_factory=lambda: dict(UNITS))
    num_qubits: int = Field(gt=0)
    native_gates: tuple[str, ...] = Field(min_length=2)
    dt: float | None = Field(default=None, gt=0, description="sample time, s (IBM devices)")
    qubits: tuple[QubitCalibration, ...]
    gates: tuple[GateCalibration, ...]
    qubit_labels: tuple[int, ...] | None = Field(
        default=None, description="the provider's label of each qubit index (None: labels are 0..n-1)"
    )
    captured: _dt.datetime | None = Field(
        default=None, description="when the figures were captured (UTC); None: only the date is known"
    )
    zz: tuple[CouplingZZ, ...] = Field(default=(), description="static ZZ per coupled pair, Hz (schema 2)")
    readout_pairs: tuple[PairReadout, ...] = Field(default=(), description="correlated two-qubit readout (schema 2)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _labels_of_v1(cls, raw: Any) -> Any:
        """Version 1 kept Braket qubit labels in ``provenance.notes``: read them from there."""
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA_V1:
            return raw
        for v2_only in ("qubit_labels", "captured"):
            if v2_only in raw:
                raise ValueError(f"{v2_only} is a field of {SCHEMA}, not of {SCHEMA_V1}; set schema to {SCHEMA!r}")
        notes = raw.get("provenance", {}).get("notes", "") if isinstance(raw.get("provenance"), dict) else ""
        m = _V1_LABELS.search(notes or "")
        if m is None:
            return raw
        if m.group(1) is not None:
            labels = list(range(int(m.group(1)), int(m.group(2)) + 1))
        else:
            labels = [int(x) for x in m.group(3).split(",") if x.strip()]
        return {**raw, "qubit_labels": labels}

    @field_validator("units")
    @classmethod
    def _units_are_ours(cls, units: dict[str, str]) -> dict[str, str]:
        wrong = {k: v for k, v in units.items() if UNITS.get(k) != v}
        if wrong:
            raise ValueError(f"unsupported units {wrong}; this schema uses {UNITS}")
        return units

    @model_validator(mode="after")
    def _consistent(self) -> Calibration:
        if len(self.qubits) != self.num_qubits:
            raise ValueError(f"qubits has {len(self.qubits)} entries but num_qubits is {self.num_qubits}")
        if "measure" not in self.native_gates:
            raise ValueError("native_gates must include 'measure'")
        if self.qubit_labels is not None and (
            len(self.qubit_labels) != self.num_qubits or len(set(self.qubit_labels)) != self.num_qubits
        ):
            raise ValueError(f"qubit_labels must name each of the {self.num_qubits} qubits once")
        for i, g in enumerate(self.gates):
            if g.gate not in self.native_gates:
                raise ValueError(f"gates[{i}].gate {g.gate!r} is not in native_gates")
            if any(q < 0 or q >= self.num_qubits for q in g.qubits):
                raise ValueError(f"gates[{i}].qubits {list(g.qubits)} outside 0..{self.num_qubits - 1}")
        pairs: list[tuple[str, tuple[int, ...]]] = [("zz", c.qubits) for c in self.zz]
        pairs += [("readout_pairs", p.qubits) for p in self.readout_pairs]
        for name, qubits in pairs:
            if any(q < 0 or q >= self.num_qubits for q in qubits):
                raise ValueError(f"{name} qubits {list(qubits)} outside 0..{self.num_qubits - 1}")
        if self.schema_ == SCHEMA_V1:
            self._check_v1()
        return self

    def _check_v1(self) -> None:
        """What version 1 could not hold is an error in a version 1 file (the fix: schema 2)."""
        fix = f"set schema to {SCHEMA!r}"
        for i, q in enumerate(self.qubits):
            if max(q.prob_meas1_prep0, q.prob_meas0_prep1) > 0.5:
                raise ValueError(f"qubits[{i}]: readout probabilities above 0.5 need {SCHEMA}; {fix}")
            if not q.operational:
                raise ValueError(f"qubits[{i}].operational is a field of {SCHEMA}; {fix}")
        if any(not g.operational for g in self.gates):
            raise ValueError(f"gates[].operational is a field of {SCHEMA}; {fix}")
        if self.zz or self.readout_pairs:
            raise ValueError(f"zz and readout_pairs are fields of {SCHEMA}; {fix}")

    # ------------------------------------------------------------------ identity and derived data
    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Calibration:
        """A copy with ``update`` applied; its :attr:`id` is computed afresh (pydantic copies the
        instance dict, where a cached id of the original would otherwise survive)."""
        out = super().model_copy(update=update, deep=deep)
        out.__dict__.pop("id", None)
        return out

    @functools.cached_property
    def id(self) -> str:
        """``<device>/<date>`` plus a content hash, so edited or scaled snapshots never collide.

        Cached: the snapshot is frozen, and every job record asks for it."""
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:10]
        return f"{self.device}/{self.date.isoformat()}#{digest}"

    @property
    def labels(self) -> list[int]:
        """The provider's label of each qubit index (identity when the snapshot gives none)."""
        return list(self.qubit_labels) if self.qubit_labels is not None else list(range(self.num_qubits))

    def same_figures(self, other: Calibration) -> bool:
        """Whether ``other`` holds the same device figures (provenance and schema aside)."""
        keep = {"device", "date", "num_qubits", "native_gates", "dt", "qubits", "gates", "zz", "readout_pairs"}
        return self.model_dump(include=keep) == other.model_dump(include=keep) and self.labels == other.labels

    @property
    def coupling_map(self) -> list[tuple[int, int]]:
        return sorted({g.qubits for g in self.gates if len(g.qubits) == 2})

    @property
    def operational_qubits(self) -> tuple[int, ...]:
        """Qubits a circuit may use: those not flagged non-operational."""
        return tuple(i for i, q in enumerate(self.qubits) if q.operational)

    def usable(self, gate: GateCalibration) -> bool:
        """Whether a layout may use ``gate``: operational, on operational qubits, and not
        calibrated with error 1 (what IBM reports for a broken coupler or gate)."""
        return gate.operational and gate.error < 1.0 and all(self.qubits[q].operational for q in gate.qubits)

    def readout_outliers(self, factor: float = 2.0) -> tuple[int, ...]:
        """Operational qubits whose mean readout error is above ``factor`` x the median of the
        operational qubits (the layout measures on them only when nothing else fits)."""
        ops = self.operational_qubits
        if not ops:
            return ()
        med = float(np.median([self.qubits[q].readout_error for q in ops]))
        return tuple(q for q in ops if self.qubits[q].readout_error > factor * med)

    def readout_matrix(self, qubit: int) -> np.ndarray:
        """Assignment matrix A[measured, prepared] of one qubit (columns sum to one)."""
        q = self.qubits[qubit]
        return np.array(
            [[1 - q.prob_meas1_prep0, q.prob_meas0_prep1], [q.prob_meas1_prep0, 1 - q.prob_meas0_prep1]]
        )

    def median_errors(self) -> dict[str, float]:
        """Median one-qubit, two-qubit and readout errors: a one-line summary of device quality."""
        one = [g.error for g in self.gates if len(g.qubits) == 1 and g.error > 0]
        two = [g.error for g in self.gates if len(g.qubits) == 2]
        ro = [q.readout_error for q in self.qubits]
        med = lambda xs: float(np.median(xs)) if xs else 0.0  # noqa: E731
        return {"1q": med(one), "2q": med(two), "readout": med(ro)}

    def scaled(self, factor: float) -> Calibration:
        """A what-if copy with every error multiplied and T1/T2 divided by ``factor``.

        ``factor = 0`` is the ideal twin: no gate or readout error and no relaxation (T1/T2
        unset), with the same qubits, couplings, native gates and durations, so circuits
        transpile to the same device layout and simulate noiselessly.
        """
        if not (math.isfinite(factor) and factor >= 0):
            raise ConfigError(f"noise scale must be a number >= 0 (0 = ideal, 1 = as calibrated), got {factor}")
        cap = lambda p, hi: min(p * factor, hi)  # noqa: E731
        relax = lambda t: t / factor if t and factor > 0 else None  # noqa: E731
        # readout grows towards the uninformative 0.5; a probability already above it stays
        qubits = tuple(
            q.model_copy(
                update={
                    "t1": relax(q.t1),
                    "t2": relax(q.t2),
                    "prob_meas1_prep0": cap(q.prob_meas1_prep0, max(0.5, q.prob_meas1_prep0)),
                    "prob_meas0_prep1": cap(q.prob_meas0_prep1, max(0.5, q.prob_meas0_prep1)),
                }
            )
            for q in self.qubits
        )
        gates = tuple(g.model_copy(update={"error": cap(g.error, max(0.75, g.error))}) for g in self.gates)
        zz = tuple(c.model_copy(update={"zz": c.zz * factor}) for c in self.zz)
        pairs = tuple(p.model_copy(update={"matrix": _scaled_assignment(p.matrix, factor)}) for p in self.readout_pairs)
        notes = "ideal: errors x0, no T1/T2 relaxation" if factor == 0 else f"errors x{factor:g}, T1/T2 /{factor:g}"
        prov = Provenance(
            kind="scaled",
            source=f"{self.device}/{self.date.isoformat()} ({self.provenance.kind}: {self.provenance.source})",
            retrieved=self.provenance.retrieved,
            notes=notes,
        )
        return self.model_copy(update={"qubits": qubits, "gates": gates, "zz": zz, "readout_pairs": pairs, "provenance": prov})

    # ------------------------------------------------------------------ files
    def to_json(self) -> str:
        """The file text; a version 1 snapshot writes version 1 (its labels stay in the notes).

        Optional version 2 figures are written only where they say something: ``operational``
        only when false, ``zz`` and ``readout_pairs`` only when present, ``captured`` only when known."""
        exclude = {"qubit_labels", "captured"} if self.schema_ == SCHEMA_V1 else set()
        if self.captured is None:
            exclude.add("captured")
        raw = self.model_dump(mode="json", by_alias=True, exclude=exclude)
        for entry in raw["qubits"] + raw["gates"]:
            if entry.get("operational", False):
                del entry["operational"]
        for key in ("zz", "readout_pairs"):
            if not raw[key]:
                del raw[key]
        return json.dumps(raw, indent=1, sort_keys=True)

    @property
    def stamp(self) -> str:
        """``<date>T<HHMMSS>Z`` of the capture time (the file stem of a later same-day capture)."""
        when = self.captured.astimezone(_dt.UTC) if self.captured and self.captured.tzinfo else self.captured
        return f"{self.date.isoformat()}T{when:%H%M%S}Z" if when is not None else self.date.isoformat()

    def save(self, root: Path | None = None, *, stem: str | None = None) -> Path:
        """Write ``<root>/<device>/<stem or date>.json``; an existing snapshot is never overwritten."""
        name = stem or self.date.isoformat()
        if not (name == self.date.isoformat() or name.startswith(self.date.isoformat() + "T")):
            raise CalibrationError(f"snapshot file name {name!r} must be its date {self.date} or <date>T<time>Z")
        path = Path(root or calibration_root()) / self.device / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(self.to_json() + "\n")
        except FileExistsError:
            raise CalibrationError(
                f"{path}: a snapshot for {self.device} on {self.date} exists already; snapshots are "
                "never overwritten (delete it by hand if it is wrong)"
            ) from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read and validate one snapshot file; errors name the file and the field."""
        path = Path(path)
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"{path}: no such calibration file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CalibrationError(f"{path}: not valid JSON ({err}); restore it from git or re-export it") from err
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise CalibrationError(field_error(path, err, "re-export the snapshot or fix the field")) from err


def _scaled_assignment(matrix: tuple[tuple[float, ...], ...], factor: float) -> tuple[tuple[float, ...], ...]:
    """A joint assignment matrix with its error (off-diagonal) part times ``factor``; each
    column's error stays at most max(0.75, its old error) (0.75: four outcomes, uninformative)."""
    m = np.asarray(matrix, dtype=float)
    off = m - np.diag(np.diag(m))
    old = off.sum(axis=0)
    new = off * factor
    total = new.sum(axis=0)
    limit = np.maximum(0.75, old)
    new *= np.where(total > limit, limit / np.where(total > 0, total, 1.0), 1.0)
    out = new + np.diag(1.0 - new.sum(axis=0))
    return tuple(tuple(float(x) for x in row) for row in out)


def calibration_root() -> Path:
    return data_dir("calibration")


def snapshots(device: str, root: Path | None = None) -> list[Path]:
    """All snapshot files of one device, oldest first."""
    return sorted((Path(root or calibration_root()) / device).glob("*.json"))


def devices(root: Path | None = None) -> list[str]:
    """Names of all devices with at least one snapshot."""
    base = Path(root or calibration_root())
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.json"))) if base.is_dir() else []


def resolve(ref: str, root: Path | None = None) -> Path:
    """Path of ``<device>``, ``<device>/latest``, ``<device>/<YYYY-MM-DD>`` (that day's first
    snapshot) or ``<device>/<YYYY-MM-DD>T<HHMMSS>Z`` (a later capture of that day), or a file path."""
    as_path = Path(ref)
    if as_path.suffix == ".json":
        return as_path
    device, _, date = ref.partition("/")
    found = snapshots(device, root)
    if not found:
        known = ", ".join(devices(root)) or "none"
        raise ConfigError(
            f"no calibration snapshots for device {device!r} under {root or calibration_root()}; "
            f"known devices: {known}"
        )
    if date in ("", "latest"):
        return found[-1]
    for p in found:
        if p.stem == date:
            return p
    raise ConfigError(
        f"no snapshot {ref!r}; dates for {device}: {', '.join(p.stem for p in found)}"
    )


def save_capture(cal: Calibration, root: Path | None = None) -> tuple[Calibration, Path, bool]:
    """Store a capture (live, exported or imported): ``(snapshot kept, its file, newly written)``.

    The day's first capture is ``<device>/<date>.json``. A capture whose figures equal a stored
    snapshot of that day (whatever its kind) reuses it, so its content hash stays put; one whose
    figures differ from all of them is added as ``<device>/<date>T<HHMMSS>Z.json`` (its capture
    time, else now, UTC). Nothing is ever overwritten.
    """
    folder = Path(root or calibration_root()) / cal.device
    day = cal.date.isoformat()
    same_day = sorted(p for p in folder.glob(f"{day}*.json") if p.stem == day or p.stem.startswith(day + "T"))
    for path in same_day:
        try:
            existing = Calibration.load(path)
        except CalibrationError:
            continue
        if existing.same_figures(cal):
            return existing, path, False
    stem = day
    if same_day:
        stem = cal.stamp if cal.captured is not None else f"{day}T{_dt.datetime.now(_dt.UTC):%H%M%S}Z"
    try:
        return cal, cal.save(root, stem=stem), True
    except CalibrationError:  # a concurrent writer saved this stem first
        existing = Calibration.load(folder / f"{stem}.json")
        if existing.same_figures(cal):
            return existing, folder / f"{stem}.json", False
        raise


def load(ref: str, root: Path | None = None) -> Calibration:
    """Load a snapshot by reference (see :func:`resolve`)."""
    return Calibration.load(resolve(ref, root))
