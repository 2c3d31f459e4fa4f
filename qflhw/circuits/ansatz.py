"""Encoders, ansätze and observables for variational QFL models.

Every trainable gate gets its own parameter, so shifting one weight shifts exactly one gate and
the parameter-shift rule of that gate applies (see :mod:`qflhw.execution.gradients`). Inputs are named
``x[i]`` and weights ``w[j]``; bindings always list inputs first, then weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.config.spec import ANSATZE, Encoding
from qflhw.errors import ConfigError


@dataclass(frozen=True, eq=False)
class ModelCircuit:
    """A parameterized circuit with its input and weight parameters in binding order."""

    circuit: QuantumCircuit
    inputs: tuple
    weights: tuple

    @property
    def parameters(self) -> tuple:
        """All parameters in the order a binding row lists them: inputs, then weights."""
        return self.inputs + self.weights

    @property
    def num_qubits(self) -> int:
        return self.circuit.num_qubits


def angle_encoding(qc: QuantumCircuit, x: Sequence, gate: Encoding = "ry") -> None:
    """One rotation per qubit whose angle is the feature: x[i] on qubit i."""
    for q, xi in enumerate(x):
        getattr(qc, gate)(xi, q)


def _rot_crx_layer(qc: QuantumCircuit, w, start: int) -> int:
    """RX, RY, RZ on every qubit, then a ring of CRX(i -> i+1): the seed case study's layer."""
    n = qc.num_qubits
    k = start
    for q in range(n):
        qc.rx(w[k], q)
        qc.ry(w[k + 1], q)
        qc.rz(w[k + 2], q)
        k += 3
    pairs = [(q, (q + 1) % n) for q in range(n)] if n > 2 else [(0, 1)] if n == 2 else []
    for c, t in pairs:
        qc.crx(w[k], c, t)
        k += 1
    return k


def _hea_layer(qc: QuantumCircuit, w, start: int) -> int:
    """RY and RZ on every qubit, then a CZ ladder: cheap on superconducting hardware."""
    n = qc.num_qubits
    k = start
    for q in range(n):
        qc.ry(w[k], q)
        qc.rz(w[k + 1], q)
        k += 2
    for q in range(n - 1):
        qc.cz(q, q + 1)
    return k


def weights_per_layer(ansatz: str, n: int) -> int:
    ring = n if n > 2 else (1 if n == 2 else 0)
    return {"rot-crx": 3 * n + ring, "hardware-efficient": 2 * n, "reuploading": 3 * n + ring}[ansatz]


def build(ansatz: str, num_qubits: int, layers: int, encoding: Encoding = "ry") -> ModelCircuit:
    """Encoder + ansatz. ``reuploading`` repeats the encoder before every rot-crx layer."""
    if ansatz not in ANSATZE:
        raise ConfigError(f"unknown ansatz {ansatz!r}; choose one of {', '.join(ANSATZE)}")
    if num_qubits < 1 or layers < 1:
        raise ConfigError(f"ansatz needs at least 1 qubit and 1 layer, got {num_qubits} and {layers}")
    x = ParameterVector("x", num_qubits)
    w = ParameterVector("w", layers * weights_per_layer(ansatz, num_qubits))
    qc = QuantumCircuit(num_qubits, name=f"{ansatz}-{num_qubits}q{layers}l")
    k = 0
    for layer in range(layers):
        if layer == 0 or ansatz == "reuploading":
            angle_encoding(qc, x, encoding)
        k = (_hea_layer if ansatz == "hardware-efficient" else _rot_crx_layer)(qc, w, k)
    return ModelCircuit(qc, tuple(x), tuple(w))


def z_observables(num_qubits: int) -> list[SparsePauliOp]:
    """Z on each qubit; observable i is Z on logical qubit i."""
    return [SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits) for q in range(num_qubits)]


def observables(labels: Sequence[str | SparsePauliOp] | None, num_qubits: int) -> list[SparsePauliOp]:
    """User observables as SparsePauliOps: qiskit labels (``"IIZX"``, qubit 0 rightmost) or ops."""
    if not labels:
        return z_observables(num_qubits)
    out = []
    for lab in labels:
        op = lab if isinstance(lab, SparsePauliOp) else SparsePauliOp(str(lab))
        if op.num_qubits != num_qubits:
            raise ConfigError(f"observable {lab!s} acts on {op.num_qubits} qubits; the model has {num_qubits}")
        if any(abs(c.imag) > 1e-12 for c in op.coeffs):
            raise ConfigError(f"observable {lab!s} is not Hermitian (complex coefficient)")
        out.append(op)
    return out
