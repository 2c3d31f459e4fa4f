"""Shared fixtures: tiny specs that run in seconds on fake devices."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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


@pytest.fixture
def tiny_spec_text() -> str:
    return TINY_SPEC


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to connect a socket fails the test: everything here is offline."""

    def refuse(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise AssertionError(f"test tried to open a network connection to {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
