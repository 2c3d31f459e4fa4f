"""Studies: sweeps of federated runs over devices, calibrations, noise, aggregators and seeds,
and their tidy tables and plots."""
