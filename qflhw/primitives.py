"""Qiskit V2 primitives on qflhw devices: ``from qflhw.primitives import Estimator, Sampler``.

A public entry point next to the package's API (the implementation is
:mod:`qflhw.plugins.primitives`); importing it loads qiskit's primitives, not ``import qflhw``.
"""

from __future__ import annotations

from qflhw.plugins.primitives import Estimator, QflhwPrimitiveJob, Sampler

__all__ = ["Estimator", "QflhwPrimitiveJob", "Sampler"]
