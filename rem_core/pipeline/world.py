"""The world stage: the built-in synthetic world, simulated once into the cache."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rem_core.cache import CacheEntry
from rem_core.config import WorldConfig
from rem_core.dataset import Dataset
from rem_core.pipeline.keys import world_key
from rem_core.world import write_world

__all__ = ["ensure_world", "world_path"]

log = logging.getLogger(__name__)


def world_path(config: WorldConfig, root: Path | None = None) -> Path:
    """Where the world of ``config`` is cached."""
    return CacheEntry.of("world", world_key(config), root).path


def ensure_world(
    config: WorldConfig,
    root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    client: Any | None = None,
) -> Dataset:
    """The cached data set of a world, simulated and written first if missing.

    Args:
        config: the world's settings.
        root: the cache root (default ``rem_core.cache.cache_root``).
        progress: called with ``(segments done, segments in all)`` while simulating.
        workers: simulating processes (default: one per core for a world of 16 segments
            or more, else 1: starting processes costs more than a small world).
        client: a ``distributed.Client``: the segments are simulated on its cluster
            (``rem_core.cluster``; the same world).
    """
    entry = CacheEntry.of("world", world_key(config), root, marks=("dataset.json",))
    path = entry.path
    with entry.computing() as todo:
        if not todo:
            return Dataset.open(path)
        log.info("simulating world %s into %s", entry.key, path)
        if workers is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            workers = cores if config.n_total_segments >= 16 else 1
        return write_world(
            config, path, progress=progress, overwrite=True, workers=workers, client=client
        )
