"""Build calibration snapshots from what the SDKs report: qiskit backends (fake or live IBM).

Braket devices are read in :mod:`qflhw.calibration.braket_import`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from qiskit.circuit import Gate

from qflhw.calibration.snapshot import Calibration, GateCalibration, Provenance, QubitCalibration
from qflhw.errors import CalibrationError

# Instructions a Target lists that are not gates with calibration data.
_NOT_GATES = {"measure", "delay", "reset", "if_else", "for_loop", "switch_case", "while_loop", "barrier"}


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
    date = _props_date(props) or _dt.date.today()

    qubits = []
    for q in range(target.num_qubits):
        qp = target.qubit_properties[q] if target.qubit_properties else None
        meas = target["measure"].get((q,)) if "measure" in target else None
        sym = meas.error if meas is not None and meas.error is not None else 0.0
        p10 = p01 = sym
        if props is not None:
            p10 = _qubit_prop(props, q, "prob_meas1_prep0", sym)
            p01 = _qubit_prop(props, q, "prob_meas0_prep1", sym)
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
    for op_name in target.operation_names:
        if op_name in _NOT_GATES or not isinstance(target.operation_from_name(op_name), Gate):
            continue  # measure_2 / reset_2 of newer Herons are instructions, not gates
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
    return Calibration(
        device=name,
        date=date,
        provenance=Provenance(
            kind=kind,  # type: ignore[arg-type]
            source=source or f"{type(backend).__module__}.{type(backend).__name__} {version}".strip(),
            retrieved=_today(),
            notes="gate errors/durations, T1/T2 from backend.target; readout from backend.properties()",
        ),
        num_qubits=target.num_qubits,
        native_gates=tuple(sorted(natives)) + ("measure",),
        dt=getattr(backend, "dt", None),
        qubits=tuple(qubits),
        gates=tuple(sorted(gates, key=lambda g: (g.gate, g.qubits))),
    )


def from_fake_backend_name(name: str) -> Calibration:
    """Snapshot a qiskit-ibm-runtime fake backend by name, e.g. ``FakeTorino`` or ``torino``."""
    from qiskit_ibm_runtime import fake_provider

    cls_name = name if name.startswith("Fake") else "Fake" + name.removeprefix("ibm_").capitalize()
    cls = getattr(fake_provider, cls_name, None)
    if cls is None:
        known = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and not n.endswith("Provider"))
        raise CalibrationError(f"no qiskit-ibm-runtime fake backend {cls_name!r}; known: {', '.join(known[:12])}, ...")
    import qiskit_ibm_runtime

    return from_qiskit_backend(cls(), source=f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__} fake_provider.{cls_name}")


def _device_name(backend_name: str) -> str:
    return "ibm_" + backend_name.removeprefix("fake_") if backend_name.startswith("fake_") else backend_name


def _props_date(props: Any) -> _dt.date | None:
    when = getattr(props, "last_update_date", None)
    if isinstance(when, _dt.datetime):
        return when.date()
    if isinstance(when, str):
        try:
            return _dt.datetime.fromisoformat(when).date()
        except ValueError:
            return None
    return None


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
