"""Shared fixtures: one tiny world per test session, built in memory and on disk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# `make test` runs two pytest workers (pytest-xdist) on this project's two cores. Each gets
# one thread, and so does every process it starts (jobs, `rem`, servers): with two threads
# each, torch's and OpenMP's spinning threads starve each other (a run took 4x as long).
# Set before torch loads, which reads it then: before the first import of rem_core here
# (rem_core.pipeline imports torch).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

from rem_core.config import WorldConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import ensure_world, world_path
from rem_core.world import write_world

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_config() -> WorldConfig:
    return WorldConfig.tiny()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory, tiny_config: WorldConfig) -> Dataset:
    """The tiny world written as a data set folder (read-only for tests)."""
    return write_world(tiny_config, tmp_path_factory.mktemp("world") / "tiny")


@pytest.fixture(scope="session")
def seed_tiny_world(tiny_world: Dataset) -> Callable[[Path], Dataset]:
    """Put a copy of the tiny world in a cache root, as the world stage would have, and
    return it: for tests of what comes after the world, which would each spend five
    seconds simulating it again. Tests of building the world build it."""

    def seed(root: Path) -> Dataset:
        path = world_path(WorldConfig.tiny(), root)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tiny_world.root, path)
        return ensure_world(WorldConfig.tiny(), root=root)

    return seed


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """A detector's ``num_threads`` (and training, which leaves a core to its batch worker
    while it runs) sets torch's process-wide thread count; give it back after each module."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
