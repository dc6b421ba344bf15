"""Training a detector: CenterPoint targets, focal and regression losses, augmentation."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rem_core.boxes import LARGE_MIN_M, bev_corners, expand_ranges
from rem_core.config import DetectorConfig
from rem_core.dataset import Dataset
from rem_core.detect.augment import (
    ObjectDatabase,
    build_object_database,
    crop_window,
    move_frame,
    paste_objects,
)
from rem_core.detect.model import (
    STRIDE,
    BevDetector,
    _direction,
    _torch_setup,
    _train_in_bf16,
    bev_grid,
)
from rem_core.schema import BOX_COLUMNS

log = logging.getLogger(__name__)


def _targets(
    boxes: np.ndarray, ignore: np.ndarray, config: DetectorConfig
) -> dict[str, np.ndarray]:
    """CenterPoint targets of one frame on the output grid.

    Args:
        boxes: ``(N, 7)`` vehicle boxes to detect.
        ignore: ``(K, 7)`` vehicle boxes too sparse to learn from: neither positive nor negative.
        config: the grid, and the options for long vehicles (``long_weight``,
            ``dense_long_targets``).

    Returns:
        ``heat`` and ``weight`` ``(g, g)``; ``reg`` ``(9, g, g)``; ``mask`` ``(g, g)``: the
        weight of the regression at each cell, 0 where nothing is regressed.
    """
    g = config.grid_size // STRIDE
    cell = config.cell_m * STRIDE
    heat = np.zeros((g, g), np.float32)
    weight = np.ones((g, g), np.float32)
    reg = np.zeros((9, g, g), np.float32)
    mask = np.zeros((g, g), np.float32)

    def splat(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u = (b[:, 0] + config.range_m) / cell
        v = (b[:, 1] + config.range_m) / cell
        sigma = np.clip(np.minimum(b[:, 3], b[:, 4]) / cell / 3, 0.7, 3.0)
        reach = np.ceil(3 * sigma).astype(np.int64)
        side = 2 * reach + 1
        owner, k = expand_ranges(np.zeros(len(b), np.int64), side * side)
        i = np.floor(u).astype(np.int64)[owner] - reach[owner] + k // side[owner]
        j = np.floor(v).astype(np.int64)[owner] - reach[owner] + k % side[owner]
        ci = np.floor(u).astype(np.int64)[owner]
        cj = np.floor(v).astype(np.int64)[owner]
        value = np.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * sigma[owner] ** 2))
        ok = (i >= 0) & (i < g) & (j >= 0) & (j < g)
        return i[ok], j[ok], value[ok].astype(np.float32), np.column_stack([u, v])

    if len(ignore):
        i, j, value, _ = splat(ignore)
        weight[i[value > 0.1], j[value > 0.1]] = 0.0
    if len(boxes):
        i, j, value, uv = splat(boxes)
        np.maximum.at(heat, (i, j), value)
        ci, cj = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = (ci >= 0) & (ci < g) & (cj >= 0) & (cj < g)
        heat[ci[inside], cj[inside]] = 1.0
        weight[ci[inside], cj[inside]] = 1.0
        # Regress from the centre cell and its 8 neighbours, so a peak one cell off still
        # decodes the right box; where neighbourhoods meet, the nearer centre wins.
        di, dj = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
        ni = (ci[:, None] + di.reshape(1, -1)).reshape(-1)
        nj = (cj[:, None] + dj.reshape(1, -1)).reshape(-1)
        owner = np.repeat(np.arange(len(boxes)), 9)
        long = boxes[:, 3] >= LARGE_MIN_M
        if config.dense_long_targets and long.any():
            li, lj, lowner = _cells_inside(boxes, np.flatnonzero(long), config)
            ni, nj, owner = np.r_[ni, li], np.r_[nj, lj], np.r_[owner, lowner]
        gap = np.hypot(uv[owner, 0] - ni - 0.5, uv[owner, 1] - nj - 0.5)
        order = np.argsort(-gap, kind="stable")  # farthest first: the nearest is written last
        ni, nj, owner = ni[order], nj[order], owner[order]
        ok = (ni >= 0) & (ni < g) & (nj >= 0) & (nj < g)
        ni, nj, owner = ni[ok], nj[ok], owner[ok]
        b = boxes[owner]
        reg[:, ni, nj] = np.stack(
            [
                uv[owner, 0] - ni,
                uv[owner, 1] - nj,
                b[:, 2],
                np.log(b[:, 3]),
                np.log(b[:, 4]),
                np.log(b[:, 5]),
                np.sin(2 * b[:, 6]),
                np.cos(2 * b[:, 6]),
                _direction(b[:, 6]),
            ]
        )
        mask[ni, nj] = np.where(long[owner], config.long_weight, 1.0)
    return {"heat": heat, "weight": weight, "reg": reg, "mask": mask}


def _cells_inside(
    boxes: np.ndarray, which: np.ndarray, config: DetectorConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, owner)`` of the output cells whose centres lie in the footprints of
    ``boxes[which]`` (cells may fall outside the grid)."""
    cell = config.cell_m * STRIDE
    sub = boxes[which]
    corners = bev_corners(sub)
    lo = np.floor((corners.min(1) + config.range_m) / cell - 0.5).astype(np.int64)
    hi = np.ceil((corners.max(1) + config.range_m) / cell - 0.5).astype(np.int64)
    span = hi - lo + 1
    owner, k = expand_ranges(np.zeros(len(sub), np.int64), span[:, 0] * span[:, 1])
    i = lo[owner, 0] + k // span[owner, 1]
    j = lo[owner, 1] + k % span[owner, 1]
    dx = (i + 0.5) * cell - config.range_m - sub[owner, 0]
    dy = (j + 0.5) * cell - config.range_m - sub[owner, 1]
    cos, sin = np.cos(sub[owner, 6]), np.sin(sub[owner, 6])
    inside = (np.abs(cos * dx + sin * dy) <= sub[owner, 3] / 2) & (
        np.abs(-sin * dx + cos * dy) <= sub[owner, 4] / 2
    )
    return i[inside], j[inside], which[owner[inside]]


