"""Training a detector: the ensemble's members step by step on the same batches.

CenterPoint targets and the loss are in ``rem_core.detect.targets``; augmentation in
``rem_core.detect.augment``; batches, and the worker that builds them ahead, in
``rem_core.detect.batches``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rem_core.config import DetectorConfig
from rem_core.dataset import Dataset
from rem_core.detect.augment import ObjectDatabase, build_object_database
from rem_core.detect.batches import _batch_stream, _crop_cells
from rem_core.detect.model import BevDetector, _torch_setup, _train_in_bf16
from rem_core.detect.targets import _loss
from rem_core.errors import InputError
from rem_core.geometry import LARGE_MIN_M
from rem_core.schema import BOX_COLUMNS

__all__ = [
    "default_steps",
    "train_detector",
    "train_detectors",
]

log = logging.getLogger(__name__)

#: A training frame: its points, the boxes to learn and the boxes to ignore.
_Sample = tuple[np.ndarray, np.ndarray, np.ndarray]


def default_steps(config: DetectorConfig, frames: int) -> int:
    """Optimiser steps of ``config.epochs`` passes over ``frames`` training frames."""
    return -(-frames // config.batch_size) * config.epochs


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


@dataclass
class _Members:
    """The ensemble in training: each member's model, optimiser, schedule and EMA (if any)."""

    models: list[BevDetector]
    optimizers: list[torch.optim.Optimizer]
    schedules: list[torch.optim.lr_scheduler.LRScheduler]
    averages: list[AveragedModel]


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
        raise InputError(f"ema_decay: must be in [0, 1), got {ema_decay}")
    device = _torch_setup(config)
    if segments is None:
        segments = dataset.split_ids("source")
    if not segments:
        raise InputError(f"{dataset.root}: no source segments to train a detector on")
    samples, pasteable = _training_samples(config, dataset, segments, labels)
    log.info("training on %d frames of %d segments", len(samples), len(segments))
    database = _paste_database(config, pasteable)
    if not members:
        return []
    total = default_steps(config, len(samples)) if steps is None else steps
    ensemble = _new_members(config, members, device, total, ema_decay)
    _run_steps(config, ensemble, samples, database, total, device, progress)
    models = [a.module for a in ensemble.averages] if ensemble.averages else ensemble.models
    return [m.eval().to("cpu", memory_format=torch.contiguous_format) for m in models]


def _training_samples(
    config: DetectorConfig,
    dataset: Dataset,
    segments: Sequence[str],
    labels: pd.DataFrame | None,
) -> tuple[list[_Sample], list[tuple[np.ndarray, np.ndarray]]]:
    """Each training frame's points and boxes to learn and ignore, and its boxes to paste."""
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
        raise InputError(f"{dataset.root}: the training segments hold no frames")
    return samples, pasteable


def _paste_database(
    config: DetectorConfig, pasteable: list[tuple[np.ndarray, np.ndarray]]
) -> ObjectDatabase | None:
    """The long objects to paste into training frames, or ``None`` without pasting."""
    if not config.paste_large:
        return None
    database = build_object_database(
        pasteable, min_length=LARGE_MIN_M, min_points=max(config.min_train_points, 1)
    )
    log.info("pasting from %d long objects", len(database))
    return database


def _new_members(
    config: DetectorConfig,
    members: Sequence[int],
    device: torch.device,
    total: int,
    ema_decay: float,
) -> _Members:
    """Each member's seeded model, optimiser, schedule over ``total`` steps and EMA (if any)."""
    models, optimizers, schedules = [], [], []
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
    return _Members(models, optimizers, schedules, averages)


def _run_steps(
    config: DetectorConfig,
    ensemble: _Members,
    samples: list[_Sample],
    database: ObjectDatabase | None,
    total: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Every member's ``total`` optimiser steps on the batch stream, logging once an epoch."""
    steps_per_epoch = max(default_steps(replace(config, epochs=1), len(samples)), 1)
    bf16 = _train_in_bf16(config, device)
    log.info(
        "training %d member(s) in %s", len(ensemble.models), "bf16 autocast" if bf16 else "fp32"
    )
    start = time.perf_counter()
    threads = torch.get_num_threads()
    light = _crop_cells(config) < config.grid_size and len(ensemble.models) == 1
    if config.loader == "process" and light and not config.num_threads and threads > 1:
        # The worker builds a batch of crops in about as long as one network needs for it
        # on one core: one core each (on 2 cores, 31 ms a step against 58 with two torch
        # threads). Whole frames, or several members, are more network than batch: they
        # keep every core (5 members: 129 ms a step, against 148 on one core).
        torch.set_num_threads(threads - 1)
    try:
        batches = _batch_stream(samples, config, database, total)
        for step, (grid, batch) in enumerate(batches, start=1):
            loss, parts = _step_members(ensemble, grid, batch, device, bf16)
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


def _step_members(
    ensemble: _Members,
    grid: torch.Tensor,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    bf16: bool,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimiser step of every member on one batch; the last member's loss and parts."""
    grid = grid.to(device).contiguous(memory_format=torch.channels_last)
    batch = {key: t.to(device) for key, t in batch.items()}
    for model, optimizer, schedule in zip(
        ensemble.models, ensemble.optimizers, ensemble.schedules, strict=True
    ):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            heads, _ = model(grid)
        loss, parts = _loss(heads.float(), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    if ensemble.averages:
        for model, average in zip(ensemble.models, ensemble.averages, strict=True):
            average.update_parameters(model)
    return loss, parts
