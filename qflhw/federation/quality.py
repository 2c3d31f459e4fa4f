"""What each client's device makes of a spec's circuit: layout, depth, two-qubit gates, ESP.

``qflhw calibration heterogeneity SPEC`` prints it. Every client's circuit is transpiled on the
offline stand-in of its device, exactly as its device would transpile it in a run (same
calibration, noise scale and seed), without connecting anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from qflhw.config.spec import JobSpec
from qflhw.federation.assembly import Assembly


@dataclass(frozen=True)
class ClientQuality:
    """What one client's device makes of the spec's circuit."""

    client: str
    device: str
    calibration_id: str
    noise_scale: float
    physical_qubits: tuple[int, ...]
    depth: int
    two_qubit_gates: int
    esp: float


def client_quality(spec: JobSpec) -> list[ClientQuality]:
    """Transpile the spec's model circuit for every client as its device would."""
    assembly = Assembly(spec)
    out = []
    for k, cs in enumerate(spec.clients):
        device = assembly.offline_device(k)
        tc = device.transpile(assembly.model.circuit)
        out.append(
            ClientQuality(
                cs.name, cs.device, device.calibration.id, cs.noise_scale, tc.physical_qubits, tc.depth,
                tc.two_qubit_gates, tc.esp,
            )
        )
    return out


def format_quality(rows: list[ClientQuality]) -> str:
    lines = [
        f"{'client':<12} {'device':<18} {'calibration':<34} {'noise':>5}  {'physical qubits':<20} "
        f"{'depth':>5} {'2q':>4} {'ESP':>6}"
    ]
    for r in rows:
        lines.append(
            f"{r.client:<12} {r.device:<18} {r.calibration_id:<34} {r.noise_scale:>5g}  "
            f"{str(list(r.physical_qubits)):<20} {r.depth:>5} {r.two_qubit_gates:>4} {r.esp:>6.3f}"
        )
    return "\n".join(lines)
