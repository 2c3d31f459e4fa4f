"""Your own model circuit in a spec: ``[model] circuit = "package.module:function"``.

The function is called with the ``[model]`` settings it accepts (``qubits``, ``layers``) and returns

* a parameterized qiskit ``QuantumCircuit`` whose inputs are named ``x[i]`` (or ``inputs[i]``) and
  whose weights are named ``w[j]`` (or ``weights[j]``), e.g. from ``ParameterVector("x", n)``; or
  ``(circuit, inputs, weights)`` with the two parameter lists in binding order; its observables
  are ``[model] observables`` (default Z on each qubit);
* or ``(qfunc, weight_shapes)``: a PennyLane quantum function or QNode called as
  ``qfunc(inputs, **weights)`` (the signature ``qml.qnn.TorchLayer`` uses) and the shape of each
  weight argument, e.g. ``{"weights": (3, 4)}``. It gets ``qubits`` inputs (or
  ``weight_shapes["inputs"]``) and must return ``qml.expval`` of Pauli observables: those are the
  model's observables.

A PennyLane function is traced twice with torch at random points, decomposed into the gates qflhw
converts (:mod:`qflhw.circuits.tapes`), and each gate angle is written as the affine function of
inputs and weights that autograd finds; a gate structure or an angle that changes non-affinely
between the two points is an error naming the gate. Every problem is one line naming
``model.circuit`` and the fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, ParameterExpression, ParameterVector, ParameterVectorElement, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qflhw._util import load_entry_point, one_line
from qflhw.circuits.ansatz import ModelCircuit
from qflhw.config.spec import ModelSpec
from qflhw.errors import ConfigError

INPUT_NAMES = ("x", "inputs")
WEIGHT_NAMES = ("w", "weights")
_SHAPES = "return (qfunc, {'weights': shape}) as qml.qnn.TorchLayer takes them"


def load_model(spec: ModelSpec) -> tuple[ModelCircuit, list[SparsePauliOp] | None]:
    """The model circuit ``model.circuit`` builds, and its observables when it measures its own."""
    if spec.circuit is None:
        raise ConfigError("model.circuit is not set")
    ref = spec.circuit
    where = f"model.circuit = {ref!r}"
    fn = load_entry_point(ref, "model.circuit")
    made = _call(fn, spec, where)
    qc = made if isinstance(made, QuantumCircuit) else None
    if isinstance(made, tuple) and made and isinstance(made[0], QuantumCircuit):
        qc = made[0]
    if qc is not None:
        if "qubits" in spec.model_fields_set and qc.num_qubits != spec.qubits:
            raise ConfigError(f"{where} builds {qc.num_qubits} qubits but model.qubits is {spec.qubits}; make them agree or remove qubits")
        if made is qc:
            return _from_qiskit(qc, None, None, where), None
        if len(made) == 3:
            return _from_qiskit(qc, made[1], made[2], where), None
        raise ConfigError(f"{where} returned a tuple of {len(made)} starting with a circuit; return (circuit, inputs, weights)")
    if isinstance(made, tuple) and len(made) == 2 and callable(made[0]) and isinstance(made[1], dict):
        if spec.observables:
            raise ConfigError(f"{where} returns a PennyLane circuit, which measures its own observables; remove model.observables")
        return _from_pennylane(made[0], dict(made[1]), spec.qubits, where)
    if callable(made):
        raise ConfigError(f"{where} returned a PennyLane function without its weight shapes; {_SHAPES}")
    raise ConfigError(
        f"{where} returned {type(made).__name__}; return a qiskit QuantumCircuit with parameters x[i] and w[j], "
        f"or (qfunc, weight_shapes) for PennyLane"
    )


def _call(fn: Callable[..., Any], spec: ModelSpec, where: str) -> Any:
    try:
        accepted = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepted = {}  # type: ignore[assignment]
    kwargs = {k: getattr(spec, k) for k in ("qubits", "layers") if k in accepted}
    if "layers" in spec.model_fields_set and "layers" not in kwargs:
        raise ConfigError(f"{where} takes no 'layers' argument, so model.layers has no effect; remove it")
    try:
        return fn(**kwargs)
    except Exception as err:  # noqa: BLE001 - user code
        raise ConfigError(f"{where} raised {one_line(err)} when called with {kwargs or 'no arguments'}") from err


def _role(p: Parameter) -> str | None:
    root = p.vector.name if isinstance(p, ParameterVectorElement) else p.name.split("[")[0]
    if root in INPUT_NAMES:
        return "input"
    if root in WEIGHT_NAMES:
        return "weight"
    return None


def _order(p: Parameter) -> tuple:
    if isinstance(p, ParameterVectorElement):
        return (p.vector.name, p.index)
    return (p.name, -1)


def _from_qiskit(qc: QuantumCircuit, inputs: Sequence | None, weights: Sequence | None, where: str) -> ModelCircuit:
    params = list(qc.parameters)
    if inputs is None or weights is None:
        unnamed = [p.name for p in params if _role(p) is None]
        if unnamed:
            raise ConfigError(
                f"{where}: circuit parameter(s) {unnamed[:3]} are neither inputs nor weights; name inputs "
                "ParameterVector('x', n) and weights ParameterVector('w', m), or return (circuit, inputs, weights)"
            )
        inputs = sorted((p for p in params if _role(p) == "input"), key=_order)
        weights = sorted((p for p in params if _role(p) == "weight"), key=_order)
    inputs, weights = tuple(inputs), tuple(weights)
    listed = set(inputs) | set(weights)
    stray = [p.name for p in params if p not in listed]
    if stray or len(listed) != len(inputs) + len(weights):
        raise ConfigError(f"{where}: inputs and weights must list every circuit parameter once; unlisted: {stray}")
    if not inputs or not weights:
        raise ConfigError(f"{where}: the circuit needs at least one input (x[i]) and one weight (w[j]) parameter")
    if any(ci.operation.name == "measure" for ci in qc.data):
        raise ConfigError(f"{where}: remove the measurements; qflhw measures the observables itself")
    return ModelCircuit(qc, inputs, weights)


def _from_pennylane(qfunc: Any, shapes: dict[str, Any], qubits: int, where: str) -> tuple[ModelCircuit, list[SparsePauliOp]]:
    import torch

    from qflhw.circuits.tapes import GATES, structure, supported, to_sparse_pauli

    func = getattr(qfunc, "func", qfunc)  # a QNode's quantum function
    n_in = int(shapes.pop("inputs", qubits))
    try:
        sizes = {k: (tuple(int(d) for d in np.atleast_1d(v)) if np.ndim(v) else (int(v),)) for k, v in shapes.items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: weight shapes must be tuples of ints, got {shapes}; {_SHAPES}") from err
    if not sizes:
        raise ConfigError(f"{where}: no weights in the weight shapes; {_SHAPES}")
    n_w = sum(int(np.prod(s)) for s in sizes.values())
    rng = np.random.default_rng(20240611)
    device_wires = getattr(getattr(qfunc, "device", None), "wires", None)
    traces = []
    for _ in range(2):
        point = rng.uniform(-1.0, 1.0, n_in + n_w)
        traces.append((point, *_trace(func, point, n_in, sizes, where, supported, torch)))
    (p1, ops1, meas1, vals1, grads1), (p2, ops2, meas2, vals2, grads2) = traces
    wires = list(device_wires) if device_wires is not None and len(device_wires) else sorted(_wires(ops1, meas1), key=str)
    key1, key2 = structure(ops1, wires), structure(ops2, wires)
    if key1 != key2:
        raise ConfigError(f"{where}: the gates change with the parameter values; the circuit structure must be fixed")
    offset = vals1 - grads1 @ p1
    for k, (name, *_rest) in enumerate(_named(key1)):
        if not (np.allclose(grads1[k], grads2[k], atol=1e-9) and np.isclose(offset[k] + grads2[k] @ p2, vals2[k], atol=1e-9)):
            raise ConfigError(
                f"{where}: the angle of gate {k} ({name}) is not an affine function of the inputs and weights; "
                "compute such features in the data or the head, or return a qiskit circuit"
            )
    x, w = ParameterVector("x", n_in), ParameterVector("w", n_w)
    symbols = list(x) + list(w)
    qc = QuantumCircuit(len(wires), name=getattr(func, "__name__", "pennylane"))
    k = 0
    for gate, qubits_, n in key1:
        angles = [_affine(offset[k + j], grads1[k + j], symbols) for j in range(n)]
        getattr(qc, GATES[gate])(*angles, *qubits_)
        k += n
    observables = []
    for m in meas1:
        if type(m).__name__ != "ExpectationMP":
            raise ConfigError(f"{where}: the circuit returns {type(m).__name__}; return qml.expval(...) of Pauli observables")
        observables.append(to_sparse_pauli(m.obs, wires))
    if not observables:
        raise ConfigError(f"{where}: the circuit measures nothing; return [qml.expval(qml.PauliZ(i)) ...]")
    return ModelCircuit(qc, tuple(x), tuple(w)), observables


def _named(key: Sequence) -> list[tuple]:
    """One entry per gate angle: (gate name, qubits)."""
    return [(gate, qubits) for gate, qubits, n in key for _ in range(n)]


def _wires(ops: Sequence, measurements: Sequence) -> set:
    return {w for op in ops for w in op.wires} | {w for m in measurements for w in m.wires}


def _trace(func: Any, point: np.ndarray, n_in: int, sizes: dict, where: str, supported: Any, torch: Any) -> tuple:
    """Gates, measurements, angles and d angle / d (inputs, weights) of ``func`` at ``point``."""
    import pennylane as qml
    from pennylane.devices.preprocess import decompose

    leaves = [torch.tensor(point[:n_in], dtype=torch.float64, requires_grad=True)]
    kwargs, k = {}, n_in
    for name, shape in sizes.items():
        size = int(np.prod(shape))
        t = torch.tensor(point[k : k + size].reshape(shape), dtype=torch.float64, requires_grad=True)
        leaves.append(t)
        kwargs[name] = t
        k += size
    try:
        tape = qml.tape.make_qscript(func)(leaves[0], **kwargs)
        (tape,), _ = decompose(tape, stopping_condition=supported, skip_initial_state_prep=False, name="qflhw")
    except Exception as err:  # noqa: BLE001 - user code and PennyLane's decomposition
        raise ConfigError(f"{where}: calling it as qfunc(inputs, **weights) failed ({one_line(err)}); {_SHAPES}") from err
    ops = [op for op in tape.operations if supported(op)]
    angles, grads = [], []
    for op in tape.operations:
        if op.name in ("Identity", "GlobalPhase", "Barrier", "Snapshot"):
            continue
        for p in op.parameters:
            if isinstance(p, torch.Tensor) and p.requires_grad:
                if p.numel() != 1:
                    raise ConfigError(f"{where}: gate {op.name} got a batch of angles; trace it with unbatched inputs")
                g = torch.autograd.grad(p, leaves, retain_graph=True, allow_unused=True)
                grads.append(np.concatenate([(gi if gi is not None else torch.zeros_like(li)).detach().numpy().ravel()
                                             for gi, li in zip(g, leaves)]))
                angles.append(float(p.detach()))
            else:
                grads.append(np.zeros(len(point)))
                angles.append(float(np.real(np.asarray(p.detach() if hasattr(p, "detach") else p))))
    return ops, list(tape.measurements), np.array(angles), np.array(grads).reshape(len(angles), len(point))


def _affine(c: float, a: np.ndarray, symbols: Sequence[Parameter]) -> ParameterExpression | float:
    """``c + a . symbols`` as a qiskit angle, a bare Parameter when it is one (so parameter shift stays plain)."""
    nonzero = [(float(v), s) for v, s in zip(a, symbols) if abs(v) > 1e-12]
    c = 0.0 if abs(c) < 1e-12 else float(c)
    if c == 0.0 and len(nonzero) == 1 and nonzero[0][0] == 1.0:
        return nonzero[0][1]
    if not nonzero:
        return c
    expr: Any = c
    for v, s in nonzero:
        expr = expr + v * s
    return expr
