"""Twins of Braket QPUs from published figures: papers and vendor pages, rendered as properties.

:data:`PUBLISHED` holds the published median figures (with sources) of each twinned device;
:func:`write_published_properties` renders them as Braket device-properties JSON under
``backends/braket/`` (valid for ``braket.emulation.LocalEmulator.from_json``) and
:func:`build_published_snapshots` converts those files into ``calibration/<device>/<date>.json``
through :func:`~qflhw.calibration.braket_import.from_braket_properties`, exactly as a live
device's properties would be.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qflhw.calibration.braket_import import from_braket_properties, load_braket_properties
from qflhw.calibration.snapshot import Calibration, calibration_root
from qflhw.config.paths import data_dir
from qflhw.errors import CalibrationError

PUBLISHED_DATE = "2026-11-22"  # the day the figures below were read

_AZURE_IONQ = "Microsoft Azure Quantum docs, IonQ provider page (articles/provider-ionq.md), IonQ Aria table"
_FORTE_DRB = "Chen et al., 'Benchmarking a trapped-ion quantum computer with 30 qubits', arXiv:2308.05071 (IonQ Forte, DRB over 435 pairs)"
_IQM_FAKE = (
    "qiskit-on-iqm src/iqm/qiskit_iqm/fake_backends/fake_garnet.py (IQMFakeGarnet error profile published by IQM), "
    "medians over 20 qubits"
)
_IQM_CZ = "IQM 20-qubit (Garnet) benchmark announcement, Feb 2024: median CZ fidelity 99.51% over 30 pairs"
_BRAKET_DOCS = "Amazon Braket Developer Guide, 'Submitting quantum tasks to QPUs' (device ARNs, regions, verbatim native gates)"
_SDK_NOTES_PRICE = "per-shot price from shared/SDK-NOTES.md (undated snapshot of the Braket price list)"
_ASSUMED = "ASSUMED typical value, no publication read for it on 2026-11-22: verify before citing"

#: The published median figures of each twin, with where each number comes from.
PUBLISHED: dict[str, dict[str, Any]] = {
    "ionq_forte-1": {
        "family": "ionq",
        "arn": "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1",
        "region": "us-east-1",
        "qubits": 36,
        "native": ["gpi", "gpi2", "ms"],
        "f1q": 0.9998,  # 1 - 2.0e-4
        "f2q": 0.99536,  # 1 - 46.4e-4 (median)
        "fro": 0.9961,
        "t1": 10.0,
        "t2": 1.0,
        "d1q": 135e-6,
        "d2q": 600e-6,
        "dro": 175e-6,
        "reset": 35e-6,
        "price_per_shot": 0.08,
        "shots": [1, 5000],
        "sources": {
            "qubits, all-to-all, natives, region": _BRAKET_DOCS
            + "; Azure Quantum IonQ provider page (Forte: 36-qubit system); OLCF IonQ docs (Forte #AQ 36)",
            "f1q=0.9998, f2q=0.99536": _FORTE_DRB + ": 1q error 2.0e-4, median 2q error 46.4e-4",
            "fro=0.9961 (SPAM), t1=10 s (lower end of 10-100 s), t2=1 s, 1q 135 us, 2q 600 us": _AZURE_IONQ
            + " (IonQ's Aria figures stand in: no Forte-specific SPAM/timing table found)",
            "readout 175 us, reset 35 us": "IonQ provider-properties example in the Braket schema docs and cirq-ionq "
            "calibration docs (illustrative)",
            "price": _SDK_NOTES_PRICE,
        },
    },
    "iqm_garnet": {
        "family": "iqm",
        "arn": "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet",
        "region": "eu-north-1",
        "qubits": 20,
        "labels": list(range(1, 21)),
        "edges": [(1, 2), (1, 4), (2, 5), (3, 4), (3, 8), (4, 5), (4, 9), (5, 6), (5, 10), (6, 7),
                  (6, 11), (7, 12), (8, 9), (8, 13), (9, 10), (9, 14), (10, 11), (10, 15), (11, 12),
                  (11, 16), (12, 17), (13, 14), (14, 15), (14, 18), (15, 16), (15, 19), (16, 17),
                  (16, 20), (18, 19), (19, 20)],
        "native": ["cz", "prx"],
        "f1q": 0.9987,
        "f2q": 0.9951,
        "fro": 0.9748,
        "t1": 37.566e-6,
        "t2": 9.63e-6,
        "price_per_shot": 0.00145,
        "shots": [1, 20000],
        "sources": {
            "qubits, square lattice (30 couplers, labels 1..20), natives, region": _BRAKET_DOCS
            + "; IQMFakeGarnet architecture (qiskit-on-iqm), same edges as the Garnet fixture in amazon-braket-schemas tests",
            "f2q=0.9951": _IQM_CZ,
            "f1q=0.9987": _IQM_FAKE + ": average gate fidelity of depolarizing(p) o thermal relaxation(T1, T2, 20 ns)",
            "fro=0.9748, t1=37.6 us, t2=9.63 us, prx 20 ns, cz 40 ns": _IQM_FAKE,
            "price": _SDK_NOTES_PRICE,
        },
    },
    "rigetti_ankaa-3": {
        "family": "rigetti",
        "arn": "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3",
        "region": "us-west-1",
        "qubits": 84,
        "grid": (7, 12),  # rows x columns, label = 12*row + column
        "native": ["rx", "rz", "iswap"],
        "f1q": 0.999,
        "f2q": 0.990,
        "fro": 0.96,
        "t1": 20e-6,
        "t2": 15e-6,
        "price_per_shot": 0.0009,
        "shots": [1, 100000],
        "sources": {
            "84 qubits, natives, region": _BRAKET_DOCS + "; Azure Quantum Rigetti provider page (Ankaa-3, 84 qubits)",
            "square lattice": "idealised full 7x12 square lattice (149 couplers); the live device drops some qubits/couplers",
            "f2q=0.990 (iSWAP)": "Rigetti Ankaa-3 launch announcement (Dec 2024), 99.0% median iSWAP fidelity; "
            "not re-read on 2026-11-22: verify",
            "f1q=0.999, fro=0.96, t1=20 us, t2=15 us, rx 40 ns, iswap 72 ns, readout 1.6 us": _ASSUMED,
            "rx angles +-pi/2, +-pi only": "pyQuil docs, gates page (Rigetti QPUs: RX with angle +-pi/2 or +-pi)",
            "price": _SDK_NOTES_PRICE,
        },
    },
}


# Gate names accepted outside verbatim boxes (IonQ: Braket Developer Guide, IonQ section).
_SUPPORTED_OPERATIONS = {
    "ionq": ["x", "y", "z", "rx", "ry", "rz", "h", "cnot", "s", "si", "t", "ti", "v", "vi", "xx", "yy", "zz", "swap"],
    "iqm": ["x", "y", "z", "rx", "ry", "rz", "h", "cnot", "cz", "s", "si", "t", "ti", "v", "vi", "swap", "iswap"],
    "rigetti": ["x", "y", "z", "rx", "ry", "rz", "h", "cnot", "cz", "s", "si", "t", "ti", "swap", "iswap"],
}


def _edges(spec: Mapping[str, Any]) -> list[tuple[int, int]]:
    if "edges" in spec:
        return [tuple(e) for e in spec["edges"]]
    if "grid" in spec:
        rows, cols = spec["grid"]
        out = []
        for r_, c in itertools.product(range(rows), range(cols)):
            q = r_ * cols + c
            if c + 1 < cols:
                out.append((q, q + 1))
            if r_ + 1 < rows:
                out.append((q, q + cols))
        return out
    return []


def _labels(spec: Mapping[str, Any]) -> list[int]:
    return list(spec.get("labels", range(spec["qubits"])))


def published_properties(device: str) -> dict[str, Any]:
    """Braket device-properties dict of a published twin (uniform median figures)."""
    try:
        spec = PUBLISHED[device]
    except KeyError:
        raise CalibrationError(f"no published figures for {device!r}; known: {', '.join(PUBLISHED)}") from None
    family, labels = spec["family"], _labels(spec)
    header = lambda name, v="1": {"name": name, "version": v}  # noqa: E731
    sources = "; ".join(f"{k}: {v}" for k, v in spec["sources"].items())
    native_ops = {"ionq": ["gpi", "gpi2", "ms"], "iqm": ["prx", "cz"], "rigetti": ["rx", "rz", "iswap"]}[family]
    summary = (
        f"qflhw published twin of {device}: published median figures applied uniformly to all qubits "
        f"and couplers (no per-qubit spread), read {PUBLISHED_DATE}. Sources: {sources}"
    )
    result_types = [
        {"name": "Sample", "observables": ["x", "y", "z", "h", "i"], "minShots": 1, "maxShots": spec["shots"][1]},
        {"name": "Expectation", "observables": ["x", "y", "z", "h", "i"], "minShots": 1, "maxShots": spec["shots"][1]},
        {"name": "Variance", "observables": ["x", "y", "z", "h", "i"], "minShots": 1, "maxShots": spec["shots"][1]},
        {"name": "Probability", "minShots": 1, "maxShots": spec["shots"][1]},
    ]
    out: dict[str, Any] = {
        "braketSchemaHeader": header(f"braket.device_schema.{family}.{family}_device_capabilities",
                                     "2" if family == "rigetti" else "1"),
        "service": {
            "braketSchemaHeader": header("braket.device_schema.device_service_properties"),
            "executionWindows": [{"executionDay": "Everyday", "windowStartHour": "00:00", "windowEndHour": "23:59"}],
            "shotsRange": spec["shots"],
            "deviceCost": {"price": spec["price_per_shot"], "unit": "shot"},
            "deviceDocumentation": {"imageUrl": None, "summary": summary, "externalDocumentationUrl": None},
            "deviceLocation": spec["region"],
            "updatedAt": f"{PUBLISHED_DATE}T00:00:00",
        },
        "action": {
            "braket.ir.openqasm.program": {
                "actionType": "braket.ir.openqasm.program",
                "version": ["1"],
                "supportedOperations": sorted(set(_SUPPORTED_OPERATIONS[family]) | set(native_ops)),
                "supportedPragmas": ["verbatim"],
                "forbiddenPragmas": [],
                "supportPhysicalQubits": family != "ionq",
                "supportsPartialVerbatimBox": family != "ionq",
                "requiresAllQubitsMeasurement": family == "ionq",
                "supportedResultTypes": result_types,
            },
            "braket.ir.openqasm.program_set": {
                "actionType": "braket.ir.openqasm.program_set",
                "version": ["1"],
                "maximumExecutables": 100,
                "maximumTotalShots": 200000,
            },
        },
        "paradigm": {
            "braketSchemaHeader": header("braket.device_schema.gate_model_qpu_paradigm_properties"),
            "qubitCount": spec["qubits"],
            "nativeGateSet": spec["native"],
            "connectivity": {"fullyConnected": family == "ionq", "connectivityGraph": {}},
        },
        "deviceParameters": {},
    }
    if family == "ionq":
        out["provider"] = {
            "braketSchemaHeader": header("braket.device_schema.ionq.ionq_provider_properties"),
            "fidelity": {"1Q": {"mean": spec["f1q"]}, "2Q": {"mean": spec["f2q"]}, "spam": {"mean": spec["fro"]}},
            "timing": {"T1": spec["t1"], "T2": spec["t2"], "1Q": spec["d1q"], "2Q": spec["d2q"],
                       "readout": spec["dro"], "reset": spec["reset"]},
        }
        rb = {"name": "RANDOMIZED_BENCHMARKING", "description": None}
        dur = lambda v: {"value": v, "standardError": None, "unit": "s"}  # noqa: E731
        fid = lambda v, t=rb: {"fidelityType": t, "fidelity": v, "standardError": None, "unit": "fraction"}  # noqa: E731
        out["standardized"] = {
            "braketSchemaHeader": header("braket.device_schema.standardized_gate_model_qpu_device_properties", "3"),
            "oneQubitProperties": None,
            "T1": dur(spec["t1"]),
            "T2": dur(spec["t2"]),
            "readoutFidelity": [fid(spec["fro"], None)],
            "readoutDuration": dur(spec["dro"]),
            "singleQubitGateDuration": dur(spec["d1q"]),
            "singleQubitFidelity": [fid(spec["f1q"])],
            "twoQubitGateFidelity": [fid(spec["f2q"])],
            "twoQubitGateDuration": dur(spec["d2q"]),
            "activeResetDuration": dur(spec["reset"]),
            "updatedAt": f"{PUBLISHED_DATE}T00:00:00",
        }
        return out
    graph: dict[str, list[str]] = {}
    for a, b in _edges(spec):  # both directions: the couplers are symmetric
        graph.setdefault(str(a), []).append(str(b))
        graph.setdefault(str(b), []).append(str(a))
    out["paradigm"]["connectivity"]["connectivityGraph"] = {
        k: sorted(v, key=int) for k, v in sorted(graph.items(), key=lambda kv: int(kv[0]))
    }
    rb1 = "SIMULTANEOUS_RANDOMIZED_BENCHMARKING" if family == "iqm" else "RANDOMIZED_BENCHMARKING"
    rb2 = "SIMULTANEOUS_INTERLEAVED_RANDOMIZED_BENCHMARKING" if family == "iqm" else "INTERLEAVED_RANDOMIZED_BENCHMARKING"
    gate2 = "cz" if family == "iqm" else "ISWAP"
    out["standardized"] = {
        "braketSchemaHeader": header("braket.device_schema.standardized_gate_model_qpu_device_properties"),
        "oneQubitProperties": {
            str(q): {
                "T1": {"value": spec["t1"], "standardError": None, "unit": "S"},
                "T2": {"value": spec["t2"], "standardError": None, "unit": "S"},
                "oneQubitFidelity": [
                    {"fidelityType": {"name": rb1, "description": None}, "fidelity": spec["f1q"], "standardError": None},
                    {"fidelityType": {"name": "READOUT", "description": None}, "fidelity": spec["fro"], "standardError": None},
                ],
            }
            for q in labels
        },
        "twoQubitProperties": {
            f"{a}-{b}": {
                "twoQubitGateFidelity": [
                    {"direction": None, "gateName": gate2, "fidelity": spec["f2q"], "standardError": None,
                     "fidelityType": {"name": rb2, "description": None}}
                ]
            }
            for a, b in _edges(spec)
        },
    }
    return out


def properties_path(device: str, directory: Path | None = None) -> Path:
    return Path(directory or data_dir("backends") / "braket") / f"{device}-properties.json"


def write_published_properties(directory: Path | None = None, *, overwrite: bool = False) -> list[Path]:
    """Write ``backends/braket/<device>-properties.json`` for every published twin.

    Each file is validated with the Braket schema before it is written. An existing file with
    other content is kept unless ``overwrite``.
    """
    written = []
    for device in PUBLISHED:
        text = json.dumps(published_properties(device), indent=1) + "\n"
        load_braket_properties(text)
        path = properties_path(device, directory)
        if path.exists() and path.read_text(encoding="utf-8") != text and not overwrite:
            raise CalibrationError(f"{path} exists with other content; pass overwrite=True to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def published_source(device: str, properties_file: Path | None = None) -> str:
    spec = PUBLISHED[device]
    where = f"backends/braket/{device}-properties.json" if properties_file is None else str(properties_file)
    return f"{where} ({spec['arn']}); figures from: " + "; ".join(
        f"{k}: {v}" for k, v in spec["sources"].items()
    )


def build_published_snapshots(
    root: Path | None = None, properties_dir: Path | None = None, *, save: bool = True
) -> dict[str, Calibration]:
    """Convert ``backends/braket/<device>-properties.json`` into published snapshots.

    Saves ``calibration/<device>/<PUBLISHED_DATE>.json`` (``root`` overrides the calibration
    folder); an existing identical snapshot is left alone, a different one is an error (snapshots
    are never overwritten).
    """
    out = {}
    for device in PUBLISHED:
        path = properties_path(device, properties_dir)
        if not path.exists():
            raise CalibrationError(f"{path}: no such properties file; run write_published_properties() first")
        cal = from_braket_properties(
            path.read_text(encoding="utf-8"),
            device=device,
            kind="published",
            source=published_source(device),
            date=PUBLISHED_DATE,
            retrieved=PUBLISHED_DATE,
            notes="published median figures applied uniformly to all qubits and couplers (no per-qubit spread)",
        )
        out[device] = cal
        if save:
            target = Path(root or calibration_root()) / device / f"{PUBLISHED_DATE}.json"
            if target.exists():
                if not Calibration.load(target).same_figures(cal):
                    raise CalibrationError(
                        f"{target} exists with other content; snapshots are never overwritten (delete it by hand)"
                    )
                continue
            cal.save(root)
    return out
