"""Calibration snapshots of Amazon Braket QPUs, from Braket device properties.

:func:`from_braket_properties` turns a Braket device-capabilities object (``AwsDevice.properties``,
or its JSON text or dict) of an IonQ, IQM or Rigetti QPU into a :class:`~qflhw.calibration.snapshot.Calibration`:

* native gates from ``paradigm.nativeGateSet``, renamed to qiskit instructions the preset pass
  manager can target (see :data:`GATE_MAP`);
* the coupling map from ``paradigm.connectivity`` (``fullyConnected`` means every pair);
* T1/T2, one-qubit fidelities, readout fidelity and two-qubit gate fidelities from
  ``properties.standardized`` (per-qubit schema v1/v2 of IQM and Rigetti, device-level schema v3
  of IonQ) and, for IonQ, from ``properties.provider``; gate error = 1 - fidelity;
* gate durations from the properties where Braket has them (IonQ), else from the documented
  published figures in :data:`DEFAULT_DURATIONS`.

Braket qubit labels need not be 0..n-1 (IQM counts from 1). Snapshots always use a contiguous
index 0..n-1 over the labels in increasing order, and keep each index's label in
``Calibration.qubit_labels``.

Two translation choices, both recorded in ``provenance.notes``:

* **IonQ** (gpi, gpi2 and ms on Aria, zz on Forte): by default the snapshot uses the exactly
  equivalent qiskit basis ``rz`` (virtual, error 0), ``sx`` (= GPI2 up to a virtual Z frame),
  ``x`` (= GPI likewise) and ``rxx`` (= MS with both phases 0; partial angles |theta| <= pi/2 map
  onto one MS) or ``rzz`` (= Braket ``zz(theta)`` = exp(-i theta/2 Z(x)Z), which commutes with the
  Z frame). qiskit's
  translator only reaches gpi/gpi2/ms after ``qiskit_ionq.add_equivalences()`` mutates the global
  equivalence library, then leaves every one-qubit gate unmerged (the optimiser knows no Euler
  basis for gpi/gpi2: about 4x the one-qubit gates of a real IonQ compile), and Aer cannot simulate
  gpi/gpi2/ms at all ("unknown instruction"). :func:`to_ionq_native` rewrites a circuit in the
  qiskit basis into IonQ natives (qiskit_ionq gates, phases in turns) by tracking the virtual Z
  frame, which is what IonQ's own compiler does. ``ionq_basis="native"`` keeps gpi/gpi2/ms instead.
* **Rigetti** ``rx`` accepts only the angles +-pi/2 and +-pi on the hardware (pyQuil docs;
  qiskit-braket-provider substitutes them the same way), so it becomes ``sx`` (= rx(pi/2)) and
  ``x`` (= rx(pi)); ``rz`` is virtual (error 0, duration 0).

Published twins (figures from papers and vendor pages rendered as Braket properties) are built in
:mod:`qflhw.calibration.published`; IonQ circuits are rewritten into gpi/gpi2/ms by
:mod:`qflhw.circuits.ionq`.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from qflhw.calibration.snapshot import Calibration, GateCalibration, Provenance, QubitCalibration
from qflhw.errors import CalibrationError

# ---------------------------------------------------------------------------------------------
# Gate names
# ---------------------------------------------------------------------------------------------

#: Braket native gate -> qiskit instruction names in the snapshot (see the module docstring).
GATE_MAP: dict[str, tuple[str, ...]] = {
    "prx": ("r",),  # IQM PRX(theta, phi) == qiskit RGate(theta, phi)
    "cz": ("cz",),
    "rz": ("rz",),
    "rx": ("sx", "x"),  # Rigetti: rx only at +-pi/2, +-pi
    "iswap": ("iswap",),
    "cnot": ("cx",),
    "ecr": ("ecr",),
    "gpi": ("x",),  # IonQ, qiskit basis (default)
    "gpi2": ("sx",),
    "ms": ("rxx",),  # IonQ Aria
    "zz": ("rzz",),  # IonQ Forte: Braket zz(theta) == qiskit rzz(theta), radians
}
_IONQ_NATIVE_MAP = {"gpi": ("gpi",), "gpi2": ("gpi2",), "ms": ("ms",), "zz": ("zz",), "rz": ("rz",)}

#: Gates implemented as frame changes: no error, no duration.
VIRTUAL_GATES = frozenset({"rz"})
#: Two-qubit gates that are symmetric in their qubits (both directions get the same calibration).
_SYMMETRIC_2Q = frozenset({"cz", "iswap", "rxx", "ms", "rzz", "xx", "zz", "swap"})
_TWO_QUBIT_BRAKET = frozenset({"cz", "iswap", "cnot", "ecr", "ms", "xx", "yy", "zz", "xy", "swap", "cphaseshift"})

_ONE_QUBIT_RB = ("RANDOMIZED_BENCHMARKING", "SIMULTANEOUS_RANDOMIZED_BENCHMARKING")
_TWO_QUBIT_PREFERENCE = (
    "INTERLEAVED_RANDOMIZED_BENCHMARKING",
    "SIMULTANEOUS_INTERLEAVED_RANDOMIZED_BENCHMARKING",
    "RANDOMIZED_BENCHMARKING",
)

#: Gate durations (s) used where the Braket properties carry none (standardized v1 has no
#: durations; IonQ's come from the properties). IQM: ``IQMFakeGarnet`` error profile in qiskit-on-iqm
#: (src/iqm/qiskit_iqm/fake_backends/fake_garnet.py: prx 20 ns, cz 40 ns). Rigetti: see
#: ``PUBLISHED["rigetti_ankaa-3"]`` (assumed Ankaa-class values, not from a Rigetti document).
DEFAULT_DURATIONS: dict[str, dict[str, float | None]] = {
    "iqm": {"r": 20e-9, "cz": 40e-9, "measure": None},
    "rigetti": {"sx": 40e-9, "x": 40e-9, "iswap": 72e-9, "cz": 72e-9, "measure": 1.6e-6},
    "ionq": {"sx": 135e-6, "x": 135e-6, "gpi": 135e-6, "gpi2": 135e-6, "rxx": 600e-6, "ms": 600e-6,
             "rzz": 600e-6, "zz": 600e-6, "measure": 175e-6},
}

_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


# ---------------------------------------------------------------------------------------------
# Reading Braket properties
# ---------------------------------------------------------------------------------------------


def load_braket_properties(properties: Any) -> Any:
    """A Braket device-capabilities object from itself, its JSON text or its dict."""
    from braket.schema_common import BraketSchemaBase

    if isinstance(properties, BraketSchemaBase):
        return properties
    if isinstance(properties, Path):
        properties = properties.read_text(encoding="utf-8")
    if isinstance(properties, Mapping):
        properties = json.dumps(properties)
    if not isinstance(properties, str):
        raise CalibrationError(
            f"Braket properties must be a device-capabilities object, its JSON text or a dict, "
            f"not {type(properties).__name__}"
        )
    try:
        return BraketSchemaBase.parse_raw_schema(properties)
    except Exception as err:  # pydantic v1 ValidationError, JSONDecodeError, unknown schema name
        raise CalibrationError(f"not valid Braket device properties: {err}") from err


def _provider_family(props: Any) -> str:
    name = props.braketSchemaHeader.name
    for family in ("ionq", "iqm", "rigetti"):
        if f".{family}." in name:
            return family
    raise CalibrationError(
        f"Braket properties of kind {name!r} are not supported; expected an IonQ, IQM or Rigetti "
        "device (braket.device_schema.{ionq,iqm,rigetti}...)"
    )


def _seconds(value: float, unit: Any) -> float:
    unit = getattr(unit, "value", unit)
    factor = _TIME_UNITS.get(str(unit).strip().lower())
    if factor is None:
        raise CalibrationError(f"unknown time unit {unit!r} in Braket properties; expected one of {sorted(_TIME_UNITS)}")
    return float(value) * factor


def _fid_name(fid: Any) -> str:
    ftype = getattr(fid, "fidelityType", None)
    name = getattr(ftype, "name", None) if ftype is not None else None
    return str(getattr(name, "value", name) or "").upper()


def _one_qubit_rb(fids: Sequence[Any]) -> float | None:
    by_name = {_fid_name(f): float(f.fidelity) for f in fids}
    for name in _ONE_QUBIT_RB:
        if name in by_name:
            return by_name[name]
    others = [v for k, v in by_name.items() if "READOUT" not in k]
    return others[0] if others else None


def _readout(fids: Sequence[Any]) -> float | None:
    for f in fids:
        if _fid_name(f) == "READOUT":
            return float(f.fidelity)
    return None


def _two_qubit(fids: Sequence[Any], gate: str) -> float | None:
    found: dict[str, float] = {}
    for f in fids:
        if str(getattr(f, "gateName", "")).lower() == gate:
            found.setdefault(_fid_name(f), float(f.fidelity))
    for name in _TWO_QUBIT_PREFERENCE:
        if name in found:
            return found[name]
    return next(iter(found.values()), None)


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


class _Reading:
    """What one Braket properties object says, on Braket qubit labels."""

    def __init__(self, props: Any):
        self.props = props
        self.family = _provider_family(props)
        paradigm = props.paradigm
        self.native = [g.lower() for g in paradigm.nativeGateSet]
        std = getattr(props, "standardized", None)
        self.std_version = std.braketSchemaHeader.version if std is not None else None
        one = dict(getattr(std, "oneQubitProperties", None) or {}) if std is not None else {}
        two = dict(getattr(std, "twoQubitProperties", None) or {}) if std is not None else {}
        conn = paradigm.connectivity
        graph = {int(a): [int(b) for b in bs] for a, bs in (conn.connectivityGraph or {}).items()}
        self.fully_connected = bool(conn.fullyConnected)

        labels = {int(k) for k in one} | set(graph) | {b for bs in graph.values() for b in bs}
        if self.fully_connected:  # every qubit of the trap, with or without per-qubit data
            labels |= set(range(paradigm.qubitCount)) if not labels or min(labels) == 0 else set()
        self.labels = sorted(labels) if labels else list(range(paradigm.qubitCount))
        self.qubit_count = paradigm.qubitCount

        # device-level figures (standardized v3, IonQ provider)
        dev: dict[str, float | None] = {"t1": None, "t2": None, "f1q": None, "fro": None, "f2q": None,
                                        "d1q": None, "d2q": None, "dro": None}
        if std is not None and self.std_version == "3":
            if std.T1 is not None:
                dev["t1"] = _seconds(std.T1.value, std.T1.unit)
            if std.T2 is not None:
                dev["t2"] = _seconds(std.T2.value, std.T2.unit)
            if std.singleQubitFidelity:
                dev["f1q"] = float(std.singleQubitFidelity[0].fidelity)
            if std.readoutFidelity:
                dev["fro"] = float(std.readoutFidelity[0].fidelity)
            if std.twoQubitGateFidelity:
                dev["f2q"] = float(std.twoQubitGateFidelity[0].fidelity)
            for key, field in (("d1q", "singleQubitGateDuration"), ("d2q", "twoQubitGateDuration"),
                               ("dro", "readoutDuration")):
                dur = getattr(std, field, None)
                if dur is not None:
                    dev[key] = _seconds(dur.value, dur.unit)
        provider = getattr(props, "provider", None)
        if self.family == "ionq" and provider is not None:
            fid, timing = provider.fidelity or {}, provider.timing or {}
            for key, path in (("f1q", ("1Q", "mean")), ("f2q", ("2Q", "mean")), ("fro", ("spam", "mean"))):
                if dev[key] is None and path[0] in fid and path[1] in fid[path[0]]:
                    dev[key] = float(fid[path[0]][path[1]])
            for key, name in (("t1", "T1"), ("t2", "T2"), ("d1q", "1Q"), ("d2q", "2Q"), ("dro", "readout")):
                if dev[key] is None and name in timing:
                    dev[key] = float(timing[name])
        self.device_level = dev

        # per-qubit figures
        self.t1: dict[int, float | None] = {}
        self.t2: dict[int, float | None] = {}
        self.f1q: dict[int, float | None] = {}
        self.fro: dict[int, float | None] = {}
        for label in self.labels:
            q = one.get(str(label))
            t1 = getattr(q, "T1", None) if q is not None else None
            t2 = getattr(q, "T2", None) if q is not None else None
            fids = list(getattr(q, "oneQubitFidelity", None) or []) if q is not None else []
            self.t1[label] = _seconds(t1.value, t1.unit) if t1 is not None else dev["t1"]
            self.t2[label] = _seconds(t2.value, t2.unit) if t2 is not None else dev["t2"]
            self.f1q[label] = _one_qubit_rb(fids) if fids else None
            self.fro[label] = _readout(fids) if fids else None
            if self.f1q[label] is None:
                self.f1q[label] = dev["f1q"]
            if self.fro[label] is None:
                self.fro[label] = dev["fro"]

        # couplers (unordered label pairs) and their per-gate fidelities
        if self.fully_connected:
            pairs = set(itertools.combinations(self.labels, 2))
        else:
            pairs = {(min(a, b), max(a, b)) for a, bs in graph.items() for b in bs if a != b}
        self.directed = {(a, b) for a, bs in graph.items() for b in bs if a != b}
        self.pairs = sorted(pairs)
        self.two = {
            tuple(sorted(int(x) for x in key.split("-"))): list(v.twoQubitGateFidelity) for key, v in two.items()
        }

    def f2q(self, pair: tuple[int, int], gate: str) -> float | None:
        fids = self.two.get(pair)
        value = _two_qubit(fids, gate) if fids else None
        return value if value is not None else self.device_level["f2q"]


# ---------------------------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------------------------


def from_braket_properties(
    properties: Any,
    *,
    device: str,
    kind: Literal["live", "published"] = "live",
    source: str,
    date: _dt.date | str | None = None,
    retrieved: str | None = None,
    durations: Mapping[str, float | None] | None = None,
    ionq_basis: Literal["qiskit", "native"] = "qiskit",
    notes: str = "",
) -> Calibration:
    """Snapshot a Braket QPU from its device properties (object, JSON text or dict).

    ``durations`` (seconds, by qiskit gate name, ``"measure"`` for readout) override the durations
    taken from the properties or from :data:`DEFAULT_DURATIONS`. The snapshot is dated by the
    capture time of its figures: ``date`` if given, else the calibration time the properties
    carry (``standardized.updatedAt``), else now (UTC) -- never ``service.updatedAt``, which dates
    the service listing, not the figures. ``retrieved`` defaults to today.
    """
    if kind not in ("live", "published"):
        raise CalibrationError(f"kind must be 'live' or 'published' for Braket properties, not {kind!r}")
    props = load_braket_properties(properties)
    r = _Reading(props)
    n = len(r.labels)
    index = {label: i for i, label in enumerate(r.labels)}
    if n < 2:
        raise CalibrationError(f"{device}: Braket properties describe {n} qubit(s); need at least 2")

    # --- gate names
    mapping = dict(GATE_MAP)
    if r.family == "ionq" and ionq_basis == "native":
        from qflhw.calibration.target import gate_library

        if "gpi" not in gate_library():
            raise CalibrationError("ionq_basis='native' needs qiskit-ionq (installed with qiskit-braket-provider)")
        mapping.update(_IONQ_NATIVE_MAP)
        _register_ionq_equivalences()
    elif ionq_basis not in ("qiskit", "native"):
        raise CalibrationError(f"ionq_basis must be 'qiskit' or 'native', not {ionq_basis!r}")
    unknown = [g for g in r.native if g not in mapping]
    if unknown:
        raise CalibrationError(
            f"{device}: Braket native gate(s) {unknown} have no qiskit equivalent here; known: {sorted(mapping)}"
        )
    one_q: list[tuple[str, str]] = []  # (braket, qiskit)
    two_q: list[tuple[str, str]] = []
    for g in r.native:
        for q in mapping[g]:
            (two_q if g in _TWO_QUBIT_BRAKET else one_q).append((g, q))
    if r.family == "ionq" and ionq_basis == "qiskit" and not any(q == "rz" for _, q in one_q):
        one_q.append(("rz", "rz"))  # IonQ applies Z rotations as phase shifts of later gates
    if not two_q:
        raise CalibrationError(f"{device}: no two-qubit native gate in {r.native}")

    # --- durations
    dur: dict[str, float | None] = dict(DEFAULT_DURATIONS[r.family])
    dl = r.device_level
    for _, q in one_q:
        if dl["d1q"] is not None and q not in VIRTUAL_GATES:
            dur[q] = dl["d1q"]
    for _, q in two_q:
        if dl["d2q"] is not None:
            dur[q] = dl["d2q"]
    if dl["dro"] is not None:
        dur["measure"] = dl["dro"]
    dur.update(durations or {})

    def duration(q: str) -> float:
        if q in VIRTUAL_GATES:
            return 0.0
        value = dur.get(q)
        if value is None:
            raise CalibrationError(f"{device}: no duration known for gate {q!r}; pass durations={{{q!r}: seconds}}")
        return float(value)

    # --- qubits
    fill: list[str] = []
    med = {k: _median(list(getattr(r, k).values())) for k in ("t1", "t2", "f1q", "fro")}
    for k, v in med.items():
        missing = sum(1 for x in getattr(r, k).values() if x is None)
        if missing and v is None and k in ("f1q", "fro"):
            raise CalibrationError(f"{device}: Braket properties give no {'one-qubit' if k == 'f1q' else 'readout'} fidelity")
        if missing and v is not None:
            fill.append(f"{k} missing on {missing} qubit(s), median used")
    qubits = []
    for label in r.labels:
        fro = r.fro[label] if r.fro[label] is not None else med["fro"]
        assert fro is not None  # checked above: a missing readout fidelity has a median to fill it
        t1 = r.t1[label] if r.t1[label] is not None else med["t1"]
        t2 = r.t2[label] if r.t2[label] is not None else med["t2"]
        p = min(max(1.0 - float(fro), 0.0), 1.0)  # as measured (schema 2 keeps readout errors above 0.5)
        qubits.append(
            QubitCalibration(
                t1=t1 or None,
                t2=t2 or None,
                prob_meas1_prep0=p,
                prob_meas0_prep1=p,
                readout_length=dur.get("measure"),
            )
        )

    # --- gates
    gates: list[GateCalibration] = []
    for label in r.labels:
        f1 = r.f1q[label] if r.f1q[label] is not None else med["f1q"]
        assert f1 is not None  # checked above, like the readout fidelity
        for _, q in one_q:
            err = 0.0 if q in VIRTUAL_GATES else min(max(1.0 - float(f1), 0.0), 1.0)
            gates.append(GateCalibration(gate=q, qubits=(index[label],), error=err, duration=duration(q)))
    for braket_name, q in two_q:
        f2 = {pair: r.f2q(pair, braket_name) for pair in r.pairs}
        med2 = _median(list(f2.values()))
        if med2 is None:
            raise CalibrationError(f"{device}: no two-qubit fidelity for native gate {braket_name!r}")
        missing = sum(1 for v in f2.values() if v is None)
        if missing:
            fill.append(f"{braket_name} fidelity missing on {missing} coupler(s), median used")
        for (a, b), f in f2.items():
            err = min(max(1.0 - float(f if f is not None else med2), 0.0), 1.0)
            if q in _SYMMETRIC_2Q or braket_name in _SYMMETRIC_2Q:
                directions = [(a, b), (b, a)]
            else:  # directed gate: the connectivity graph's direction(s)
                directions = [d for d in ((a, b), (b, a)) if d in r.directed] or [(a, b)]
            for x, y in directions:
                gates.append(GateCalibration(gate=q, qubits=(index[x], index[y]), error=err, duration=duration(q)))

    natives = sorted({q for _, q in one_q} | {q for _, q in two_q})
    when, captured = _capture_time(props, date)
    note_parts = [
        f"Braket {props.braketSchemaHeader.name} v{props.braketSchemaHeader.version}"
        + (f", standardized v{r.std_version}" if r.std_version else ""),
        "gates: " + ", ".join(f"{b}->{q}" for b, q in one_q + two_q),
        "gate error = 1 - fidelity; readout symmetric (Braket gives one readout fidelity per qubit)",
        "durations: " + ", ".join(
            f"{k}={duration(k) if k != 'measure' else dur.get(k):g}s"
            for k in sorted({q for _, q in one_q + two_q} | {"measure"})
            if k == "measure" and dur.get(k) is not None or k != "measure"
        ),
    ]
    if r.fully_connected:
        note_parts.append("fully connected: every pair coupled")
    if r.family == "ionq" and ionq_basis == "qiskit":
        two_name = "rzz" if "zz" in r.native else "rxx"
        rule = "rzz(t)=ZZ(t/2pi turns)=Braket zz(t)" if two_name == "rzz" else "rxx(t)=MS(0,0,t/2pi) for |t|<=pi/2"
        note_parts.append(
            f"IonQ twin in the equivalent qiskit basis rz/sx/x/{two_name}: sx=GPI2 and x=GPI up to a virtual Z "
            f"frame, {rule}, rz virtual (error 0); convert with qflhw.circuits.ionq.to_ionq_native"
        )
    if r.family == "ionq" and ionq_basis == "native":
        note_parts.append("IonQ natives kept (qiskit_ionq gates, turns); Aer cannot simulate them")
    if r.family == "rigetti" and "rx" in r.native:
        note_parts.append("Rigetti rx only at +-pi/2, +-pi: rx(pi/2)->sx, rx(pi)->x; rz virtual (error 0)")
    if len(r.labels) != r.qubit_count:
        note_parts.append(f"paradigm.qubitCount={r.qubit_count} but {len(r.labels)} qubits have data")
    note_parts += fill
    if notes:
        note_parts.append(notes)
    return Calibration(
        device=device,
        date=when,
        captured=captured,
        provenance=Provenance(
            kind=kind,
            source=source,
            retrieved=retrieved or _dt.date.today().isoformat(),
            notes="; ".join(note_parts),
        ),
        num_qubits=n,
        native_gates=tuple(natives) + ("measure",),
        dt=None,
        qubits=tuple(qubits),
        gates=tuple(sorted(gates, key=lambda g: (g.gate, g.qubits))),
        qubit_labels=tuple(r.labels),
    )


def _capture_time(props: Any, date: _dt.date | str | None) -> tuple[_dt.date, _dt.datetime | None]:
    """(snapshot date, capture time) of the figures; see :func:`from_braket_properties`."""
    if isinstance(date, str):
        date = _dt.date.fromisoformat(date)
    if isinstance(date, _dt.date):
        return date, None
    when = getattr(getattr(props, "standardized", None), "updatedAt", None)
    if isinstance(when, _dt.datetime):
        when = when.astimezone(_dt.UTC) if when.tzinfo else when.replace(tzinfo=_dt.UTC)
    else:
        when = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    return when.date(), when


def import_properties_file(path: Path, *, device: str | None = None, ionq_basis: Literal["qiskit", "native"] = "qiskit") -> Calibration:
    """A snapshot of saved Braket device properties (``AwsDevice.properties`` as JSON), for
    ``qflhw calibration import``; ``device`` defaults to the file name without ``-properties``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{path}: cannot read Braket properties ({err})") from err
    name = device or path.stem.removesuffix("-properties")
    try:
        return from_braket_properties(text, device=name, kind="live", source=f"Braket device properties file {path.name}",
                                      ionq_basis=ionq_basis)
    except CalibrationError as err:
        raise CalibrationError(f"{path}: {err}") from err


_IONQ_EQUIVALENCES_ADDED = False


def _register_ionq_equivalences() -> None:
    """qiskit_ionq's equivalences (u -> gpi/gpi2, cx -> ms) in the session library, once."""
    global _IONQ_EQUIVALENCES_ADDED
    if not _IONQ_EQUIVALENCES_ADDED:
        from qiskit_ionq import add_equivalences

        add_equivalences()
        _IONQ_EQUIVALENCES_ADDED = True
