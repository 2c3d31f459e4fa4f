"""Gradients of expectation values with respect to circuit weights, from one batch.

Parameter shift (exact for the gates we use): RX/RY/RZ (and RXX/RYY/RZZ, P) take the two-term
rule; controlled rotations (CRX/CRY/CRZ, CP), whose generator has eigenvalues 0 and +-1/2, take
the four-term rule. When each weight drives exactly one gate as a plain parameter (the built-in
ansätze), shifting the weight shifts that gate. Otherwise (:func:`shift_circuit`) every gate angle
that depends on a weight becomes its own parameter, each is shifted, and the chain rule (the
product rule over a weight's occurrences, times d angle / d weight for angles such as ``2*w`` or
``x*w``) turns their derivatives into the weights' (Crooks, arXiv:1905.13311; Schuld et al.,
arXiv:1811.11184). SPSA estimates the whole Jacobian from two bindings per data point and needs
no gate structure. All shifted bindings of all data points go into one matrix, evaluated as one job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from qiskit.circuit import Parameter, ParameterExpression, ParameterVector, QuantumCircuit

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


def _rule(gate: str, where: str) -> tuple[tuple[float, float], ...]:
    if gate in _TWO_TERM:
        return TWO_TERM_RULE
    if gate in _FOUR_TERM:
        return FOUR_TERM_RULE
    raise ConfigError(
        f"{where} drives gate {gate!r}, which has no parameter-shift rule here; use training.gradient = 'spsa' "
        "(it needs no gate structure) or build the circuit from rx/ry/rz/rxx/ryy/rzz/p and crx/cry/crz/cp"
    )


@dataclass(frozen=True, eq=False)
class ShiftCircuit:
    """The circuit parameter shift runs, and how its binding columns follow from (inputs, weights).

    ``angles`` is None when the model circuit itself is shifted (each weight drives one gate as a
    plain parameter): then ``parameters`` are the model's and the shifted columns its weights.
    Otherwise ``circuit`` gives every weight-dependent gate angle its own parameter, ``angles``
    maps base rows (inputs, then weights) to rows over ``parameters`` (inputs, then angles) and
    ``chain`` gives d angle / d weight per row, shape (n, n_angles, n_weights).
    """

    circuit: QuantumCircuit
    parameters: tuple
    shifted: tuple[int, ...]
    rules: tuple[tuple[tuple[float, float], ...], ...]
    angles: Callable[[np.ndarray], np.ndarray] | None = None
    chain: Callable[[np.ndarray], np.ndarray] | None = None

    def plan(self, base: np.ndarray) -> ShiftPlan:
        """The parameter-shift bindings of ``base`` rows (inputs, then weights) for this circuit."""
        base = np.asarray(base, dtype=float)
        if self.angles is None or self.chain is None:
            return parameter_shift_plan(base, self.shifted, self.rules)
        return parameter_shift_plan(self.angles(base), self.shifted, self.rules, chain=self.chain(base))

    def rows(self, base: np.ndarray) -> np.ndarray:
        """Binding rows of ``circuit`` for base rows (inputs, then weights)."""
        return np.asarray(base, dtype=float) if self.angles is None else self.angles(np.asarray(base, dtype=float))


def shift_circuit(circuit: QuantumCircuit, inputs: Sequence[Parameter], weights: Sequence[Parameter]) -> ShiftCircuit:
    """How parameter shift differentiates ``circuit`` with respect to ``weights`` (see the module)."""
    weight_set = set(weights)
    uses: dict[Parameter, int] = {w: 0 for w in weights}
    plain = True
    occurrences = []  # (instruction index, param index, expression)
    for i, ci in enumerate(circuit.data):
        for j, p in enumerate(ci.operation.params):
            if not isinstance(p, ParameterExpression) or not weight_set & set(p.parameters):
                continue
            names = sorted(x.name for x in weight_set & set(p.parameters))
            where = f"weight {names[0]}" if len(names) == 1 else f"weights {names}"
            rule = _rule(ci.operation.name, f"{where} (instruction {i})")
            if len(ci.operation.params) != 1:
                raise ConfigError(f"{where} drives gate {ci.operation.name!r} with several angles; use training.gradient = 'spsa'")
            occurrences.append((i, j, p, rule))
            if isinstance(p, Parameter):
                uses[p] += 1
            else:
                plain = False
    if plain and all(n == 1 for n in uses.values()):
        n_in = len(inputs)
        return ShiftCircuit(circuit, tuple(inputs) + tuple(weights), tuple(range(n_in, n_in + len(weights))),
                            tuple(shift_rules(circuit, weights)))
    unused = [w.name for w, n in uses.items() if n == 0 and all(w not in set(e.parameters) for _, _, e, _ in occurrences)]
    if unused:
        raise ConfigError(f"weight(s) {unused} drive no gate of circuit {circuit.name!r}; remove them or use them")
    theta = ParameterVector("qflhw_angle", len(occurrences))
    replace = {(i, j): theta[k] for k, (i, j, _, _) in enumerate(occurrences)}
    out = circuit.copy_empty_like()
    for i, ci in enumerate(circuit.data):
        op = ci.operation
        if any((i, j) in replace for j in range(len(op.params))):
            op = op.to_mutable()
            op.params = [replace.get((i, j), p) for j, p in enumerate(op.params)]
        out.append(op, ci.qubits, ci.clbits)
    base_params = tuple(inputs) + tuple(weights)
    symbols = [sympy.Symbol(f"a{k}") for k in range(len(base_params))]
    rename = {sympy.Symbol(p.name): s for p, s in zip(base_params, symbols)}
    exprs = [e.sympify().xreplace(rename) for _, _, e, _ in occurrences]
    stray = sorted({str(s) for e in exprs for s in e.free_symbols} - {str(s) for s in symbols})
    if stray:
        raise ConfigError(f"circuit {circuit.name!r}: gate angles use parameter(s) {stray} that are neither inputs nor weights")
    w_symbols = symbols[len(inputs) :]
    value_fn = sympy.lambdify(symbols, exprs, "numpy")
    grad_fn = sympy.lambdify(symbols, [[sympy.diff(e, w) for w in w_symbols] for e in exprs], "numpy")
    n_in, n_ang, n_w = len(inputs), len(exprs), len(weights)

    def angles(base: np.ndarray) -> np.ndarray:
        cols = [np.broadcast_to(np.asarray(v, dtype=float), (len(base),)) for v in value_fn(*base.T)]
        return np.hstack([base[:, :n_in], np.stack(cols, axis=1)])

    def chain(base: np.ndarray) -> np.ndarray:
        d = grad_fn(*base.T)
        return np.stack(
            [np.stack([np.broadcast_to(np.asarray(d[k][j], dtype=float), (len(base),)) for j in range(n_w)], axis=1)
             for k in range(n_ang)],
            axis=1,
        )

    return ShiftCircuit(out, tuple(inputs) + tuple(theta), tuple(range(n_in, n_in + n_ang)),
                        tuple(r for _, _, _, r in occurrences), angles, chain)


@dataclass(frozen=True, eq=False)
class ShiftPlan:
    """Bindings for values and parameter-shift gradients of ``n`` data points, and how to combine.

    ``chain`` (n, n_shifted, n_weights), when given, turns the derivatives with respect to the
    shifted columns into derivatives with respect to the weights (see :func:`shift_circuit`).
    """

    bindings: np.ndarray  # rows: n base rows, then every shifted row
    n_points: int
    weight_columns: tuple[int, ...]
    rules: tuple[tuple[tuple[float, float], ...], ...]
    chain: np.ndarray | None = None

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
        if self.chain is not None:
            jac = np.einsum("nok,nkw->now", jac, self.chain)
        return base, jac


def parameter_shift_plan(
    base: np.ndarray,
    weight_columns: Sequence[int],
    rules: Sequence[tuple[tuple[float, float], ...]],
    chain: np.ndarray | None = None,
) -> ShiftPlan:
    """All bindings needed for the values and exact gradients at each row of ``base``."""
    base = np.asarray(base, dtype=float)
    blocks = [base]
    for col, rule in zip(weight_columns, rules):
        for shift, _coeff in rule:
            b = base.copy()
            b[:, col] += shift
            blocks.append(b)
    return ShiftPlan(np.concatenate(blocks), base.shape[0], tuple(weight_columns), tuple(rules), chain)


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
