"""qflhw: quantum federated learning on real QPUs and their faithful fake twins.

The names a researcher scripts with (see ``docs/api.md``)::

    import qflhw

    spec = qflhw.load_spec("jobs/quickstart.toml")      # or qflhw.JobSpec.model_validate({...})
    result = qflhw.run(spec, out="runs/mine")           # a federated run, in-process
    print(result.final_accuracy, result.run_dir)
    dev = qflhw.make_device("fake_torino")              # one client's device, to use directly

Everything else is internal by convention, even where it is importable. Importing the package is
cheap and needs no credentials: these names load on first use, and cloud SDKs only when a
device that needs them is built.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from qflhw.errors import QflhwError

# A library logs and lets the application choose where it goes (`qflhw -v` does on the terminal)
logging.getLogger("qflhw").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from qflhw.config.profiles import DeviceProfile, load_profile
    from qflhw.config.spec import JobSpec, load_spec, parse_spec
    from qflhw.devices.factory import make_device
    from qflhw.federation.estimate import estimate_spec
    from qflhw.federation.loop import Federation
    from qflhw.federation.runs import RunResult, read_run, resume, run

__version__ = "0.2.0"

#: public name -> the module that defines it (loaded on first access)
_EXPORTS = {
    "JobSpec": "qflhw.config.spec",
    "load_spec": "qflhw.config.spec",
    "parse_spec": "qflhw.config.spec",
    "DeviceProfile": "qflhw.config.profiles",
    "load_profile": "qflhw.config.profiles",
    "make_device": "qflhw.devices.factory",
    "Federation": "qflhw.federation.loop",
    "RunResult": "qflhw.federation.runs",
    "run": "qflhw.federation.runs",
    "resume": "qflhw.federation.runs",
    "read_run": "qflhw.federation.runs",
    "estimate_spec": "qflhw.federation.estimate",
}

__all__ = [
    "DeviceProfile",
    "Federation",
    "JobSpec",
    "QflhwError",
    "RunResult",
    "__version__",
    "estimate_spec",
    "load_profile",
    "load_spec",
    "make_device",
    "parse_spec",
    "read_run",
    "resume",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qflhw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
