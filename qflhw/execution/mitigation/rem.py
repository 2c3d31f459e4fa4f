"""Readout-error mitigation by inverting per-qubit confusion matrices (Mitiq ``rem``).

The outcome distributions are multiplied by Mitiq's tensored inverse confusion matrix of the
qubits they were measured on (from the calibration snapshot, or measured matrices), then
expectations are recomputed. Corrected distributions are quasi-probabilities and are kept as
they are: projecting onto probabilities (Mitiq's ``closest_positive_distribution``) would bias
the expectation and cost one optimization per distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw.calibration.snapshot import Calibration
from qflhw.circuits.measure import expectations
from qflhw.circuits.transpile import Transpiled
from qflhw.devices.base import ItemResult
from qflhw.errors import ConfigError
from qflhw.execution.mitigation.base import Combined


@dataclass(frozen=True, eq=False)
class REM:
    """Readout-error mitigation settings: the calibration's confusion matrices, or measured ones.

    ``matrices`` (physical qubit -> 2x2 A[measured, prepared]) overrides the calibration's.
    """

    calibration: Calibration | None = None
    matrices: Mapping[int, np.ndarray] = field(default_factory=dict)
    name: str = "rem"

    def __post_init__(self) -> None:
        if self.calibration is None and not self.matrices:
            raise ConfigError("REM needs a calibration or measured confusion matrices")
        object.__setattr__(self, "matrices", {int(q): np.asarray(m, dtype=float) for q, m in self.matrices.items()})

    def matrix(self, qubit: int) -> np.ndarray:
        if qubit in self.matrices:
            return self.matrices[qubit]
        if self.calibration is None:
            raise ConfigError(f"REM: no confusion matrix for physical qubit {qubit}; pass one in matrices")
        return self.calibration.readout_matrix(qubit)

    def prepare(self, tc: Transpiled) -> PreparedREM:
        """The inverse confusion matrix for the qubits ``tc`` is measured on."""
        from mitiq.rem import generate_tensored_inverse_confusion_matrix

        measured = tc.final_physical
        mats = {q: self.matrix(q) for q in measured}
        for q, m in mats.items():
            if m[0, 0] + m[1, 1] - 1.0 < 0.05:
                raise ConfigError(
                    f"REM: readout of physical qubit {q} is nearly random (P(0|0) + P(1|1) - 1 = "
                    f"{m[0, 0] + m[1, 1] - 1.0:.3f}), so it cannot be inverted; lower noise_scale or use method 'zne'"
                )
        # Distribution index bit i is logical qubit i (measured on measured[i]); Mitiq's kron puts
        # its first matrix on the most significant bit, so the list runs from the last qubit.
        inverse = generate_tensored_inverse_confusion_matrix(len(measured), [mats[q] for q in reversed(measured)])
        gains = tuple(1.0 / (m[0, 0] + m[1, 1] - 1.0) ** 2 for m in (mats[q] for q in measured))
        return PreparedREM((tc,), measured, inverse, gains)


@dataclass(frozen=True, eq=False)
class PreparedREM:
    """REM for one circuit: its measured qubits, their inverse confusion matrix and gains."""

    variants: tuple[Transpiled, ...]
    measured: tuple[int, ...]
    inverse: np.ndarray
    qubit_gains: tuple[float, ...]  # variance amplification of a parity on each measured qubit

    @property
    def coefficients(self) -> np.ndarray:
        return np.ones(1)

    def correct(self, result: ItemResult) -> list[np.ndarray]:
        """Readout-corrected (quasi-)distributions, one per measurement basis."""
        if not result.distributions:
            raise ConfigError("REM needs outcome distributions but the device returned none; use mitigation.method = 'zne'")
        return [np.asarray(p, dtype=float) @ self.inverse.T for p in result.distributions]

    def gain(self, observables: Sequence[SparsePauliOp]) -> np.ndarray:
        """Variance amplification of each observable's estimate, to first order.

        Inverting a qubit's readout divides a parity by ``a00 + a11 - 1``; a Pauli term's
        estimator is amplified by the product over its qubits, an observable by its worst term.
        """
        out = []
        for op in observables:
            worst = 1.0
            for label in (p.to_label() for p in op.paulis):
                n = len(label)
                g = float(np.prod([self.qubit_gains[n - 1 - pos] for pos, ch in enumerate(label) if ch != "I"]))
                worst = max(worst, g)
            out.append(worst)
        return np.array(out)

    def values(self, result: ItemResult, observables: Sequence[SparsePauliOp]) -> tuple[np.ndarray, np.ndarray]:
        """Corrected expectations and their estimated variances, per binding and observable."""
        values, _ = expectations(self.correct(result), result.bases, observables)
        return values, result.stderr**2 * self.gain(observables)[None, :]

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> Combined:
        values, variance = self.values(results[0], observables)
        return Combined(values, variance)