def _loss(heads: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """CenterNet focal loss on the heatmap, L1 on the regression and cross-entropy on the
    direction at the regression cells, each cell weighted by ``mask``."""
    pred = torch.sigmoid(heads[:, 0]).clamp(1e-4, 1 - 1e-4)
    heat, weight = t["heat"], t["weight"]
    pos = heat.eq(1).float()
    pos_loss = -torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = -torch.log(1 - pred) * pred**2 * (1 - heat) ** 4 * (1 - pos) * weight
    n_pos = pos.sum().clamp(min=1)
    focal = (pos_loss.sum() + neg_loss.sum()) / n_pos
    mask = t["mask"].unsqueeze(1)
    n = (mask > 0).sum().clamp(min=1)
    reg = (F.l1_loss(heads[:, 1:9], t["reg"][:, :8], reduction="none") * mask).sum() / (n * 8)
    direction = F.binary_cross_entropy_with_logits(
        heads[:, 9:10], t["reg"][:, 8:9], reduction="none"
    )
    direction = (direction * mask).sum() / n
    loss = focal + 2.0 * reg + 0.2 * direction
    return loss, {
        "focal": float(focal.detach()),
        "reg": float(reg.detach()),
        "dir": float(direction.detach()),
    }


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


def default_steps(config: DetectorConfig, frames: int) -> int:
    """Optimiser steps of ``config.epochs`` passes over ``frames`` training frames."""
    return -(-frames // config.batch_size) * config.epochs


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

    def produce() -> None:
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


def train_detector(
    config: DetectorConfig,
    dataset: Dataset,
    segments: Sequence[str] | None = None,
    member: int = 0,
    progress: Callable[[int, int], None] | None = None,
    labels: pd.DataFrame | None = None,
    steps: int | None = None,
    ema_decay: float = 0.0,
) -> BevDetector:
    """Train one detector on the labelled source pool (or any labels of any segments).

    Args:
        config: architecture and training recipe.
        dataset: the data set; its ``source`` split is used unless ``segments`` is given.
        segments: segment ids to train on.
        member: ensemble member; the weights are initialised with seed ``config.seed + member``.
        progress: called with ``(steps done, steps in all)``.
        labels: the vehicle boxes to learn, instead of the data set's ground truth: rows with
            ``segment_id, frame_index``, the box columns and ``num_points`` (and optionally
            ``label_noise``; ``class`` other than ``vehicle`` is left out), such as human
            labels mixed with auto-labels. Objects of the frames that no row describes are
            background, as for a real labelling. Rows whose ``source`` column (if any) is
            ``"pseudo"`` are learnt but never pasted into other frames: a wrong pseudo-label
            pasted many times would teach its error many times.
        steps: optimiser steps in all, whatever the number of frames (default:
            ``config.epochs`` passes over the frames). A fixed count keeps the training
            cost of a larger label set equal to the source recipe's.
        ema_decay: with a value in (0, 1), return the exponential moving average of the
            weights (and batch-norm statistics) over the steps, ``w <- d * w + (1 - d) *
            w_step`` (about the last ``1 / (1 - d)`` steps), instead of the last step's.

    Returns:
        The trained model in eval mode, on the CPU.
    """
    (model,) = train_detectors(
        config, dataset, [member], segments, progress, labels, steps, ema_decay
    )
    return model


def train_detectors(
    config: DetectorConfig,
    dataset: Dataset,
    members: Sequence[int],
    segments: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    labels: pd.DataFrame | None = None,
    steps: int | None = None,
    ema_decay: float = 0.0,
) -> list[BevDetector]:
    """Train several ensemble members at once, step by step on the same batches.

    Members differ only by their initialisation (``config.seed + member``): the data order
    and augmentation follow ``config.data_seed`` for all. So each batch is built once and
    every member takes its step on it, which is what building it costs saved for all but one
    (building batches is most of a step on a CPU). Each model is the one
    ``train_detector(config, dataset, segments, member, ...)`` trains alone: the same to
    the bit on the same number of torch threads (alone, a member leaves one core to the
    batch worker; several keep them all, which changes the rounding of sums, not the model).

    Args:
        members: the members to train, e.g. ``range(config.ensemble_size)``.
        Others: as ``train_detector``.

    Returns:
        The trained models in ``members``' order, in eval mode, on the CPU.
    """
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay: must be in [0, 1), got {ema_decay}")
    device = _torch_setup(config)
    if segments is None:
        segments = dataset.split_ids("source")
    if not segments:
        raise ValueError(f"{dataset.root}: no source segments to train a detector on")
    boxes = dataset.boxes if labels is None else labels
    if "class" in boxes:
        boxes = boxes[boxes["class"] == "vehicle"]
    if "label_noise" not in boxes:
        boxes = boxes.assign(label_noise=False)
    vehicles = boxes[boxes["segment_id"].isin(segments)]
    frames = dataset.frames[dataset.frames["segment_id"].isin(segments)]
    samples = []  # (points, boxes to learn, boxes to ignore)
    pasteable = []  # per frame: the boxes to learn that may be pasted elsewhere
    by_frame = {k: g for k, g in vehicles.groupby(["segment_id", "frame_index"])}
    for segment_id in segments:
        pts, offsets = dataset.segment_points(segment_id)
        seg_frames = frames.loc[frames["segment_id"] == segment_id, "frame_index"].sort_values()
        for row, f in enumerate(seg_frames):
            b = by_frame.get((segment_id, f), vehicles.iloc[:0])
            learn = (b["num_points"] >= config.min_train_points) & ~b["label_noise"].astype(bool)
            frame_points = pts[offsets[row] : offsets[row + 1]]
            samples.append(
                (
                    frame_points,
                    b.loc[learn, BOX_COLUMNS].to_numpy(),
                    b.loc[~learn, BOX_COLUMNS].to_numpy(),
                )
            )
            if config.paste_large:
                human = learn & (b["source"] != "pseudo") if "source" in b else learn
                pasteable.append((frame_points, b.loc[human, BOX_COLUMNS].to_numpy()))
    if not samples:
        raise ValueError(f"{dataset.root}: the training segments hold no frames")
    log.info("training on %d frames of %d segments", len(samples), len(segments))

    database = None
    if config.paste_large:
        database = build_object_database(
            pasteable, min_length=LARGE_MIN_M, min_points=max(config.min_train_points, 1)
        )
        log.info("pasting from %d long objects", len(database))

    if not members:
        return []
    models, optimizers, schedules = [], [], []
    total = default_steps(config, len(samples)) if steps is None else steps
    for member in members:
        with torch.random.fork_rng(devices=[]):  # seed the weights, not the global state
            torch.manual_seed(config.seed + member)
            # Channels-last convolutions run about a fifth faster on CPU (oneDNN's layout).
            model = BevDetector(config).to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=max(total, 1), pct_start=0.2
        )
        models.append(model.train())
        optimizers.append(optimizer)
        schedules.append(schedule)
    averages = [
        AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        for m in (models if ema_decay > 0 else [])
    ]
    steps_per_epoch = max(default_steps(replace(config, epochs=1), len(samples)), 1)
    bf16 = _train_in_bf16(config, device)
    log.info("training %d member(s) in %s", len(members), "bf16 autocast" if bf16 else "fp32")
    start = time.perf_counter()
    threads = torch.get_num_threads()
    light = _crop_cells(config) < config.grid_size and len(models) == 1
    if config.loader == "process" and light and not config.num_threads and threads > 1:
        # The worker builds a batch of crops in about as long as one network needs for it
        # on one core: one core each (on 2 cores, 31 ms a step against 58 with two torch
        # threads). Whole frames, or several members, are more network than batch: they
        # keep every core (5 members: 129 ms a step, against 148 on one core).
        torch.set_num_threads(threads - 1)
    try:
        batches = _batch_stream(samples, config, database, total)
        for step, (grid, batch) in enumerate(batches, start=1):
            grid = grid.to(device).contiguous(memory_format=torch.channels_last)
            batch = {key: t.to(device) for key, t in batch.items()}
            for model, optimizer, schedule in zip(models, optimizers, schedules, strict=True):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    heads, _ = model(grid)
                loss, parts = _loss(heads.float(), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            if averages:
                for model, average in zip(models, averages, strict=True):
                    average.update_parameters(model)
            if progress is not None:
                progress(step, total)
            if step % steps_per_epoch == 0 or step == total:
                log.debug(
                    "step %d of %d: loss %.4f %s (%.0f s)",
                    step,
                    total,
                    float(loss.detach()),
                    parts,
                    time.perf_counter() - start,
                )
    finally:
        torch.set_num_threads(threads)
    if averages:
        models = [average.module for average in averages]
    return [m.eval().to("cpu", memory_format=torch.contiguous_format) for m in models]
