"""Small helpers every layer uses: stable seeds and digests, atomic file writes, entry points.

Python's ``hash()`` is salted per process, so seeds and names derived from text go through
SHA-256 here: the same run gives the same numbers in any process, on any machine.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qflhw.errors import ConfigError


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


def one_line(err: BaseException) -> str:
    """``Type: message`` of an exception on one line (user code may raise multi-line messages)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_entry_point(ref: str, field: str) -> Callable[..., Any]:
    """The callable a spec names as ``package.module:name`` in ``field``, imported now.

    The current directory is on the import path first (as for ``python -m``), so a module next to
    where ``qflhw`` runs is found without installing it. Every failure is one ConfigError line
    naming the field and the fix.
    """
    module, _, name = ref.partition(":")
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            raise ConfigError(
                f"{field} = {ref!r}: no module named {err.name!r}; put {module} on the import path (the current "
                "directory counts) or fix the name"
            ) from err
        raise ConfigError(f"{field} = {ref!r}: importing {module} failed ({one_line(err)}); install what it needs") from err
    except Exception as err:  # noqa: BLE001 - user code: any error is a ConfigError naming the field
        raise ConfigError(f"{field} = {ref!r}: importing {module} failed ({one_line(err)}); fix the module") from err
    finally:
        if added:
            sys.path.remove(here)
    obj = getattr(mod, name, None)
    if obj is None:
        raise ConfigError(f"{field} = {ref!r}: module {module} has no {name!r}; check the name after the ':'")
    if not callable(obj):
        raise ConfigError(f"{field} = {ref!r}: {module}.{name} is a {type(obj).__name__}, not a function; name a function")
    return obj
