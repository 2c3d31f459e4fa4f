"""Gradients of expectation values with respect to circuit weights, from one batch.

Parameter shift (exact for the gates we use): each weight must drive exactly one gate of the
logical circuit, so shifting the weight shifts that gate. RX/RY/RZ (and RXX/RYY/RZZ) take the
two-term rule; controlled rotations (CRX/CRY/CRZ), whose generator has eigenvalues 0 and +-1/2,
take the four-term rule. SPSA estimates the whole Jacobian from two bindings per data point.
All shifted bindings of all data points go into one matrix, evaluated as one job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit

from qflhw.errors import ConfigError

_TWO_TERM = {"rx", "ry", "rz", "rxx", "ryy", "rzz", "p", "u1"}
_FOUR_TERM = {"crx", "cry", "crz", "cp"}
_C_PLUS = (np.sqrt(2) + 1) / (4 * np.sqrt(2))
_C_MINUS = (np.sqrt(2) - 1) / (4 * np.sqrt(2))
TWO_TERM_RULE = ((np.pi / 2, 0.5), (-np.pi / 2, -0.5))
FOUR_TERM_RULE = (
    (np.pi / 2, _C_PLUS),
    (-np.pi / 2, -_C_PLUS),
    (3 * np.pi / 2, -_C_MINUS),
    (-3 * np.pi / 2, _C_MINUS),
)


def shift_rules(circuit: QuantumCircuit, weights: Sequence[Parameter]) -> list[tuple[tuple[float, float], ...]]:
    """The (shift, coefficient) rule of each weight, checked against the circuit's gates."""
    uses: dict[Parameter, list[str]] = {w: [] for w in weights}
    for ci in circuit.data:
        for p in ci.operation.params:
            if isinstance(p, Parameter) and p in uses:
                uses[p].append(ci.operation.name)
            elif hasattr(p, "parameters") and uses.keys() & set(p.parameters):
                raise ConfigError(
                    f"weight(s) {sorted(x.name for x in uses.keys() & set(p.parameters))} appear inside an "
                    f"expression in gate {ci.operation.name!r}; give each trainable gate its own plain parameter"
                )
    rules: list[tuple[tuple[float, float], ...]] = []
    for w in weights:
        gates = uses[w]
        if len(gates) != 1:
            raise ConfigError(
                f"weight {w.name} drives {len(gates)} gates; parameter shift needs exactly one gate per weight"
            )
        if gates[0] in _TWO_TERM:
            rules.append(TWO_TERM_RULE)
        elif gates[0] in _FOUR_TERM:
            rules.append(FOUR_TERM_RULE)
        else:
            raise ConfigError(f"weight {w.name} drives gate {gates[0]!r}, which has no parameter-shift rule here")
    return rules


@dataclass(frozen=True)
class ShiftPlan:
    """Bindings for values and parameter-shift gradients of ``n`` data points, and how to combine."""

    bindings: np.ndarray  # rows: n base rows, then every shifted row
    n_points: int
    weight_columns: tuple[int, ...]
    rules: tuple[tuple[tuple[float, float], ...], ...]

    def combine(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, n_obs), jacobian (n, n_obs, n_weights)) from the evaluated rows."""
        n = self.n_points
        base = values[:n]
        jac = np.zeros((n, values.shape[1], len(self.weight_columns)))
        row = n
        for k, rule in enumerate(self.rules):
            for _shift, coeff in rule:
                jac[:, :, k] += coeff * values[row : row + n]
                row += n
        return base, jac


def parameter_shift_plan(
    base: np.ndarray, weight_columns: Sequence[int], rules: Sequence[tuple[tuple[float, float], ...]]
) -> ShiftPlan:
    """All bindings needed for the values and exact gradients at each row of ``base``."""
    base = np.asarray(base, dtype=float)
    blocks = [base]
    for col, rule in zip(weight_columns, rules):
        for shift, _coeff in rule:
            b = base.copy()
            b[:, col] += shift
            blocks.append(b)
    return ShiftPlan(np.concatenate(blocks), base.shape[0], tuple(weight_columns), tuple(rules))


@dataclass(frozen=True)
class SPSAPlan:
    """Bindings for values and a simultaneous-perturbation estimate of the Jacobian."""

    bindings: np.ndarray
    n_points: int
    weight_columns: tuple[int, ...]
    delta: np.ndarray  # (n_weights,) of +-1
    epsilon: float

    def combine(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n_points
        plus, minus = values[n : 2 * n], values[2 * n : 3 * n]
        slope = (plus - minus) / (2 * self.epsilon)  # (n, n_obs)
        return values[:n], slope[:, :, None] * self.delta[None, None, :]


def spsa_plan(
    base: np.ndarray, weight_columns: Sequence[int], rng: np.random.Generator, epsilon: float = 0.1
) -> SPSAPlan:
    """Two perturbed bindings per data point: base +- epsilon * delta on the weights."""
    base = np.asarray(base, dtype=float)
    delta = rng.choice([-1.0, 1.0], size=len(weight_columns))
    plus, minus = base.copy(), base.copy()
    plus[:, list(weight_columns)] += epsilon * delta
    minus[:, list(weight_columns)] -= epsilon * delta
    return SPSAPlan(np.concatenate([base, plus, minus]), base.shape[0], tuple(weight_columns), delta, epsilon)
