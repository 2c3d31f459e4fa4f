"""Error mitigation with Mitiq, one module per technique, all expand-then-combine around one job.

* :mod:`~qflhw.execution.mitigation.zne`: zero-noise extrapolation (folding in
  :mod:`~qflhw.execution.mitigation.folding`), optionally with readout correction;
* :mod:`~qflhw.execution.mitigation.rem`: readout-error mitigation;
* :mod:`~qflhw.execution.mitigation.base`: the :class:`Technique` / :class:`Prepared` protocol.

This module builds a technique from a spec's ``[mitigation]`` table and tells what it costs.

Dynamical decoupling is not offered here: on IBM hardware Runtime's own DD option is the
better tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from qflhw.calibration.snapshot import Calibration
from qflhw.config.spec import MitigationSpec
from qflhw.execution.mitigation.base import Combined, Prepared, Technique
from qflhw.execution.mitigation.folding import fold
from qflhw.execution.mitigation.rem import REM, PreparedREM
from qflhw.execution.mitigation.zne import ZNE, PreparedZNE, extrapolation_weights

__all__ = [
    "REM",
    "ZNE",
    "Combined",
    "Overhead",
    "Prepared",
    "PreparedREM",
    "PreparedZNE",
    "Technique",
    "extrapolation_weights",
    "fold",
    "make_mitigation",
    "overhead",
]


def make_mitigation(setting: MitigationSpec | None, calibration: Calibration) -> Technique | None:
    """The technique a spec's ``[mitigation]`` asks for, on one device's calibration (None: none)."""
    if setting is None or setting.method == "none":
        return None
    rem = REM(calibration) if "rem" in setting.method else None
    if setting.method == "rem":
        return rem
    return ZNE(
        calibration,
        scale_factors=setting.scale_factors,
        extrapolation=setting.extrapolation,
        folding=setting.folding,
        seed=setting.seed,
        readout=rem,
    )


class Overhead(NamedTuple):
    """What a mitigation setting costs relative to no mitigation.

    ``circuits``: executables run per unmitigated executable (at fixed shots per circuit, billed
    shots and per-shot fees grow by the same factor). ``shots``: total shots needed for the
    mitigated value to reach the unmitigated standard error (the sampling overhead).
    """

    circuits: float
    shots: float


def overhead(
    setting: MitigationSpec,
    *,
    calibration: Calibration | None = None,
    qubits: Sequence[int] = (),
    allocation: str = "uniform",
) -> Overhead:
    """(circuits multiplier, shots multiplier) of ``setting``, e.g. for ``qflhw estimate``.

    ZNE with weights w (see :func:`extrapolation_weights`) over K scale factors: K circuits;
    shots K * sum(w^2) with equal shots per variant, (sum |w|)^2 with ``variance-weighted``
    allocation (shots proportional to |w|). REM: 1 circuit; shots 1/(1 - p01 - p10)^2 of the worst
    of ``qubits`` (the measured physical qubits) in ``calibration``, the amplification of a
    single-qubit Z estimate; 1.0 when no calibration is given (a lower bound). Folding also makes
    circuits longer, which costs QPU time on IBM but is not counted here.
    """
    method = setting.method
    circuits, shots = 1.0, 1.0
    if "zne" in method:
        w = extrapolation_weights(setting.scale_factors, setting.extrapolation)
        circuits = float(len(w))
        shots = float(np.sum(np.abs(w)) ** 2) if allocation == "variance-weighted" else float(len(w) * np.sum(w**2))
    if "rem" in method and calibration is not None and qubits:
        gains = []
        for q in qubits:
            a = calibration.readout_matrix(q)
            gains.append(1.0 / (a[0, 0] + a[1, 1] - 1.0) ** 2)
        shots *= max(gains)
    return Overhead(circuits, shots)
