"""Solving a one-hot assignment QUBO with QAOA: on qiskit's exact statevector or on a qflhw device.

The angles are tuned with scipy's COBYLA on the energy ``<H>`` (a few seeded starts, the best
kept), then the tuned circuit is sampled and the samples are the candidate assignments: the caller
scores them with its own objective (the QUBO is often an approximation of it) and keeps the best.
QAOA here is a sampler concentrated on good assignments, not an oracle: decoding by sampling is
the usual practice because ``<H>`` alone says little about the best bitstring.

``device=None`` runs on Aer's exact statevector simulator (noiseless): each evaluation is one
``AerSimulator(method="statevector")`` run that saves the output probabilities, and ``<H>`` is
their dot product with the QUBO's values (``H`` is diagonal); the final samples are Aer's own
shots. A qflhw :class:`Device` (a fake
twin) transpiles the circuit for itself and runs every energy evaluation and the final sampling as
provider jobs, with its calibrated noise; its samples may then break the one-hot constraint, and
such samples are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from qflhw.circuits.qaoa import assignment_ansatz, qubo_to_ising, qubo_values
from qflhw.devices.base import Batch, BatchItem, Device
from qflhw.errors import ConfigError

MAX_DEVICE_QUBITS = 10  # a density-matrix twin of more qubits takes too long per energy evaluation


@dataclass(frozen=True)
class QAOAResult:
    """Sampled assignments (each a tuple of chosen option per group) with their frequencies, best first by count."""

    samples: tuple[tuple[tuple[int, ...], int], ...]
    energy: float  # <H> + offset at the tuned angles
    angles: tuple[float, ...]
    evaluations: int
    probabilities: np.ndarray | None = None  # exact output distribution (statevector runs only)


class QAOASolver:
    """QAOA with an XY mixer for QUBOs over one-hot groups of qubits (see qflhw.circuits.qaoa)."""

    def __init__(
        self, *, reps: int = 2, shots: int = 256, maxiter: int = 80, restarts: int = 2, seed: int = 0, device: Device | None = None
    ):
        if reps < 1 or shots < 1 or maxiter < 1 or restarts < 1:
            raise ConfigError(f"QAOA needs reps, shots, maxiter and restarts >= 1, got {reps}, {shots}, {maxiter}, {restarts}")
        self.reps, self.shots, self.maxiter, self.restarts = reps, shots, maxiter, restarts
        self.seed = seed
        self.device = device
        self._jobs = 0

    def solve(
        self, Q: np.ndarray, groups: Sequence[Sequence[int]], *, constant: float = 0.0, initial: Sequence[float] | None = None
    ) -> QAOAResult:
        """Tune and sample QAOA for ``min x^T Q x`` with exactly one qubit of each group set.

        ``initial`` (angles of an earlier, similar instance, as :attr:`QAOAResult.angles`) replaces
        the linear-ramp first start: tuned QAOA angles transfer between instances of one problem
        family (Brandao et al., arXiv:1812.04170), so a warm start needs fewer iterations.
        """
        H, offset = qubo_to_ising(Q, constant)
        n = H.num_qubits
        if self.device is not None and n > MAX_DEVICE_QUBITS:
            raise ConfigError(
                f"QAOA on device {self.device.name}: {n} qubits is more than {MAX_DEVICE_QUBITS} for a noisy twin; "
                "use smaller blocks or the exact statevector"
            )
        ansatz = assignment_ansatz(H, groups, self.reps)
        if self.device is None:  # synthesize the W states and evolutions once, not at every evaluation
            from qiskit import transpile

            ansatz = transpile(ansatz, basis_gates=["u", "cx", "rz", "rzz", "rxx", "ryy"], optimization_level=1)
        params = list(ansatz.parameters)  # beta[0..p-1], gamma[0..p-1] (sorted by name)
        energy = self._energy_function(ansatz, H, qubo_values(Q, constant) - offset)
        rng = np.random.default_rng(self.seed)
        best = None
        evaluations = 0
        for start in range(self.restarts):
            if start == 0 and initial is not None:
                x0 = np.asarray(initial, dtype=float)
            else:
                x0 = self._initial_angles(params, rng, ramp=start == 0)
            res = minimize(energy, x0, method="COBYLA", options={"maxiter": self.maxiter, "rhobeg": 0.3})
            evaluations += int(res.nfev)
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        counts, probs = self._sample(ansatz, best.x)
        decoded: dict[tuple[int, ...], int] = {}
        for bitstring, c in counts.items():
            choice = _decode(bitstring, groups)
            if choice is not None:
                decoded[choice] = decoded.get(choice, 0) + c
        samples = tuple(sorted(decoded.items(), key=lambda kv: (-kv[1], kv[0])))
        return QAOAResult(samples, float(best.fun) + offset, tuple(float(v) for v in best.x), evaluations, probs)

    def _initial_angles(self, params, rng: np.random.Generator, *, ramp: bool) -> np.ndarray:  # noqa: ANN001
        """A linear ramp (gamma up, beta down: a discretized anneal, as in Zhou et al. arXiv:1812.01041)
        for the first start, random angles for the others."""
        p = self.reps
        out = []
        for par in params:
            layer = int(par.name.split("[")[1].rstrip("]")) if "[" in par.name else 0
            is_beta = par.name.startswith("β")
            if ramp:
                out.append(0.75 * (1 - (layer + 0.5) / p) if is_beta else 0.75 * (layer + 0.5) / p)
            else:
                out.append(rng.uniform(0.1, 0.8) if is_beta else rng.uniform(0.05, 0.8))
        return np.array(out)

    # ------------------------------------------------------------------ backends
    @staticmethod
    def _simulator(ansatz, *, measure: bool):  # noqa: ANN001, ANN205
        return _simulator_for(ansatz, measure)

    def _energy_function(self, ansatz, H, diagonal: np.ndarray):  # noqa: ANN001, ANN202
        if self.device is None:
            sim, circuit = self._simulator(ansatz, measure=False)
            params = list(ansatz.parameters)

            def exact(theta: np.ndarray) -> float:
                binds = [{p: [float(v)] for p, v in zip(params, theta)}]
                probs = np.asarray(sim.run(circuit, parameter_binds=binds).result().data(0)["p"])
                return float(probs @ diagonal)

            return exact
        tc = self.device.transpile(ansatz)
        parameters = tuple(ansatz.parameters)

        def on_device(theta: np.ndarray) -> float:
            item = BatchItem(tc, parameters, np.atleast_2d(theta), (H,))
            result = self.device.run(Batch((item,)), None)  # type: ignore[union-attr]
            self._jobs += 1
            return float(result.items[0].values[0, 0].real)

        return on_device

    def _sample(self, ansatz, theta: np.ndarray) -> tuple[dict[int, int], np.ndarray | None]:  # noqa: ANN001
        """Counts of each sampled bitstring (as an integer, bit i = qubit i), and exact probabilities if known."""
        n = ansatz.num_qubits
        if self.device is None:
            sim, circuit = self._simulator(ansatz, measure=True)
            binds = [{p: [float(v)] for p, v in zip(ansatz.parameters, theta)}]
            result = sim.run(circuit, parameter_binds=binds, shots=self.shots, seed_simulator=self.seed).result()
            probs = np.asarray(result.data(0)["p"])
            return {int(b, 16): int(c) for b, c in result.data(0)["counts"].items()}, probs
        from qiskit.quantum_info import SparsePauliOp

        tc = self.device.transpile(ansatz)
        z = SparsePauliOp("Z" * n)
        item = BatchItem(tc, tuple(ansatz.parameters), np.atleast_2d(theta), (z,))
        result = self.device.run(Batch((item,)), self.shots)
        self._jobs += 1
        freq = result.items[0].distributions[0][0]
        counts = np.rint(np.asarray(freq) * self.shots).astype(int)
        return {int(i): int(c) for i, c in enumerate(counts) if c > 0}, None


def _simulator_for(ansatz, measure: bool):  # noqa: ANN001, ANN202
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector", max_parallel_threads=1)
    circuit = ansatz.copy()
    circuit.save_probabilities(label="p")
    if measure:
        circuit.measure_all()
    return sim, circuit


def _decode(bits: int, groups: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """The option chosen in each group (position within the group), or None if a group is not one-hot."""
    out = []
    for g in groups:
        on = [j for j, q in enumerate(g) if (bits >> q) & 1]
        if len(on) != 1:
            return None
        out.append(on[0])
    return tuple(out)
