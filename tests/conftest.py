"""Shared fixtures: one tiny world per test session, built in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from rem_core.config import WorldConfig
from rem_core.dataset import Dataset
from rem_core.world import write_world

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_config() -> WorldConfig:
    return WorldConfig.tiny()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory, tiny_config: WorldConfig) -> Dataset:
    """The tiny world written as a data set folder (read-only for tests)."""
    return write_world(tiny_config, tmp_path_factory.mktemp("world") / "tiny")


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """A detector's ``num_threads`` (and training, which leaves a core to its batch worker
    while it runs) sets torch's process-wide thread count; give it back after each module."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
