"""Calibration snapshots: schema and files, importers from the SDKs, published twins, Targets, channels.

* :mod:`~qflhw.calibration.snapshot`: the snapshot schema, loading, saving, references;
* :mod:`~qflhw.calibration.qiskit_import`: snapshots from qiskit backends (IBM, fake or live);
* :mod:`~qflhw.calibration.braket_import`: snapshots from Braket device properties;
* :mod:`~qflhw.calibration.published`: twins built from published median figures;
* :mod:`~qflhw.calibration.target`: a snapshot as a qiskit ``Target`` and Aer gate noise;
* :mod:`~qflhw.calibration.channels`: calibrated gate and idle channels, flagged gates;
* :mod:`~qflhw.calibration.fidelity`: what a twin of a snapshot models and leaves out;
* :mod:`~qflhw.calibration.tools`: diff and what-if scaling of snapshots.
"""
