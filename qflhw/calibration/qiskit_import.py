"""Build calibration snapshots from what the SDKs report: qiskit backends (fake or live IBM).

Every snapshot made here builds a qiskit ``Target`` before it is returned, so a snapshot that
cannot be transpiled to is never saved. Instructions a backend lists that are not gates qiskit
knows by name (Heron r2/r3 list ``measure_2`` and ``reset_2``; ``store``, control flow) are
skipped, and the skipped names are written into the snapshot's provenance notes. Snapshots are
dated by the time their figures were captured (``properties().last_update_date``).

Braket devices are read in :mod:`qflhw.calibration.braket_import`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from qflhw.calibration.snapshot import Calibration, GateCalibration, Provenance, QubitCalibration
from qflhw.calibration.target import gate_library, to_target
from qflhw.errors import CalibrationError

# Instructions a Target lists that are not gates with calibration data.
_NOT_GATES = {"measure", "delay", "reset", "if_else", "for_loop", "switch_case", "while_loop", "barrier", "store"}


def _today() -> str:
    return _dt.date.today().isoformat()


def from_qiskit_backend(
    backend: Any, *, device: str | None = None, kind: str = "exported", source: str | None = None
) -> Calibration:
    """Snapshot a qiskit BackendV2 (an IBM fake backend or a live ``IBMBackend``).

    Gate errors, durations, T1/T2 and frequency come from ``backend.target``; the asymmetric
    readout probabilities from ``backend.properties()`` when the backend has them (the Target
    holds only their mean), kept as measured (not clipped at 0.5), and so do the qubits' and
    gates' ``operational`` flags (schema version 2).
    """
    target = backend.target
    name = device or _device_name(backend.name)
    props = backend.properties() if callable(getattr(backend, "properties", None)) else None
    when = _props_time(props)
    date = when.date() if when is not None else _dt.datetime.now(_dt.UTC).date()
    captured = (when.astimezone(_dt.UTC) if when.tzinfo else when.replace(tzinfo=_dt.UTC)) if when is not None else None

    qubits = []
    capped: list[int] = []
    for q in range(target.num_qubits):
        qp = target.qubit_properties[q] if target.qubit_properties else None
        meas = target["measure"].get((q,)) if "measure" in target else None
        sym = meas.error if meas is not None and meas.error is not None else 0.0
        p10 = p01 = sym
        if props is not None:
            p10 = _qubit_prop(props, q, "prob_meas1_prep0", sym)
            p01 = _qubit_prop(props, q, "prob_meas0_prep1", sym)
        if max(p10, p01) > 0.5:  # a broken qubit (FakeKingston q146: 0.507): the snapshot caps it
            capped.append(q)
        qubits.append(
            QubitCalibration(
                t1=getattr(qp, "t1", None) or None,
                t2=getattr(qp, "t2", None) or None,
                frequency=getattr(qp, "frequency", None) or None,
                prob_meas1_prep0=p10,
                prob_meas0_prep1=p01,
                readout_length=meas.duration if meas is not None else None,
                operational=_operational(props, "qubit", q),
            )
        )

    gates = []
    natives = []
    skipped = []
    known = gate_library()
    for op_name in target.operation_names:
        if op_name in _NOT_GATES:
            continue
        if op_name not in known:  # measure_2, reset_2, ...: not gates the transpiler can target by name
            skipped.append(op_name)
            continue
        natives.append(op_name)
        for qargs, ip in target[op_name].items():
            if qargs is None or ip is None:
                continue
            gates.append(
                GateCalibration(
                    gate=op_name,
                    qubits=tuple(qargs),
                    error=float(ip.error or 0.0),
                    duration=float(ip.duration or 0.0),
                    operational=_operational(props, op_name, tuple(qargs)),
                )
            )
    if not gates:
        raise CalibrationError(f"backend {backend.name} reports no gate calibration data")
    version = getattr(backend, "backend_version", "")
    notes = ["gate errors/durations, T1/T2 from backend.target; readout from backend.properties()"]
    if skipped:
        notes.append(f"skipped non-gate instructions {sorted(skipped)} (not qiskit gates, so the transpiler never emits them)")
    if capped:
        notes.append(f"readout error above 0.5 capped at 0.5 on qubits {capped}")
    cal = Calibration(
        device=name,
        date=date,
        captured=captured,
        provenance=Provenance(
            kind=kind,  # type: ignore[arg-type]
            source=source or f"{type(backend).__module__}.{type(backend).__name__} {version}".strip(),
            retrieved=_today(),
            notes="; ".join(notes),
        ),
        num_qubits=target.num_qubits,
        native_gates=tuple(sorted(natives)) + ("measure",),
        dt=getattr(backend, "dt", None),
        qubits=tuple(qubits),
        gates=tuple(sorted(gates, key=lambda g: (g.gate, g.qubits))),
    )
    try:  # a snapshot that builds no Target is never returned (and so never saved)
        to_target(cal)
    except Exception as err:  # noqa: BLE001 - qiskit raises several types here
        raise CalibrationError(f"backend {backend.name}: its snapshot does not build a qiskit Target ({err})") from err
    return cal


def fake_backend_names() -> list[str]:
    """Class names of every BackendV2 fake backend qiskit-ibm-runtime ships (``FakeKingston``, ...)."""
    from qiskit.providers import BackendV2
    from qiskit_ibm_runtime import fake_provider

    return sorted(
        n for n in dir(fake_provider)
        if n.startswith("Fake") and isinstance(getattr(fake_provider, n), type)
        and issubclass(getattr(fake_provider, n), BackendV2)
    )


def from_fake_backend_name(name: str, *, device: str | None = None) -> Calibration:
    """Snapshot a qiskit-ibm-runtime fake backend by name, e.g. ``FakeTorino``, ``torino`` or ``ibm_torino``."""
    from qiskit_ibm_runtime import fake_provider

    known = fake_backend_names()
    cls_name = name if name.startswith("Fake") else "Fake" + name.removeprefix("ibm_").removeprefix("fake_").capitalize()
    if cls_name not in known:
        lower = {n.lower(): n for n in known}
        cls_name = lower.get(cls_name.lower(), lower.get(cls_name.lower() + "v2", cls_name))
    if cls_name not in known:
        raise CalibrationError(f"no qiskit-ibm-runtime fake backend {name!r}; known: {', '.join(known)}")
    import qiskit_ibm_runtime

    return from_qiskit_backend(
        getattr(fake_provider, cls_name)(), device=device,
        source=f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__} fake_provider.{cls_name}",
    )


def _device_name(backend_name: str) -> str:
    return "ibm_" + backend_name.removeprefix("fake_") if backend_name.startswith("fake_") else backend_name


def _props_time(props: Any) -> _dt.datetime | None:
    """When the backend's figures were captured, from ``properties().last_update_date``."""
    when = getattr(props, "last_update_date", None)
    if isinstance(when, str):
        try:
            when = _dt.datetime.fromisoformat(when)
        except ValueError:
            return None
    return when if isinstance(when, _dt.datetime) else None


def _operational(props: Any, what: str, where: Any) -> bool:
    """``properties()``' operational flag of a qubit (``what="qubit"``) or a gate; True when the
    backend reports none (a missing flag is not a broken qubit)."""
    if props is None:
        return True
    try:
        if what == "qubit":
            return bool(props.is_qubit_operational(where))
        return bool(props.is_gate_operational(what, list(where)))
    except Exception:  # the SDK raises its own error type for a missing property  # noqa: BLE001
        return True


def _qubit_prop(props: Any, qubit: int, name: str, default: float) -> float:
    try:
        value = props.qubit_property(qubit, name)
    except Exception:  # the SDK raises its own error type for a missing property  # noqa: BLE001
        return default
    value = value[0] if isinstance(value, tuple) else value
    return float(value) if value is not None else default
