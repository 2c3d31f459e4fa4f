"""Build the device a profile describes: a fake twin, a real QPU (IBM Runtime, Amazon Braket),
its emulation (``emulate = true``: the same submission code in the provider's local mode), or an
offline stand-in of any of them that transpiles like the real one but never runs.

Providers are imported only when a profile asks for them, so ``import qflhw`` needs no cloud SDK
credentials and opens no connection.
"""

from __future__ import annotations

from pathlib import Path

from qflhw.calibration import snapshot as _calibration
from qflhw.calibration.snapshot import Calibration
from qflhw.config.profiles import DeviceProfile, load_profile
from qflhw.config.spec import TwinSpec
from qflhw.devices.base import Batch, Device, JobHandle
from qflhw.errors import ConfigError


def make_device(
    profile: DeviceProfile | str,
    *,
    seed: int = 1234,
    noise_scale: float = 1.0,
    calibration: str | Calibration | None = None,
    store: Path | None = None,
    max_time: int | None = None,
    twin: TwinSpec | None = None,
) -> Device:
    """Build the device a profile describes; ``calibration`` overrides the profile's snapshot
    (a reference, or for a fake device a :class:`Calibration` itself, e.g. a drifted one).

    ``store`` is where a fake device keeps its jobs (so a resumed run can fetch them), and a
    real one its job layouts. ``twin`` overrides the keys of the profile's ``[twin]`` table it
    sets (fake devices only). Real QPUs (``ibm``, ``braket``) connect here with the SDK's own
    credentials and transpile against the live calibration, saved as a dated snapshot; a retired
    one is refused. ``emulate = true`` builds the provider's local mode instead (no network).
    ``max_time`` (seconds) bounds an IBM device's Runtime execution mode.
    """
    prof = load_profile(profile) if isinstance(profile, str) else profile
    if prof.provider in ("ibm", "braket"):
        if isinstance(calibration, Calibration):
            raise ConfigError(f"device {prof.name}: a real QPU uses its live calibration; give a reference, not a snapshot object")
        if noise_scale != 1.0:
            raise ConfigError(f"device {prof.name}: noise_scale applies to fake devices only; remove it for a real QPU")
        if twin is not None:
            raise ConfigError(f"device {prof.name}: [twin] options apply to fake devices only; remove them for a real QPU")
        if prof.emulate:
            return emulated_device(prof, seed=seed, calibration=calibration, store=store, max_time=max_time)
        prof.check_live()
        if prof.provider == "ibm":
            from qflhw.devices.ibm import connect as connect_ibm

            return connect_ibm(prof, seed=seed, calibration=calibration, store=store, max_time=max_time)
        from qflhw.devices.braket import connect as connect_braket

        return connect_braket(prof, seed=seed, calibration=calibration, store=store)
    from qflhw.devices.fake import FakeDevice

    return FakeDevice(
        prof, _calibration_of(prof, calibration, noise_scale), seed=seed, store=store, twin=prof.twin.merged(twin)
    )


def emulated_device(
    profile: DeviceProfile, *, seed: int = 1234, calibration: str | None = None, store: Path | None = None,
    max_time: int | None = None,
) -> Device:
    """The dress rehearsal of a real QPU: the provider's own submission path, offline.

    IBM: :class:`~qflhw.devices.ibm.IBMDevice` in Runtime local testing mode on the Aer twin of
    the snapshot (same primitives, pubs, tags and execution mode). Braket:
    :class:`~qflhw.devices.braket.BraketDevice` on ``LocalEmulator`` built from the profile's
    ``properties`` JSON (it enforces native gates, connectivity and coupler directions).
    """
    cal = offline_calibration(profile, calibration)
    if profile.provider == "ibm":
        from qflhw.devices.ibm import IBMDevice

        return IBMDevice(profile, cal, seed=seed, store=store, emulated=True, max_time=max_time)
    from qflhw.devices.braket import BraketDevice, local_emulator

    return BraketDevice(profile, cal, device=local_emulator(profile), seed=seed, store=store, emulated=True)


class OfflineDevice(Device):
    """A device on paper: it transpiles like the real one but never runs anything."""

    def submit(self, batch: Batch, shots: int | None) -> JobHandle:
        raise ConfigError(f"device {self.name}: an offline stand-in cannot run jobs")

    def job(self, job_id: str) -> JobHandle:
        raise ConfigError(f"device {self.name}: an offline stand-in has no jobs")


def offline_calibration(profile: DeviceProfile, override: str | None = None, noise_scale: float = 1.0) -> Calibration:
    """The snapshot a profile's device is twinned or priced with, without any network.

    ``override`` (a client's ``calibration``) wins. A real QPU uses its newest live snapshot when
    one was saved (IBM under the backend name, Braket under the profile name), else the
    profile's ``calibration`` stand-in; a fake profile its ``calibration`` (or the device's
    newest snapshot).
    """
    if override:
        cal = _calibration.load(override)
    else:
        refs = [f"{profile.name}/latest"] if profile.provider == "braket" else []
        refs.append(profile.calibration or f"{profile.device}/latest")
        found: Calibration | None = None
        for ref in refs[:-1]:
            try:
                found = _calibration.load(ref)
                break
            except ConfigError:
                continue
        cal = found or _calibration.load(refs[-1])
    return cal.scaled(noise_scale) if noise_scale != 1.0 else cal


def _calibration_of(profile: DeviceProfile, calibration: str | Calibration | None, noise_scale: float) -> Calibration:
    if isinstance(calibration, Calibration):
        return calibration.scaled(noise_scale) if noise_scale != 1.0 else calibration
    return offline_calibration(profile, calibration, noise_scale)


def offline_device(
    profile: DeviceProfile | str,
    *,
    seed: int = 1234,
    noise_scale: float = 1.0,
    calibration: str | Calibration | None = None,
    twin: TwinSpec | None = None,
) -> OfflineDevice:
    """The offline stand-in of a profile's device (see :func:`offline_calibration`); a fake
    device's stand-in compiles as its twin would (``[twin] virtual_rz``, ``channel_correction``)."""
    prof = load_profile(profile) if isinstance(profile, str) else profile
    options = prof.twin.merged(twin) if prof.provider == "fake" else TwinSpec()
    return OfflineDevice(
        prof,
        _calibration_of(prof, calibration, noise_scale),
        seed=seed,
        virtual_rz=options.virtual_rz,
        channel_correction=options.channel_correction,
    )
