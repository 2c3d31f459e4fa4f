"""qflhw under other frameworks' models: a PennyLane device and Qiskit V2 primitives.

* :mod:`~qflhw.plugins.session`: one qflhw device used directly, each call one provider job,
  transpiled once per circuit structure, charged to a budget and journaled like a run's jobs;
* :mod:`~qflhw.plugins.pennylane`: the ``qflhw.qpu`` PennyLane device
  (``qml.device("qflhw.qpu", wires=4, profile="fake_torino", shots=1000)``);
* :mod:`~qflhw.plugins.primitives`: ``Estimator`` / ``Sampler`` (``BaseEstimatorV2`` /
  ``BaseSamplerV2``), re-exported as :mod:`qflhw.primitives`.

PennyLane and the primitives are imported only when these modules are.
"""
