"""qiskit-ibm-runtime's fake backends as the tests use them: listed once, exported once, twinned once.

Exporting a fake backend (``properties()`` is rebuilt from JSON on every call) and building its
twin take a noticeable part of a second on the big ones; the agreement and layout tests share
one copy of each per test session.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any


@lru_cache(maxsize=1)
def sdk_backends() -> tuple[Any, ...]:
    """Every IBM fake backend qiskit-ibm-runtime ships (BackendV2), each with its properties read once."""
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    backends = FakeProviderForBackendV2().backends()
    for b in backends:
        props = b.properties()
        b.properties = lambda p=props: p  # the same data, built once
    return tuple(backends)


@cache
def sdk_twin(name: str) -> Any:
    """The fake twin of SDK backend ``name``, built from the snapshot the exporter writes for it."""
    from qflhw.calibration.qiskit_import import from_qiskit_backend
    from qflhw.config.profiles import DeviceProfile
    from qflhw.devices.fake import FakeDevice

    backend = next(b for b in sdk_backends() if b.name == name)
    cal = from_qiskit_backend(backend)
    prof = DeviceProfile(name=f"twin-{cal.device}", provider="fake", device=cal.device, calibration="-", qubits=cal.num_qubits)
    return FakeDevice(prof, cal, threads=1)
