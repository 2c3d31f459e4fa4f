"""Devices: the ``Device`` interface and its providers (fake twins, IBM Runtime, Amazon Braket).

Providers are imported only when a profile asks for them, so ``import qflhw`` needs no cloud SDK
credentials and opens no connection.
"""

from __future__ import annotations

from pathlib import Path

from qflhw import calibration as _calibration
from qflhw.devices.base import Batch, BatchItem, BatchResult, Device, ItemResult, JobHandle, JobStatus
from qflhw.profiles import DeviceProfile, load_profile

__all__ = [
    "Batch",
    "BatchItem",
    "BatchResult",
    "Device",
    "ItemResult",
    "JobHandle",
    "JobStatus",
    "make_device",
]


def make_device(
    profile: DeviceProfile | str,
    *,
    seed: int = 1234,
    noise_scale: float = 1.0,
    calibration: str | None = None,
    store: Path | None = None,
) -> Device:
    """Build the device a profile describes; ``calibration`` overrides the profile's snapshot.

    ``store`` is where a fake device keeps its jobs (so a resumed run can fetch them), and a
    real one its job layouts. Real QPUs (``ibm``, ``braket``) connect here with the SDK's own
    credentials and transpile against the live calibration, saved as a dated snapshot.
    """
    prof = load_profile(profile) if isinstance(profile, str) else profile
    if prof.provider in ("ibm", "braket"):
        if noise_scale != 1.0:
            from qflhw.errors import ConfigError

            raise ConfigError(f"device {prof.name}: noise_scale applies to fake devices only; remove it for a real QPU")
        if prof.provider == "ibm":
            from qflhw.devices.ibm import connect
        else:
            from qflhw.devices.braket import connect
        return connect(prof, seed=seed, calibration=calibration, store=store)
    ref = calibration or prof.calibration or f"{prof.device}/latest"
    cal = _calibration.load(ref)
    if noise_scale != 1.0:
        cal = cal.scaled(noise_scale)
    if prof.provider == "fake":
        from qflhw.devices.fake import FakeDevice

        return FakeDevice(prof, cal, seed=seed, store=store)
    raise AssertionError(prof.provider)
