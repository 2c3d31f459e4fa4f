"""Circuits: the ansatz library, per-device transpilation with ESP, measurement bases, and
provider-native rewrites (IonQ)."""
