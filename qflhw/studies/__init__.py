"""Studies: sweeps of federated runs over devices, calibrations, noise, aggregators and seeds,
and their tidy tables and plots; and plans: the settings that fit a budget, rehearsed on the twins."""
