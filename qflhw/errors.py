"""The one exception tree of qflhw.

Every error a user can cause or meet derives from :class:`QflhwError`, and also from the
built-in it resembles, so ``except ValueError`` keeps working for callers who do not know us.
Messages are one line: what was wrong, where (file, field, client, device) and what to do.
"""

from __future__ import annotations


class QflhwError(Exception):
    """Root of every error raised by qflhw."""


class ConfigError(QflhwError, ValueError):
    """A spec, profile or calibration file is malformed or names something that does not exist."""


class CalibrationError(ConfigError):
    """A calibration snapshot is corrupt, incomplete or inconsistent."""


class CircuitTooWide(ConfigError):
    """A circuit needs more qubits than the device has."""


class BudgetExceeded(QflhwError, RuntimeError):
    """Running the next job would cross a shot budget or the USD cap."""


class BackendError(QflhwError, RuntimeError):
    """A provider job or task did not give a result."""


class TransientBackendError(BackendError):
    """A failure worth retrying: throttling, 5xx/429, device offline, a wait that timed out."""


class JobFailed(BackendError):
    """A permanent failure: invalid input, not authorized, cancelled or failed on the device."""


class InvalidUpdate(QflhwError, ValueError):
    """A client update has NaN or infinite values or the wrong shape."""


class MissingExtra(QflhwError, ImportError):
    """An optional dependency is not installed, e.g. Flower: ``pip install 'qflhw[flower]'``."""


def field_error(path: object, err: Exception, fix: str = "fix the field") -> str:
    """One line from a pydantic ValidationError: the file, the first bad field and the fix."""
    problems = err.errors() if hasattr(err, "errors") else []
    if not problems:
        return f"{path}: {err}"
    first = problems[0]
    where = ".".join(str(p) for p in first["loc"]).encode("unicode_escape").decode("ascii")  # keys may hold newlines
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{path}: {'field ' + where + ': ' if where else ''}{msg}{more}; {fix}"


class QflhwWarning(UserWarning):
    """Root of the warnings qflhw issues (a result was produced, but check it)."""


class ZNEFallbackWarning(QflhwWarning):
    """A zero-noise fit failed or ran away and a simpler extrapolation was used instead."""
