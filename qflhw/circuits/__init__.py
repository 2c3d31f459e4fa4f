"""Circuits: the ansatz library, per-device readout-aware transpilation with scheduled ESP, ALAP
schedules, measurement bases, and provider-native rewrites (IonQ natives, IQM's virtual rz)."""
