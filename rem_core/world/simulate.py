"""Simulating a whole world, segment by segment in one process or several, and writing it.

One segment's sweep is ``rem_core.world.segment``, its label errors
``rem_core.world.label_noise``; their names are importable from here too, as before the split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rem_core.cluster import map_in_order
from rem_core.config import WorldConfig, config_hash, config_to_dict
from rem_core.dataset import Dataset, DatasetWriter
from rem_core.errors import InputError
from rem_core.world.lidar import Lidar
from rem_core.world.segment import (
    Segment,
    simulate_segment,
)

__all__ = [
    "simulate_world",
    "write_world",
]

log = logging.getLogger(__name__)


def _simulate_one(config: WorldConfig, index: int) -> Segment:
    return simulate_segment(config, index, _worker_lidar(config))


def _simulate_index(index: int, config: WorldConfig) -> Segment:
    return _simulate_one(config, index)


_LIDARS: dict[str, Lidar] = {}


def _worker_lidar(config: WorldConfig) -> Lidar:
    # one sensor per worker process and world: its ray directions take a while to compute
    key = config_hash(config.lidar)
    if key not in _LIDARS:
        _LIDARS[key] = Lidar(config.lidar)
    return _LIDARS[key]


def simulate_world(
    config: WorldConfig,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    client: Any | None = None,
) -> Iterator[Segment]:
    """Simulate every segment of a world, one at a time (a world may not fit in memory).

    Args:
        config: the world's settings.
        progress: called with ``(segments done, segments in all)`` after each segment.
        workers: processes simulating segments side by side (each segment's randomness
            depends only on ``(seed, index)``, so the output is the same for any number).
        client: a ``distributed.Client``: the segments are simulated as tasks on its
            cluster instead (``rem_core.cluster``; ``workers`` is then unused).

    Yields:
        Segments in the order of ``plan_segments(config)``.
    """
    total = config.n_total_segments
    if workers < 1:
        raise InputError(f"workers: must be >= 1, got {workers}")
    if client is not None:
        segments = map_in_order(client, _simulate_index, range(total), config)
    elif workers == 1 or total <= 1:
        lidar = Lidar(config.lidar)
        segments: Iterator[Segment] = (
            simulate_segment(config, index, lidar) for index in range(total)
        )
    else:
        segments = _simulate_in_processes(config, min(workers, total))
    for index, segment in enumerate(segments):
        log.debug(
            "segment %s: %d frames, %d boxes",
            segment.segment_id,
            len(segment.frames),
            len(segment.boxes),
        )
        if progress is not None:
            progress(index + 1, total)
        yield segment


def _simulate_in_processes(config: WorldConfig, workers: int) -> Iterator[Segment]:
    """Segments in order, simulated by ``workers`` processes, at most ``2 * workers`` ahead
    of the consumer (a segment holds a few million points)."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may be a threaded server (Streamlit)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque = deque()
        next_index = 0
        while pending or next_index < config.n_total_segments:
            while next_index < config.n_total_segments and len(pending) < 2 * workers:
                pending.append(pool.submit(_simulate_one, config, next_index))
                next_index += 1
            yield pending.popleft().result()


def write_world(
    config: WorldConfig,
    out: str | Path,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    workers: int = 1,
    client: Any | None = None,
) -> Dataset:
    """Simulate a world and write it as a data set folder (atomically).

    Args:
        config: the world's settings.
        out: the data set folder to create.
        progress: called with ``(segments done, segments in all)``.
        overwrite: replace an existing data set at ``out``.
        workers: processes simulating segments side by side (same output for any number).
        client: a ``distributed.Client`` to simulate the segments on (same output).

    Returns:
        The written data set, opened.
    """
    manifest = {
        "source": "synthetic world",
        "name": f"world seed {config.seed}",
        "config": config_to_dict(config),
        "config_hash": config_hash(config),
    }
    with DatasetWriter(out, manifest, overwrite=overwrite) as writer:
        for segment in simulate_world(config, progress, workers, client):
            writer.add_segment(
                segment.segment_row(),
                segment.frames,
                segment.boxes,
                (segment.frame_points(f) for f in range(len(segment.frames))),
            )
    return Dataset.open(out)
