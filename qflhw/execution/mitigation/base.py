"""What every mitigation technique offers: prepare once per circuit, combine after each job.

A technique (:class:`Technique`) is a frozen value holding its settings. ``prepare(tc)`` returns
a frozen :class:`Prepared` for one transpiled circuit: the ``variants`` to run (all go into the
step's one batch) and how to ``combine`` their results. Nothing is mutated along the way, so one
technique serves any number of circuits and threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from qflhw.circuits.transpile import Transpiled
from qflhw.devices.base import ItemResult


@dataclass(frozen=True)
class Combined:
    """Mitigated values and their estimated variances (per binding and observable).

    ``fallbacks`` counts values whose fit failed and fell back to a simpler estimate (ZNE's
    exponential fit falling back to Richardson); it is reported in the run's metrics.
    """

    values: np.ndarray
    variance: np.ndarray
    fallbacks: int = 0


class Prepared(Protocol):
    """A technique applied to one circuit: the variants to run and how to combine their results."""

    @property
    def variants(self) -> tuple[Transpiled, ...]: ...

    @property
    def coefficients(self) -> np.ndarray:
        """How much each variant's value counts in the result (for shot allocation)."""
        ...

    def combine(self, results: Sequence[ItemResult], observables: Sequence[SparsePauliOp]) -> Combined: ...


class Technique(Protocol):
    """A mitigation technique's settings; ``prepare`` builds what one circuit needs."""

    @property
    def name(self) -> str: ...

    def prepare(self, tc: Transpiled) -> Prepared: ...
