"""Where the shipped data lives: ``backends/`` and ``calibration/`` next to the package.

``QFLHW_DATA`` overrides the root (a folder holding ``backends/`` and ``calibration/``), so a lab
can keep its own snapshots outside the checkout. A wheel install finds them in ``share/qflhw``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir(kind: str) -> Path:
    """The ``backends`` or ``calibration`` folder in force."""
    override = os.environ.get("QFLHW_DATA")
    if override:
        return Path(override) / kind
    beside_package = Path(__file__).resolve().parents[2] / kind  # <checkout>/qflhw/config/paths.py
    if beside_package.is_dir():
        return beside_package
    return Path(sys.prefix) / "share" / "qflhw" / kind
