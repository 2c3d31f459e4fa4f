"""Fast, faithful noisy simulation on only the physical qubits a circuit uses.

The transpiled circuit is re-indexed onto its k used qubits; the calibration's Target is
restricted to them and Aer builds its noise model there (gate depolarizing + thermal relaxation,
exactly the channels it would build for the full device). All bindings and measurement bases go
into one ``AerSimulator(method="density_matrix")`` call that saves exact probabilities; the
snapshot's asymmetric readout matrices are applied to those; finite shots are then sampled from
the resulting distribution, which has the statistics of a real measurement record.

Parameter expressions left by the transpiler (``rz(w/2 + pi)``) are evaluated for all bindings
with numpy up front, so Aer binds plain numbers: that is most of Aer's own binding time saved.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import sympy
from qiskit.circuit import Parameter, ParameterExpression, QuantumCircuit

from qflhw.calibration import Calibration
from qflhw.devices.base import BatchItem, ItemResult
from qflhw.devices.measure import apply_readout, basis_rotation, expectations, measurement_bases
from qflhw.errors import ConfigError
from qflhw.target import noise_model, to_target
from qflhw.transpile import Transpiled


@dataclass(frozen=True, eq=False)
class _Prepared:
    """A measured compact circuit whose parameters are all fresh, plus how to compute them."""

    circuit: QuantumCircuit
    fresh: tuple[Parameter, ...]
    functions: tuple  # numpy callables, one per fresh parameter
    arguments: tuple[tuple[Parameter, ...], ...]  # logical parameters each function takes


def _freshen(circuit: QuantumCircuit) -> _Prepared:
    """Replace every parameter expression by a fresh parameter and a numpy function for it."""
    out = QuantumCircuit(*circuit.qregs, *circuit.cregs, name=circuit.name, global_phase=0.0)
    fresh, funcs, args = [], [], []
    for ci in circuit.data:
        op = ci.operation
        if any(isinstance(p, ParameterExpression) and p.parameters for p in op.params):
            params = []
            for p in op.params:
                if isinstance(p, ParameterExpression) and p.parameters:
                    f = Parameter(f"_q{len(fresh)}")
                    deps = tuple(sorted(p.parameters, key=lambda s: s.name))
                    expr = p.sympify()
                    symbols = [sympy.Symbol(d.name) for d in deps]
                    funcs.append(sympy.lambdify(symbols, expr, "numpy", dummify=True))
                    fresh.append(f)
                    args.append(deps)
                    params.append(f)
                else:
                    params.append(p)
            op = op.to_mutable()
            op.params = params
        out.append(op, ci.qubits, ci.clbits)
    return _Prepared(out, tuple(fresh), tuple(funcs), tuple(args))


_AER_UNKNOWN = frozenset({"iswap"})  # native gates of calibrated devices that Aer does not implement


def _aer_gates(circuit: QuantumCircuit) -> QuantumCircuit:
    """Fixed gates Aer lacks (Rigetti's iswap) as unitaries labelled with the gate's name.

    Aer's noise model matches a unitary by its label, so the gate keeps its calibrated noise.
    """
    if not any(ci.operation.name in _AER_UNKNOWN for ci in circuit.data):
        return circuit
    from qiskit.circuit.library import UnitaryGate

    out = circuit.copy_empty_like()
    for ci in circuit.data:
        op = ci.operation
        if op.name in _AER_UNKNOWN and not op.params:
            op = UnitaryGate(op.to_matrix(), label=op.name)
        out.append(op, ci.qubits, ci.clbits)
    return out


class CompactSimulator:
    """Evaluates batch items of one calibrated device; caches per circuit and qubit set."""

    def __init__(self, calibration: Calibration, *, threads: int = 2):
        self.calibration = calibration
        self.threads = threads
        self._noise: dict[tuple[int, ...], object] = {}
        self._prepared: dict[tuple[int, str], tuple[Transpiled, _Prepared]] = {}
        self._lock = threading.Lock()

    def noise_model(self, physical: tuple[int, ...]):
        if physical not in self._noise:
            self._noise[physical] = noise_model(to_target(self.calibration, physical))
        return self._noise[physical]

    def _prepare(self, tc: Transpiled, basis: str) -> _Prepared:
        key = (id(tc), basis)
        hit = self._prepared.get(key)
        if hit is None:
            circ = tc.compact.copy()
            target = to_target(self.calibration, tc.physical_qubits)
            circ.compose(basis_rotation(basis, target, circ.num_qubits, tc.final_positions), inplace=True)
            circ = _aer_gates(circ)
            circ.save_probabilities(qubits=list(tc.final_positions), label="p")
            hit = (tc, _freshen(circ))  # keep tc alive so its id stays unique
            self._prepared[key] = hit
        return hit[1]

    def probabilities(self, item: BatchItem) -> tuple[list[str], list[np.ndarray]]:
        """Exact noisy outcome probabilities per measurement basis, readout error included."""
        tc = item.circuit
        bases = measurement_bases(item.observables)
        column = {p: i for i, p in enumerate(item.parameters)}
        circuits, binds = [], []
        with self._lock:
            prepared = [self._prepare(tc, b) for b in bases]
        for prep in prepared:
            values = {}
            for f, fn, deps in zip(prep.fresh, prep.functions, prep.arguments):
                missing = [d.name for d in deps if d not in column]
                if missing:
                    raise ConfigError(f"no binding column for parameter(s) {missing} of {tc.logical.name!r}")
                v = np.asarray(fn(*[item.bindings[:, column[d]] for d in deps]), dtype=complex).real
                values[f] = np.broadcast_to(v, (item.num_bindings,)).tolist()
            circuits.append(prep.circuit)
            binds.append(values)
        from qiskit_aer import AerSimulator

        sim = AerSimulator(
            method="density_matrix",
            noise_model=self.noise_model(tc.physical_qubits),
            max_parallel_experiments=self.threads,
            max_parallel_threads=self.threads,
        )
        if not any(binds):  # nothing parameterized: one experiment per circuit, repeat it
            result = sim.run(circuits).result()
            raw = [np.tile(result.data(k)["p"], (item.num_bindings, 1)) for k in range(len(circuits))]
        else:
            result = sim.run(circuits, parameter_binds=binds).result()
            nb = item.num_bindings
            raw = [np.array([result.data(k * nb + i)["p"] for i in range(nb)]) for k in range(len(circuits))]
        matrices = [self.calibration.readout_matrix(p) for p in tc.final_physical]
        return bases, [apply_readout(r, matrices) for r in raw]

    def evaluate(self, item: BatchItem, shots: int | None, rng: np.random.Generator) -> ItemResult:
        """Expectation values: exact (``shots=None``) or estimated from sampled shots.

        A sampled item with its own ``shots`` uses those instead of the batch's.
        """
        if shots is not None and item.shots is not None:
            shots = item.shots
        bases, probs = self.probabilities(item)
        if shots is None:
            values, _ = expectations(probs, bases, item.observables)
            return ItemResult(values, np.zeros_like(values), bases, probs)
        sampled = []
        for p in probs:
            p = np.clip(p, 0.0, None)
            p /= p.sum(axis=1, keepdims=True)
            sampled.append(rng.multinomial(shots, p) / shots)
        values, var = expectations(sampled, bases, item.observables)
        return ItemResult(values, np.sqrt(var / shots), bases, sampled)
