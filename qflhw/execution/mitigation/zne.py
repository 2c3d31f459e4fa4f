"""Zero-noise extrapolation with Mitiq, as expand-then-combine around one provider job.

The *compact* transpiled circuit (physical qubits kept) is folded by Mitiq (two-qubit gates
only by default, or globally, see :mod:`~qflhw.execution.mitigation.folding`), put back into the
device's native gates without moving a qubit, and the scale factors' values are extrapolated to
zero noise by Mitiq's factories (Richardson, linear, exponential). With ``readout=REM(...)`` every
scale factor's readout is corrected before extrapolating (ZNE + REM).

An exponential fit that fails or runs away falls back to the Richardson value; that is counted in
:attr:`Combined.fallbacks` (reported per round in ``metrics.csv``) and warned about with
:class:`~qflhw.errors.ZNEFallbackWarning`, never kept silently.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw.calibration.snapshot import Calibration
from qflhw.calibration.target import to_target
from qflhw.circuits.transpile import Transpiled
from qflhw.config.spec import check_zne
from qflhw.devices.base import ItemResult
from qflhw.errors import ConfigError, ZNEFallbackWarning
from qflhw.execution.mitigation.base import Combined
from qflhw.execution.mitigation.folding import fold
from qflhw.execution.mitigation.rem import REM, PreparedREM


def _factory(extrapolation: str):
    from mitiq.zne.inference import ExpFactory, LinearFactory, RichardsonFactory

    return {"richardson": RichardsonFactory, "linear": LinearFactory, "exponential": ExpFactory}[extrapolation]


def extrapolation_weights(scale_factors: Sequence[float], extrapolation: str = "richardson") -> np.ndarray:
    """w with zero-noise value = sum_k w_k * value_k, from Mitiq's own ``extrapolate``.

    Richardson and linear (least-squares) extrapolation are linear in the values, so extrapolating
    each unit vector gives the weights exactly; one dot product then extrapolates a whole batch.
    Exponential extrapolation is not linear: its Richardson weights are returned as the
    sensitivity used for shot allocation and overhead estimates.
    """
    kind = "richardson" if extrapolation == "exponential" else extrapolation
    factory = _factory(kind)
    sf = [float(s) for s in scale_factors]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([float(factory.extrapolate(sf, list(e))) for e in np.eye(len(sf))])


@dataclass(frozen=True, eq=False)
class ZNE:
    """Zero-noise extrapolation settings; optionally with readout mitigation (``readout``)."""

    calibration: Calibration
    scale_factors: Sequence[float] = (1.0, 3.0, 5.0)
    extrapolation: str = "richardson"
    folding: str = "two-qubit"
    seed: int = 0
    readout: REM | None = None

    def __post_init__(self) -> None:
        check_zne(self.scale_factors, self.extrapolation, self.folding)
        object.__setattr__(self, "scale_factors", tuple(float(s) for s in self.scale_factors))

    @property
    def name(self) -> str:
        return "zne+rem" if self.readout else "zne"

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """Extrapolation weights of the scale factors (see :func:`extrapolation_weights`)."""
        return extrapolation_weights(self.scale_factors, self.extrapolation)

    def fold(self, tc: Transpiled, scale: float) -> QuantumCircuit:
        """The compact circuit folded to ``scale``, re-translated to native gates in place.

        Optimization level 0 with a trivial layout and no routing on the Target restricted to
        the circuit's own physical qubits: level 1 would cancel the folds, and any layout or
        routing would move qubits.
        """
        from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager

        folded = fold(
            tc.compact, scale, method=self.folding, seed=self.seed, native=frozenset(self.calibration.native_gates)
        )
        pm = generate_preset_pass_manager(
            optimization_level=0,
            target=to_target(self.calibration, tc.physical_qubits),
            layout_method="trivial",
            routing_method="none",
        )
        native = pm.run(folded)
        out = QuantumCircuit(*tc.compact.qregs, name=tc.compact.name, global_phase=native.global_phase)
        for ci in native.data:  # drop the layout the pass manager attached; keep the gates
            out.append(ci.operation, [native.find_bit(q).index for q in ci.qubits])
        return out

    def prepare(self, tc: Transpiled) -> PreparedZNE:
        readout = self.readout.prepare(tc) if self.readout else None
        variants = tuple(_with_isa(tc.with_compact(self.fold(tc, s), tag=f"scale={s:g}")) for s in self.scale_factors)
        return PreparedZNE(variants, tuple(self.scale_factors), self.extrapolation, self.weights, readout)


@dataclass(frozen=True, eq=False)
class PreparedZNE:
    """ZNE for one circuit: one folded variant per scale factor, and the extrapolation."""

    variants: tuple[Transpiled, ...]
    scale_factors: tuple[float, ...]
    extrapolation: str
    weights: np.ndarray
    readout: PreparedREM | None = None

    @property
    def coefficients(self) -> np.ndarray:
        return self.weights.copy()

    def _values(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> tuple[np.ndarray, np.ndarray]:
        if len(results) != len(self.scale_factors):
            raise ConfigError(f"ZNE expects {len(self.scale_factors)} results (one per scale factor), got {len(results)}")
        if self.readout:
            pairs = [self.readout.values(r, observables) for r in results]
            return np.stack([v for v, _ in pairs]), np.stack([s for _, s in pairs])
        return np.stack([r.values for r in results]), np.stack([r.stderr**2 for r in results])

    def extrapolate(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Zero-noise values from ``values[k]`` measured at ``scale_factors[k]``, and the number
        of exponential fits that fell back to the Richardson value."""
        values = np.asarray(values, dtype=float)
        linear = np.tensordot(self.weights, values, axes=1)
        if self.extrapolation != "exponential":
            return linear, 0
        from mitiq.zne.inference import ExpFactory, ExtrapolationError

        out = linear.copy()
        flat_vals = values.reshape(len(self.scale_factors), -1)
        flat_out = out.reshape(-1)
        fallbacks = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(flat_vals.shape[1]):
                try:
                    v = float(ExpFactory.extrapolate(self.scale_factors, flat_vals[:, j].tolist()))
                except (ExtrapolationError, ValueError, np.linalg.LinAlgError):
                    v = float("nan")
                if np.isfinite(v) and abs(v) <= 1.5 * max(1.0, float(np.max(np.abs(flat_vals[:, j])))):
                    flat_out[j] = v
                else:  # a failed or runaway fit: keep the Richardson value
                    fallbacks += 1
        if fallbacks:
            warnings.warn(
                f"ZNE: {fallbacks} of {flat_vals.shape[1]} exponential fits failed or ran away and fell back to "
                "Richardson; consider mitigation.extrapolation = 'linear'",
                ZNEFallbackWarning,
                stacklevel=2,
            )
        return out, fallbacks

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> Combined:
        values, variance = self._values(results, observables)
        extrapolated, fallbacks = self.extrapolate(values)
        # variance of the extrapolated values: linear propagation through the weights
        return Combined(extrapolated, np.tensordot(self.weights**2, variance, axes=1), fallbacks)


def _with_isa(tc: Transpiled) -> Transpiled:
    """``tc`` whose full-device ``isa`` is its (folded) compact circuit placed back on the device.

    A provider that submits ``isa`` then runs the folded circuit; the layout (for observables)
    is the original one, since folding moves no qubit.
    """
    isa = tc.isa.copy_empty_like()
    isa.global_phase = tc.compact.global_phase
    for ci in tc.compact.data:
        isa.append(ci.operation, [tc.physical_qubits[tc.compact.find_bit(q).index] for q in ci.qubits])
    return dataclasses.replace(tc, isa=isa)
