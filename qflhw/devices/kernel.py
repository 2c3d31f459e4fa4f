"""Batched noisy simulation of one scheduled circuit: parameter bindings are a batch axis.

A :class:`Program` is compiled once per scheduled circuit (:meth:`Program.compile`) and then
evaluates any number of bindings at once (:meth:`Program.probabilities`).

Representation. The n-qubit density matrix is its Pauli vector ``r_P = Tr(P rho)`` over
``P`` in ``{I, X, Y, Z}^n``: a real tensor with one axis of length 4 per qubit and the batch axis
last. Channels are Pauli transfer matrices (qiskit's ``PTM``, real: ``r' = R r``). Real
arithmetic is 4x cheaper than complex superoperators on ``rho``, and a Z-basis readout needs
only the I and Z components.

Compilation (everything that does not depend on the binding):

1. The schedule (:mod:`qflhw.circuits.schedule`) is walked in circuit order: each gate becomes the
   ideal gate followed by its calibrated channel (:mod:`qflhw.calibration.channels`); each idle
   window (a delay after the qubit's first operation) becomes its thermal relaxation. Fixed gates
   and all noise become fixed PTMs.
2. Parameterized one-qubit gates become batched axis rotations: a Givens rotation of two of the
   qubit's Pauli components per binding (``rz`` mixes X/Y, ``rx`` Y/Z, ``ry`` Z/X; ``r(theta, phi)`` is
   ``Rz(phi) Rx(theta) Rz(-phi)``, ``u`` is ``Rz Ry Rz``; fixed angles become fixed PTMs). A
   parameterized gate ``exp(-i theta/2 P)`` on more qubits (``rzz``, ``rxx``) has the PTM
   ``C0 + cos(theta) C1 + sin(theta) C2``, three fixed matrices found from qiskit's PTM at three
   angles and checked at a fourth; any other parameterized gate gets qiskit's matrix per binding.
   Angles are affine in the bindings (``A @ x + c``), read from each expression's gradient and
   checked at a probe point; other expressions are evaluated with sympy.
3. Exact pruning: a parameterized z rotation is dropped where everything before it on its qubit
   commutes with z rotations (the state is still z-symmetric there, e.g. ``|0>``) or everything
   after it does (the Z readout cannot see it); commutation is tested on the PTMs.
4. Fusion: consecutive fixed PTMs are merged greedily into blocks of at most two qubits, so each
   binding-independent run costs one 4x4 or 16x16 matrix product per binding.

Evaluation applies the blocks with ``tensordot``, the rotations elementwise, then the readout: a
map on each measured qubit's (I, Z) components (``Z' = (1 - p01 - p10) Z + (p01 - p10) I``, the
calibrated asymmetric assignment matrix), or on a pair's where a correlated two-qubit matrix is
switched on; unmeasured qubits are traced out (their I component). Bindings go in chunks of 256 so
the state (``4^n x 256`` doubles) stays in cache, with BLAS limited to one thread meanwhile:
multi-threaded BLAS on 16x16 matrices only waits for busy cores.

Optional ZZ crosstalk (``zz``): for each coupled pair idling together, the delays are split where
the other qubit's idling starts or stops, and after each interval both idle the conditional phase
``exp(-i 2 pi zz t |11><11|)`` is applied (the elements are then ordered by start time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from qiskit.circuit import Gate, ParameterExpression
from qiskit.quantum_info import PTM, Operator

from qflhw.calibration.channels import ChannelTable
from qflhw.circuits.schedule import Schedule

_I4 = np.eye(4)
_PAIRS = {"z": (1, 2), "x": (2, 3), "y": (3, 1)}
"""Pauli components (I=0, X=1, Y=2, Z=3) that a rotation about each axis mixes, in rotation order."""
_H = np.array([[0.5, 0.5], [0.5, -0.5]])  # (r_I, r_Z) of one qubit -> (p0, p1)
CHUNK = 256


def _rot_ptm(axis: str, theta: float) -> np.ndarray:
    """PTM of ``exp(-i theta/2 P)`` about ``axis``: ``r_a' = c r_a - s r_b``, ``r_b' = s r_a + c r_b``."""
    a, b = _PAIRS[axis]
    c, s = np.cos(theta), np.sin(theta)
    m = np.eye(4)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


def _rotations(op: Gate) -> list[tuple[str, Any, int]] | None:
    """A one-qubit gate as axis rotations ``(axis, angle, sign)`` in the order they act (global
    phase dropped), or None for gates without such a form."""
    p = op.params
    name = op.name
    if name in ("rx", "ry", "rz"):
        return [(name[1], p[0], 1)]
    if name in ("p", "u1"):
        return [("z", p[0], 1)]
    if name == "r":  # exp(-i theta/2 (cos phi X + sin phi Y)) = Rz(phi) Rx(theta) Rz(-phi)
        return [("z", p[1], -1), ("x", p[0], 1), ("z", p[1], 1)]
    if name in ("u", "u3"):  # Rz(phi) Ry(theta) Rz(lambda)
        return [("z", p[2], 1), ("y", p[0], 1), ("z", p[1], 1)]
    if name == "u2":  # u3(pi/2, phi, lambda)
        return [("z", p[1], 1), ("y", np.pi / 2, 1), ("z", p[0], 1)]
    return None


def _embed(matrix: np.ndarray, sub: tuple[int, ...], full: tuple[int, ...]) -> np.ndarray:
    """A PTM on qubits ``sub`` as a PTM on ``full`` (position 0 = least significant; |full| <= 2)."""
    if sub == full:
        return matrix
    if len(full) == 2 and len(sub) == 2:  # the reversed pair: swap the two factors
        return matrix.reshape(4, 4, 4, 4).transpose(1, 0, 3, 2).reshape(16, 16)
    if len(full) == 2 and len(sub) == 1:
        return np.kron(_I4, matrix) if sub[0] == full[0] else np.kron(matrix, _I4)
    raise ValueError(f"cannot embed {sub} into {full}")


def _ptm(channel: Any) -> np.ndarray:
    """Real PTM of a gate or channel (qiskit's ``PTM``; its imaginary part is rounding only)."""
    data = PTM(channel).data
    return np.ascontiguousarray(data.real if np.iscomplexobj(data) else data, dtype=float)


# --------------------------------------------------------------------------- batched gates
@dataclass(frozen=True)
class _TrigPTM:
    """A one-parameter gate whose PTM is ``C0 + cos(theta) C1 + sin(theta) C2`` (``exp(-i theta/2 P)``)."""

    c0: np.ndarray
    c1: np.ndarray
    c2: np.ndarray

    @classmethod
    def of(cls, op: Gate) -> _TrigPTM | None:
        """The three matrices of ``op``'s gate class (computed once per class), None without that form."""
        if len(op.params) != 1:
            return None
        key = f"{type(op).__module__}.{type(op).__qualname__}"
        if key not in _TRIG:
            _TRIG[key] = cls._of_class(type(op))
        return _TRIG[key]

    @classmethod
    def _of_class(cls, make: Any) -> _TrigPTM | None:
        try:
            m = {t: _ptm(Operator(make(t))) for t in (0.0, np.pi / 2, np.pi, 0.7)}
        except Exception:  # noqa: BLE001 - a gate class that cannot be rebuilt from one angle
            return None
        c0, c1 = (m[0.0] + m[np.pi]) / 2, (m[0.0] - m[np.pi]) / 2
        c2 = m[np.pi / 2] - c0
        if np.abs(c0 + np.cos(0.7) * c1 + np.sin(0.7) * c2 - m[0.7]).max() > 1e-12:
            return None
        return cls(c0, c1, c2)

    def batched(self, theta: np.ndarray) -> np.ndarray:
        return self.c0[None] + np.cos(theta)[:, None, None] * self.c1[None] + np.sin(theta)[:, None, None] * self.c2[None]


_TRIG: dict[str, _TrigPTM | None] = {}


def _batched_gate_ptm(op: Gate, values: np.ndarray, trig: _TrigPTM | None) -> np.ndarray:
    """PTMs ``(B, 4^k, 4^k)`` of gate ``op`` at parameter rows ``values`` ``(B, n_params)``."""
    if trig is not None:
        return trig.batched(values[:, 0])
    make = type(op)  # no closed form: qiskit builds each matrix (slow; only exotic parameterized natives)
    return np.stack([_ptm(Operator(make(*row))) for row in values])


# --------------------------------------------------------------------------- angles
def _affine(expr: Any, column: dict) -> tuple[dict[int, float], float] | None:
    """``expr`` as ``(column -> coefficient, constant)`` if it is affine in the parameters, else None."""
    if not isinstance(expr, ParameterExpression):
        return {}, float(expr)
    if not expr.parameters:
        return {}, float(expr.numeric())
    coeffs = {}
    for p in expr.parameters:
        g = expr.gradient(p)
        if isinstance(g, ParameterExpression):
            if g.parameters:
                return None
            g = g.numeric()
        coeffs[column[p]] = float(np.real(g))
    const = float(np.real(expr.bind({p: 0.0 for p in expr.parameters}).numeric()))
    probe = {p: 0.1 + 0.37 * i for i, p in enumerate(expr.parameters)}
    want = float(np.real(expr.bind(probe).numeric()))
    got = const + sum(coeffs[column[p]] * v for p, v in probe.items())
    return (coeffs, const) if abs(want - got) < 1e-9 * max(1.0, abs(want)) else None


class _Angles:
    """All angles of a program: ``A @ x + c`` rows, plus non-affine expressions evaluated by sympy."""

    def __init__(self, parameters: Sequence):
        self.parameters = tuple(parameters)
        self.column = {p: i for i, p in enumerate(self.parameters)}
        self.rows: list[tuple[dict[int, float], float]] = []
        self.special: dict[int, tuple[list[int], Callable]] = {}

    def add(self, expr: Any) -> int:
        """Register one angle; returns its row."""
        missing = [p.name for p in getattr(expr, "parameters", ()) if p not in self.column]
        if missing:
            raise KeyError(missing)
        aff = _affine(expr, self.column)
        self.rows.append(aff if aff is not None else ({}, 0.0))
        if aff is None:
            import sympy

            params = sorted(expr.parameters, key=lambda p: self.column[p])
            syms = [sympy.Symbol(f"x{self.column[p]}") for p in params]
            s = expr.sympify().xreplace({sympy.Symbol(p.name): y for p, y in zip(params, syms)})
            self.special[len(self.rows) - 1] = ([self.column[p] for p in params], sympy.lambdify(syms, s, "numpy"))
        return len(self.rows) - 1

    @cached_property
    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        a = np.zeros((len(self.rows), len(self.parameters)))
        c = np.zeros(len(self.rows))
        for i, (coeffs, const) in enumerate(self.rows):
            for j, v in coeffs.items():
                a[i, j] = v
            c[i] = const
        return a, c

    def evaluate(self, bindings: np.ndarray) -> np.ndarray:
        """Angles ``(n_angles, B)`` for bindings ``(B, n_params)``."""
        a, c = self.matrices
        out = a @ bindings.T + c[:, None]
        for i, (cols, fn) in self.special.items():
            out[i] = np.real(np.broadcast_to(fn(*[bindings[:, j] for j in cols]), (bindings.shape[0],)))
        return out


# --------------------------------------------------------------------------- program
@dataclass
class _Element:
    """One step before fusion: a fixed PTM (``matrix``), a batched axis rotation (``axis``, angle
    row ``rows[0]`` times ``sign``), or another parameterized gate (``gate``, its angle rows)."""

    qubits: tuple[int, ...]  # program qubits; position 0 is the PTM's least significant factor
    matrix: np.ndarray | None = None
    gate: Gate | None = None
    rows: tuple[int, ...] = ()
    axis: str | None = None
    sign: float = 1.0
    trig: _TrigPTM | None = None

    @property
    def fixed(self) -> bool:
        return self.matrix is not None


@dataclass
class _Block(_Element):
    alive: bool = True


def _commutes_with_rz(e: _Element, q: int) -> bool:
    """Whether element ``e`` commutes with z rotations of qubit ``q`` (exact, from its PTM)."""
    if q not in e.qubits:
        return True
    if e.axis is not None:
        return e.axis == "z"
    if e.matrix is None:
        return e.gate is not None and e.gate.name in ("rz", "p", "u1", "rzz", "cp", "crz", "cu1")  # diagonal gates
    z = _embed(_rot_ptm("z", 1.0), (q,), e.qubits) if len(e.qubits) == 2 else _rot_ptm("z", 1.0)
    return bool(np.abs(e.matrix @ z - z @ e.matrix).max() < 1e-10)


def _readout_map(assignment: np.ndarray) -> np.ndarray:
    """An assignment matrix ``A[measured, prepared]`` on 1 or 2 qubits as a map on their (I, Z)
    components: ``H^-1 A H`` with ``H`` the (I, Z) -> probabilities map (qubit 0 least significant)."""
    k = int(round(np.log2(assignment.shape[0])))
    h = _H if k == 1 else np.kron(_H, _H)
    return np.linalg.inv(h) @ assignment @ h


@dataclass(eq=False)
class Program:
    """A compiled scheduled circuit: fused blocks, batched gates, readout (module docstring)."""

    num_qubits: int
    measured: tuple[int, ...]  # program qubit read into clbit j
    blocks: list[_Block]
    readout: list[tuple[tuple[int, ...], np.ndarray]]  # (clbits, map on their (I, Z) components)
    angles: _Angles
    stats: dict = field(default_factory=dict)

    # ----------------------------------------------------------------- compile
    @classmethod
    def compile(
        cls,
        schedule: Schedule,
        table: ChannelTable,
        parameters: Sequence,
        physical: Sequence[int],
        *,
        idle_noise: bool = True,
        zz: dict[tuple[int, int], float] | None = None,
        readout_pairs: dict[tuple[int, int], np.ndarray] | None = None,
        prune: bool = True,
    ) -> Program:
        """Compile a scheduled, measured circuit whose qubit ``i`` is physical qubit ``physical[i]``.

        ``idle_noise=False`` leaves out idle relaxation (gate noise only); ``zz`` maps coupled
        physical pairs to their ZZ rate (Hz); ``readout_pairs`` maps physical pairs to a joint
        assignment matrix (index ``b0 + 2 b1``, ``b0`` the first qubit's bit) that replaces the
        product of their own matrices when both are measured.
        """
        physical = tuple(physical)
        angles = _Angles(parameters)
        elements = _elements(schedule, table, physical, angles, idle_noise, zz or {})
        n_elements = len(elements)
        n = schedule.circuit.num_qubits
        if prune:
            elements = _prune(elements, n)
        blocks = _fuse(elements)
        measured = schedule.measured()
        readout = _readout_groups(table, physical, measured, readout_pairs or {})
        stats = {
            "elements": n_elements,
            "after_pruning": len(elements),
            "blocks": sum(b.fixed for b in blocks),
            "parameterized": sum(not b.fixed for b in blocks),
            "two_qubit_blocks": sum(b.fixed and len(b.qubits) == 2 for b in blocks),
        }
        return cls(n, measured, blocks, readout, angles, stats)

    # ----------------------------------------------------------------- evaluate
    @cached_property
    def plan(self) -> tuple[list, list[int], list[int]]:
        """The block list with the state's axis bookkeeping resolved once (see :func:`_plan`)."""
        return _plan(self)

    def components(self, bindings: np.ndarray, *, threads: int = 1, chunk: int = CHUNK) -> np.ndarray:
        """Readout-corrupted (I, Z) components of the measured qubits, ``(B,) + (2,)*m``; axis
        ``1 + j`` is clbit ``m - 1 - j`` (so flattening gives the index ``sum b_j 2^j``)."""
        bindings = np.atleast_2d(np.asarray(bindings, dtype=float))
        theta = self.angles.evaluate(bindings)
        total = bindings.shape[0]
        starts = range(0, total, max(1, chunk))

        def one(i: int) -> np.ndarray:
            part = theta[:, i : i + chunk]
            return _run(self, part, part.shape[1])

        with _one_blas_thread():
            if threads > 1 and len(starts) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(threads) as pool:
                    parts = list(pool.map(one, starts))
            else:
                parts = [one(i) for i in starts]
        return np.concatenate(parts, axis=0)

    def probabilities(self, bindings: np.ndarray, **options: Any) -> np.ndarray:
        """Outcome probabilities ``(B, 2^m)``, index bit j = clbit j, readout error included.
        ``options``: ``threads``, ``chunk`` of :meth:`components`."""
        comp = self.components(bindings, **options)
        m = len(self.measured)
        for ax in range(1, m + 1):
            comp = np.moveaxis(np.tensordot(comp, _H, axes=([ax], [1])), -1, ax)
        return comp.reshape(comp.shape[0], -1)


def _elements(
    schedule: Schedule,
    table: ChannelTable,
    physical: tuple[int, ...],
    angles: _Angles,
    idle_noise: bool,
    zz: dict[tuple[int, int], float],
) -> list[_Element]:
    """The schedule as elements (module docstring, 1-2), in circuit order (time order with ZZ)."""
    first = schedule.first_operation()
    cuts, zz_at = _zz_intervals(schedule, physical, zz) if zz else ({}, [])
    keyed: list[tuple[tuple[int, int], _Element]] = []
    seq = 0

    def add(start: int, e: _Element) -> None:
        nonlocal seq
        keyed.append(((start, seq), e))
        seq += 1

    fixed: dict[tuple, np.ndarray] = {}
    for i, t in enumerate(schedule.timeline):
        if t.name in ("barrier", "measure"):
            continue
        qs = t.qubits
        phys = tuple(physical[q] for q in qs)
        if t.name == "delay":
            q = qs[0]
            if not idle_noise or t.duration == 0 or q not in first or i < first[q]:
                continue  # a leading delay: the qubit is still in |0>
            edges = [t.start, *sorted(c for c in cuts.get(q, ()) if t.start < c < t.stop), t.stop]
            for a, b in zip(edges, edges[1:]):
                ptm = table.idle_ptm(phys[0], (b - a) * schedule.dt)
                if ptm is not None:
                    add(a, _Element(qs, ptm))
            continue
        op = t.operation
        if not isinstance(op, Gate):
            raise ValueError(f"unsupported instruction {t.name!r} in a scheduled circuit")
        noise = table.gate_ptm(t.name, phys)
        if any(isinstance(p, ParameterExpression) and p.parameters for p in op.params):
            rots = _rotations(op) if len(qs) == 1 else None
            if rots is None:
                add(t.start, _Element(qs, gate=op, rows=tuple(angles.add(p) for p in op.params), trig=_TrigPTM.of(op)))
            for axis, angle, sign in rots or ():
                if isinstance(angle, ParameterExpression) and angle.parameters:
                    add(t.start, _Element(qs, rows=(angles.add(angle),), axis=axis, sign=float(sign)))
                else:
                    add(t.start, _Element(qs, _rot_ptm(axis, sign * float(angle))))
            if noise is not None:
                add(t.start, _Element(qs, noise))
            continue
        key = (t.name, phys, tuple(float(p) for p in op.params))
        if key not in fixed:
            m = _ptm(Operator(op))
            fixed[key] = m if noise is None else noise @ m
        if not np.allclose(fixed[key], np.eye(len(fixed[key])), atol=1e-14):
            add(t.start, _Element(qs, fixed[key]))
    for v, pair, ptm in zz_at:
        keyed.append(((v, -1), _Element(pair, ptm)))
    if zz_at:
        keyed.sort(key=lambda item: item[0])
    return [e for _, e in keyed]


def _zz_intervals(
    schedule: Schedule, physical: tuple[int, ...], zz: dict[tuple[int, int], float]
) -> tuple[dict[int, set[int]], list[tuple[int, tuple[int, int], np.ndarray]]]:
    """Where coupled pairs idle together: cut points per qubit, and the conditional-phase PTM to
    apply at the end of each such interval (module docstring)."""
    windows = schedule.idle_windows()
    index = {p: i for i, p in enumerate(physical)}
    cuts: dict[int, set[int]] = {}
    out: list[tuple[int, tuple[int, int], np.ndarray]] = []
    for (pa, pb), rate in sorted(zz.items()):
        a, b = index.get(pa), index.get(pb)
        if a is None or b is None or a not in windows or b not in windows or not rate:
            continue
        for sa, ea in windows[a]:
            for sb, eb in windows[b]:
                u, v = max(sa, sb), min(ea, eb)
                if v <= u:
                    continue
                cuts.setdefault(a, set()).update((u, v))
                cuts.setdefault(b, set()).update((u, v))
                phase = 2 * np.pi * rate * (v - u) * schedule.dt
                out.append((v, (a, b), _ptm(Operator(np.diag([1, 1, 1, np.exp(-1j * phase)])))))
    return cuts, out


def _readout_groups(
    table: ChannelTable, physical: tuple[int, ...], measured: tuple[int, ...], pairs: dict[tuple[int, int], np.ndarray]
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Readout maps per clbit, or per clbit pair where a joint matrix applies (greedy, in order)."""
    cal = table.calibration
    clbit = {physical[q]: c for c, q in enumerate(measured)}
    done: set[int] = set()
    groups: list[tuple[tuple[int, ...], np.ndarray]] = []
    for (pa, pb), matrix in pairs.items():
        if pa in clbit and pb in clbit and not {clbit[pa], clbit[pb]} & done:
            groups.append(((clbit[pa], clbit[pb]), _readout_map(np.asarray(matrix, dtype=float))))
            done |= {clbit[pa], clbit[pb]}
    for c, q in enumerate(measured):
        if c not in done:
            groups.append(((c,), _readout_map(cal.readout_matrix(physical[q]))))
    return groups


def _prune(elements: list[_Element], n: int) -> list[_Element]:
    """Drop parameterized z rotations that cannot change the Z-basis statistics (module docstring, 3)."""
    drop = set()
    for q in range(n):
        on_q = [i for i, e in enumerate(elements) if q in e.qubits]
        for order in (on_q, on_q[::-1]):  # forward from |0>, backward from the measurement
            for i in order:
                e = elements[i]
                if e.axis == "z" and e.qubits == (q,):
                    drop.add(i)
                elif not _commutes_with_rz(e, q):
                    break
    return [e for i, e in enumerate(elements) if i not in drop]


def _fuse(elements: list[_Element]) -> list[_Block]:
    """Greedy fusion of fixed elements into blocks of <= 2 qubits, keeping every qubit's order."""
    blocks: list[_Block] = []
    last: dict[int, int] = {}

    def frontier(b: int) -> bool:
        return all(last.get(q) == b for q in blocks[b].qubits)

    def absorb(b: int, matrix: np.ndarray, sub: tuple[int, ...]) -> None:
        """Block b followed by ``matrix`` on ``sub``; the block widens to cover ``sub``."""
        blk = blocks[b]
        full = tuple(sorted(set(blk.qubits) | set(sub)))
        assert blk.matrix is not None
        blk.matrix = _embed(matrix, sub, full) @ _embed(blk.matrix, blk.qubits, full)
        blk.qubits = full

    for e in elements:
        if not e.fixed:
            blocks.append(_Block(e.qubits, gate=e.gate, rows=e.rows, axis=e.axis, sign=e.sign, trig=e.trig))
            for q in e.qubits:
                last[q] = len(blocks) - 1
            continue
        assert e.matrix is not None
        s = set(e.qubits)
        prev = {last[q] for q in e.qubits if q in last}
        target = max(prev) if prev else None
        if target is not None and blocks[target].fixed and len(set(blocks[target].qubits) | s) <= 2:
            union = set(blocks[target].qubits) | s
            for b in sorted(prev - {target}):  # earlier frontier blocks on e's qubits move up
                if blocks[b].fixed and frontier(b) and set(blocks[b].qubits) <= union:
                    absorb(target, blocks[b].matrix, blocks[b].qubits)  # type: ignore[arg-type]
                    blocks[b].alive = False
                    for q in blocks[b].qubits:
                        last[q] = target
            absorb(target, e.matrix, e.qubits)
            for q in e.qubits:
                last[q] = target
            continue
        blocks.append(_Block(e.qubits, matrix=e.matrix))
        new = len(blocks) - 1
        for b in sorted(prev):
            if blocks[b].fixed and frontier(b) and set(blocks[b].qubits) <= s:
                m = blocks[b].matrix
                assert m is not None
                blocks[b].alive = False
                blk = blocks[new]
                full = tuple(sorted(s))
                blk.matrix = _embed(blk.matrix, blk.qubits, full) @ _embed(m, blocks[b].qubits, full)  # type: ignore[arg-type]
                blk.qubits = full
        for q in e.qubits:
            last[q] = new
    return [b for b in blocks if b.alive]


# --------------------------------------------------------------------------- evaluation
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


class _one_blas_thread:  # noqa: N801 - a context manager
    """BLAS limited to one thread while any kernel evaluation runs (reference-counted, so
    concurrent clients do not restore each other's limits); threadpoolctl does the limiting."""

    def __enter__(self) -> None:
        global _blas_users, _blas_limit
        with _blas_lock:
            if _blas_users == 0:
                from threadpoolctl import threadpool_limits

                _blas_limit = threadpool_limits(1, user_api="blas")
            _blas_users += 1

    def __exit__(self, *exc: object) -> None:
        global _blas_users, _blas_limit
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def _plan(program: Program) -> tuple[list, list[int], list[int]]:
    """Each block with the state axes it acts on (axis j holds one qubit; blocks reorder axes)."""
    n = program.num_qubits
    order = list(range(n - 1, -1, -1))
    plan: list[tuple[str, _Block, Any, Any]] = []
    for b in program.blocks:
        if b.axis is None:
            k = len(b.qubits)
            axes = [order.index(q) for q in reversed(b.qubits)]  # most significant factor first
            plan.append(("mat", b, axes, k))
            order = list(reversed(b.qubits)) + [q for q in order if q not in b.qubits]
        else:
            plan.append(("rot", b, order.index(b.qubits[0]), _PAIRS[b.axis]))
    meas_axes = [order.index(q) for q in reversed(program.measured)]  # most significant clbit first
    traced = [order.index(q) for q in range(n) if q not in program.measured]
    return plan, meas_axes, traced


def _initial(n: int, batch: int) -> np.ndarray:
    """``|0...0>`` for every binding: per qubit r = (1, 0, 0, 1)."""
    one = np.array([1.0, 0.0, 0.0, 1.0])
    r = one
    for _ in range(n - 1):
        r = np.multiply.outer(r, one)
    return np.repeat(r.reshape((4,) * n + (1,)), batch, axis=n)


def _run(program: Program, theta: np.ndarray, batch: int) -> np.ndarray:
    plan, meas_axes, traced = program.plan
    n = program.num_qubits
    state = _initial(n, batch)
    cos, sin = np.cos(theta), np.sin(theta)
    for kind, b, axes, k in plan:
        if kind == "rot":
            row = b.rows[0]
            sa: list[Any] = [slice(None)] * (n + 1)
            sa[axes] = k[0]
            sb = list(sa)
            sb[axes] = k[1]
            x = state[tuple(sa)].copy()
            y = state[tuple(sb)]
            c, s = cos[row], b.sign * sin[row]
            state[tuple(sa)] = c * x - s * y
            state[tuple(sb)] = s * x + c * y
        elif b.fixed:
            state = np.tensordot(b.matrix.reshape((4,) * (2 * k)), state, axes=(list(range(k, 2 * k)), axes))
        else:
            values = np.stack([theta[r] for r in b.rows], axis=1)
            mats = _batched_gate_ptm(b.gate, values, b.trig)  # (B, 4^k, 4^k)
            front = np.moveaxis(state, axes, list(range(k)))
            shp = front.shape
            flat = front.reshape(4**k, -1, batch)
            state = np.einsum("bij,jrb->irb", mats, flat).reshape(shp)
    return _readout(program, state, meas_axes, traced)


def _readout(program: Program, state: np.ndarray, meas_axes: list[int], traced: list[int]) -> np.ndarray:
    """Trace unmeasured qubits (their I component), keep the measured qubits' (I, Z) components,
    apply the readout maps; returns ``(B,) + (2,)*m`` with axis ``1 + j`` = clbit ``m - 1 - j``."""
    n = program.num_qubits
    keep = [ax for ax in range(n) if ax not in traced]
    sub = state[tuple(0 if ax in traced else slice(None) for ax in range(n))]
    pos = {ax: i for i, ax in enumerate(keep)}
    sub = np.transpose(sub, [pos[ax] for ax in meas_axes] + [len(keep)])
    m = len(program.measured)
    sub = sub[(slice(0, 4, 3),) * m]
    for clbits, matrix in program.readout:
        axes = [m - 1 - c for c in reversed(clbits)]  # the most significant factor first
        k = len(clbits)
        sub = np.moveaxis(np.tensordot(matrix.reshape((2,) * (2 * k)), sub, axes=(list(range(k, 2 * k)), axes)), list(range(k)), axes)
    return np.moveaxis(sub, -1, 0)
