"""The disk cache: ``<root>/<stage>/<key>/``, each entry written to a temporary folder first.

The root is ``$REM_CACHE_DIR`` if set, else ``./cache``. A stage's key hashes its config
and the keys of the stages it reads, so a changed setting never reuses a stale result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from rem_core.config import WorldConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.world import write_world

__all__ = ["cache_root", "dataset_key", "ensure_world", "world_path"]

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """The cache folder: ``$REM_CACHE_DIR`` or ``./cache``."""
    return Path(os.environ.get("REM_CACHE_DIR") or "cache").resolve()


def dataset_key(dataset: Dataset) -> str:
    """A key for what a data set holds: the hash of the config that made it, else of its
    location and counts (an imported data set)."""
    if dataset.manifest.get("config_hash"):
        return str(dataset.manifest["config_hash"])
    counts = dataset.manifest.get("counts", {})
    return config_hash_text(f"{dataset.root.resolve()}|{sorted(counts.items())}")


def config_hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def world_path(config: WorldConfig, root: Path | None = None) -> Path:
    """Where the world of ``config`` is cached."""
    return (root or cache_root()) / "world" / config_hash(config)


def ensure_world(
    config: WorldConfig,
    root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Dataset:
    """The cached data set of a world, simulated and written first if missing.

    Args:
        config: the world's settings.
        root: the cache root (default :func:`cache_root`).
        progress: called with ``(segments done, segments in all)`` while simulating.
        workers: simulating processes (default: one per core for a world of 16 segments
            or more, else 1: starting processes costs more than a small world).
    """
    path = world_path(config, root)
    if (path / "dataset.json").is_file():
        return Dataset.open(path)
    log.info("simulating world %s into %s", config_hash(config), path)
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = cores if config.n_total_segments >= 16 else 1
    return write_world(config, path, progress=progress, overwrite=True, workers=workers)
