"""Training batches: frames augmented and cropped, in shuffled epochs, built ahead of the steps.

Batches are built in a forked worker process (``config.loader == "process"``) or a
background thread, so that building one overlaps the network's step on the previous one.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator

import numpy as np
import torch

from rem_core.config import DetectorConfig
from rem_core.detect.augment import ObjectDatabase, crop_window, move_frame, paste_objects
from rem_core.detect.model import STRIDE, bev_grid
from rem_core.detect.targets import _targets


def _examples(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    config: DetectorConfig,
    rng: np.random.Generator,
    database: ObjectDatabase | None = None,
) -> Iterator[tuple[torch.Tensor, dict[str, np.ndarray]]]:
    """Training examples ``(grid, targets)`` without end: epochs of shuffled frames (an
    epoch's order is drawn when its first example is asked for).

    Per frame: long objects of ``database`` pasted in (``config.paste_large``), the global
    flip, turn and scale (``config.augment``), then a square crop (``config.crop_m``) or
    the whole frame.
    """
    g = config.grid_size
    crop = _crop_cells(config)
    while True:
        for idx in rng.permutation(len(samples)):
            pts, learn, ignore = samples[idx]
            if database is not None and config.paste_large:
                pts, learn = paste_objects(
                    pts,
                    learn,
                    ignore,
                    database,
                    config.paste_large,
                    config.paste_stretch,
                    config.range_m,
                    rng,
                )
            if config.augment:
                pts, (learn, ignore) = move_frame(pts, [learn, ignore], rng)
            target = _targets(learn, ignore, config)
            if crop == g:
                yield bev_grid(pts, config), target
                continue
            i0, j0 = crop_window(learn, g, crop, config.cell_m, rng)
            o0, p0, n = i0 // STRIDE, j0 // STRIDE, crop // STRIDE
            yield (
                bev_grid(pts, config, window=(i0, j0, crop)),
                {key: v[..., o0 : o0 + n, p0 : p0 + n] for key, v in target.items()},
            )


def _batches(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    config: DetectorConfig,
    rng: np.random.Generator,
    database: ObjectDatabase | None = None,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Training batches ``(grids, targets)`` of ``config.batch_size`` examples each, without
    end (``_examples``)."""
    examples = _examples(samples, config, rng, database)
    while True:
        chunk = list(itertools.islice(examples, config.batch_size))
        yield (
            torch.stack([grid for grid, _ in chunk]),
            {key: torch.from_numpy(np.stack([t[key] for _, t in chunk])) for key in chunk[0][1]},
        )


def _crop_cells(config: DetectorConfig) -> int:
    """Input cells per side of a training crop (the whole grid's without crops)."""
    if not config.crop_m:
        return config.grid_size
    return min(round(config.crop_m / config.cell_m), config.grid_size)


_DONE = object()


def _prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """``items``, produced by a background thread up to ``depth`` ahead.

    Building a batch (voxelising four frames, their targets) is numpy and torch work that
    releases the GIL, so it overlaps the previous step's backward pass: a step takes about
    a tenth less on 2 cores. The order is that of ``items``; an error in the producer is
    raised here; leaving the loop early stops the producer.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                out.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer
            put((_DONE, exc))

    worker = threading.Thread(target=produce, name="rem-batches", daemon=True)
    worker.start()
    try:
        while True:
            item, error = out.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _prefetch_in_process(
    make_items: Callable[[], Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]],
    depth: int = 3,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The batches of ``make_items()``, built by a forked worker process up to ``depth`` ahead.

    A thread cannot overlap building a batch with the network's step: both hold the GIL
    for much of their work, and on 2 cores a step took as long as the two one after the
    other. A process has its own interpreter; it runs torch on one thread, and the batches
    come back through a pipe as numpy arrays (about 3 MB each, a millisecond). Forking
    shares the training frames with the worker without copying them.

    The order is that of ``make_items()``; an error in the worker is raised here as a
    ``RuntimeError`` carrying its traceback, and a worker that dies is reported; leaving the
    loop early stops the worker.
    """
    context = multiprocessing.get_context("fork")
    out = context.Queue(maxsize=depth)
    parent = os.getpid()

    def produce() -> None:
        _die_with(parent)
        torch.set_num_threads(1)
        try:
            for grid, batch in make_items():
                out.put((grid.numpy(), {key: t.numpy() for key, t in batch.items()}))
            out.put(("done", None))
        except BaseException:  # handed to the consumer, with its traceback
            out.put(("error", traceback.format_exc()))
        finally:
            out.close()
            out.join_thread()

    worker = context.Process(target=produce, name="rem-batches", daemon=True)
    worker.start()
    try:
        while True:
            try:
                first, second = out.get(timeout=1.0)
            except queue.Empty:
                if not worker.is_alive():
                    raise RuntimeError(
                        f"the training batches' worker process died (exit code {worker.exitcode})"
                    ) from None
                continue
            if isinstance(first, str):
                if first == "error":
                    raise RuntimeError(f"building a training batch failed:\n{second}")
                return
            yield torch.from_numpy(first), {key: torch.from_numpy(v) for key, v in second.items()}
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        out.close()
        out.cancel_join_thread()


def _die_with(parent: int) -> None:
    """End this forked worker when its parent ends, however it ends (Linux: the parent-death
    signal). A parent killed with SIGKILL never stops its worker, which would otherwise wait
    for ever on a full queue that only it still holds open."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


def _batch_stream(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    config: DetectorConfig,
    database: ObjectDatabase | None,
    total: int,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The first ``total`` batches of ``_batches``, built in a worker process where the
    platform can fork (``config.loader == "process"``), else in a background thread: the
    same batches either way."""

    def make() -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        rng = np.random.default_rng(config.data_seed)
        return itertools.islice(_batches(samples, config, rng, database), total)

    if config.loader == "process" and "fork" in multiprocessing.get_all_start_methods():
        return _prefetch_in_process(make)
    return _prefetch(make())
