"""Devices: the ``Device`` / ``JobHandle`` interface and its providers.

* :mod:`~qflhw.devices.base`: batches, results, the Device and JobHandle interfaces;
* :mod:`~qflhw.devices.factory`: ``make_device`` from a profile;
* :mod:`~qflhw.devices.fake` + :mod:`~qflhw.devices.simulator` + :mod:`~qflhw.devices.kernel`:
  local noisy twins, scheduled, simulated by a batched kernel;
* :mod:`~qflhw.devices.ibm`, :mod:`~qflhw.devices.braket`: real QPUs, sharing
  :mod:`~qflhw.devices.remote` (job layouts, waiting, snapshots, scrubbing secrets);
* :mod:`~qflhw.devices.faulty`: fault injection for tests.

Cloud SDKs are imported only when a profile asks for them.
"""
