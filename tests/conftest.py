"""Shared fixtures: tiny specs that run in seconds on fake devices, a socket guard, and the
``system`` marker on everything under ``tests/system``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import TINY_SPEC

# No per-example time limit: on a shared 2-core machine a first example (imports, caches) can
# exceed Hypothesis' 200 ms default, and speed is measured in benchmarks/, not in tests.
settings.register_profile("qflhw", deadline=None)
settings.load_profile("qflhw")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    system = Path(__file__).parent / "system"
    for item in items:
        if Path(str(item.fspath)).is_relative_to(system):
            item.add_marker(pytest.mark.system)



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
