"""Shared fixtures: one tiny world per test session, built in memory and on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rem_core.config import WorldConfig
from rem_core.dataset import Dataset
from rem_core.world import write_world

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# `make test` runs two pytest workers (pytest-xdist) on this project's two cores. Each gets
# one thread, and so does every process it starts (jobs, `rem`, servers): with two threads
# each, torch's and OpenMP's spinning threads starve each other (a run took 4x as long).
# Set before torch loads, which reads it then.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


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
