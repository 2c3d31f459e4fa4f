"""Small helpers every layer uses: stable seeds and digests, and atomic file writes.

Python's ``hash()`` is salted per process, so seeds and names derived from text go through
SHA-256 here: the same run gives the same numbers in any process, on any machine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def stable_seed(*parts: object, bits: int = 63) -> int:
    """A seed of ``bits`` bits from ``parts`` joined by ``|`` (the same in every process)."""
    raw = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(raw[:8], "little") >> (64 - bits)


def digest(text: str, length: int = 24) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``text``: a short, stable name."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Readers see the old file or the new one, never half of one; a crash leaves the old file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    mode, encoding = ("wb", None) if isinstance(data, bytes) else ("w", "utf-8")
    with open(tmp, mode, encoding=encoding) as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
