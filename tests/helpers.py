"""What several test modules share: a tiny spec that runs in seconds on two fake devices."""

from __future__ import annotations

from pathlib import Path

TINY_SPEC = """
name = "tiny"
seed = 3
rounds = 2

[data]
dataset = "digits"
classes = [0, 1]
max_train_per_client = 8

[model]
qubits = 2
layers = 1

[training]
batch_size = 4
learning_rate = 0.1
shots = 200

[[clients]]
name = "a"
device = "fake_fez"

[[clients]]
name = "b"
device = "fake_kyiv"
"""

ROOT = Path(__file__).resolve().parent.parent  # the repository: jobs/, backends/, calibration/
