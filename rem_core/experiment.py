"""The active-learning experiment of the paper (Tables 2 and 3): mine, label, retrain, evaluate.

Each row of the table is a way to label the unlabelled pool for a second training:

1. the detector ensemble, trained on the labelled source pool, and the pipeline's pool
   (``rem_core.pipeline.ensure_mining_pool``) give every selection method its ranking;
2. a method mines the pool under a budget (Algorithm 1): the whole ground-truth tracks it
   finds are the human labels;
3. the rest of the pool is labelled by the main model's detections ("SL", self-labelling)
   or by the offboard auto-labeler ("AL", the "++" rows), less the tracks that overlap a
   mined one (``merge_labels``); objects that no label describes are background;
4. a detector is trained from scratch on source + pool with the same recipe and the same
   number of optimiser steps as the source-only model, and evaluated by AP at IoU 0.5 on
   the validation split (All, Regular, Large), plus its recall by rareness.

A row is run once per seed (the weights' initialisation, the data order, and Random's
draw). Every (row, seed) is cached as it finishes under ``<cache>/experiment/<key>/``, so
an interrupted run resumes where it stopped and adding rows or seeds reuses the rest. Each
run keeps its AP in ``runs/<row>-seed<k>.json`` and, beside it in ``.npz``, the
per-segment results that recompute that AP (``rem_core.experiment_frames``), from which
``rem_core.experiment_stats`` bootstraps 95% intervals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rem_core.analysis import recall_by_rareness
from rem_core.artifacts import CacheEntry, cache_entry, dataset_key
from rem_core.config import RemConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.evaluate import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.experiment_frames import FrameResults, frame_results, write_frame_results
from rem_core.experiment_table import (
    EXPERIMENT_ROWS,
    ExperimentResult,
    ExperimentRow,
    experiment_rows,
    results_table,
    write_experiment,
    write_results,
)
from rem_core.io.files import publish_file
from rem_core.mining import MiningPool, merge_labels, mine
from rem_core.schema import BOX_COLUMNS

__all__ = [
    "EXPERIMENT_ROWS",
    "experiment_config",
    "ExperimentResult",
    "ExperimentRow",
    "experiment_rows",
    "label_set",
    "read_experiment",
    "results_table",
    "run_experiment",
    "training_steps",
    "write_experiment",
]

log = logging.getLogger(__name__)

#: Bumped when the experiment's code changes what a run would give.
EXPERIMENT_VERSION = "experiment-1"


def experiment_config(config: RemConfig) -> RemConfig:
    """``config`` with the experiment's detector recipe (``experiment.detector_epochs`` and
    ``detector_precision``): the settings of the pipeline the experiment mines from."""
    exp, detector = config.experiment, config.detector
    recipe = replace(
        detector,
        epochs=detector.epochs if exp.detector_epochs is None else exp.detector_epochs,
        precision=detector.precision if exp.detector_precision is None else exp.detector_precision,
    )
    return config if recipe == detector else replace(config, detector=recipe)


def training_steps(config: RemConfig, dataset: Dataset) -> int:
    """Optimiser steps of every retraining: ``experiment.steps``, or the recipe's
    (``experiment_config``): ``epochs`` passes over the source pool's frames."""
    config = experiment_config(config)
    if config.experiment.steps is not None:
        return config.experiment.steps
    from rem_core.detect.train import default_steps

    source = dataset.split_ids("source")
    frames = int(dataset.frames["segment_id"].isin(source).sum())
    return default_steps(config.detector, frames)


def experiment_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the experiment's runs: everything that shapes a run except the rows and
    the seeds asked for (each run is a file of its own)."""
    from rem_core.pipeline import rareness_key

    config = experiment_config(config)
    # The step count, not how it was asked for: 960 steps are 960 steps.
    settings = replace(
        config.experiment,
        rows=(),
        seeds=1,
        detector_epochs=None,
        detector_precision=None,
        steps=None,
    )
    return config_hash(
        settings,
        str(training_steps(config, dataset)),
        config_hash(config.detector),
        config_hash(config.mining),
        config_hash(config.score),
        rareness_key(config, dataset),
        dataset_key(dataset),
        EXPERIMENT_VERSION,
    )


def label_set(
    row: ExperimentRow,
    config: RemConfig,
    dataset: Dataset,
    pool: MiningPool,
    seed: int = 0,
) -> tuple[list[str], pd.DataFrame, dict]:
    """The training segments and vehicle labels of ``row``.

    Returns:
        ``(segments, labels, stats)``: the segment ids to train on; the boxes to learn
        (``segment_id, frame_index``, the box columns, ``num_points``, ``label_noise``,
        ``source``: ``"source"``, ``"human"``, ``"pseudo"`` or ``"truth"``); and
        ``human_tracks``, ``human_boxes``, ``pseudo_boxes``.
    """
    source_ids, pool_ids = dataset.split_ids("source"), dataset.split_ids("unlabelled")
    columns = ["segment_id", "frame_index", *BOX_COLUMNS, "num_points", "label_noise"]
    boxes = dataset.boxes[dataset.boxes["class"] == "vehicle"]
    parts = [boxes.loc[boxes["segment_id"].isin(source_ids), columns].assign(source="source")]
    stats = {"human_tracks": 0, "human_boxes": 0, "pseudo_boxes": 0}
    if row.fill == "none":
        return source_ids, pd.concat(parts, ignore_index=True), stats
    if row.fill == "gt":
        truth = boxes.loc[boxes["segment_id"].isin(pool_ids), columns].assign(source="truth")
        stats["human_boxes"] = len(truth)
        pool_boxes = boxes.loc[boxes["segment_id"].isin(pool_ids)]
        stats["human_tracks"] = len(pool_boxes.drop_duplicates(["segment_id", "track_id"]))
        return source_ids + pool_ids, pd.concat([*parts, truth], ignore_index=True), stats

    exp = config.experiment
    if row.fill == "sl":
        pseudo = pool.detections[pool.detections["score"] >= exp.self_label_score]
    else:
        pseudo = pool.autolabels[pool.autolabels["score"] >= exp.auto_label_score]
    pseudo = pseudo[pseudo["class"] == "vehicle"]
    untracked = pseudo["track_id"].isna()
    if untracked.any():  # each its own track, so merging drops only what overlaps
        pseudo = pseudo.assign(
            track_id=pseudo["track_id"].where(
                ~untracked, "untracked-" + pseudo["detection_id"].astype(str)
            )
        )
    if row.method is None:
        kept = pseudo
        human = pool.gt.iloc[:0]
    else:
        budget = row.budget or config.mining.budget
        mining = replace(config.mining, budget=budget, seed=config.mining.seed + seed)
        mined = mine(pool, row.method, replace(config, mining=mining))
        merged = merge_labels(mined.result, pool.gt, pseudo)
        kept = merged[merged["source"] == "auto"]
        keys = pd.MultiIndex.from_frame(mined.result.tracks[["segment_id", "track_id"]])
        human = pool.gt[pd.MultiIndex.from_frame(pool.gt[["segment_id", "track_id"]]).isin(keys)]
        stats["human_tracks"] = len(mined.result.tracks)
    stats["human_boxes"], stats["pseudo_boxes"] = len(human), len(kept)
    human = human[columns].assign(source="human")
    kept = kept.assign(label_noise=False)[columns].assign(source="pseudo")
    labels = pd.concat([*parts, human, kept], ignore_index=True)
    return source_ids + pool_ids, labels, stats


def _run_one(
    row: ExperimentRow,
    seed: int,
    config: RemConfig,
    dataset: Dataset,
    pool: MiningPool,
    validation: tuple[list[str], pd.DataFrame, np.ndarray],
    steps: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict, FrameResults]:
    """Train and evaluate one (row, seed): its JSON record, and its per-segment results."""
    from rem_core.detect import detect, train_detector

    start = time.perf_counter()
    segments, labels, stats = label_set(row, config, dataset, pool, seed)
    detector = replace(
        config.detector,
        seed=config.detector.seed + seed,
        data_seed=config.detector.data_seed + seed,
    )
    model = train_detector(
        detector,
        dataset,
        segments,
        progress=progress,
        labels=labels,
        steps=steps,
        ema_decay=config.experiment.ema_decay,
    )
    val_ids, val_gt, val_rareness = validation
    preds = detect(model, dataset, val_ids, with_features=False).detections
    exp = config.experiment
    result = evaluate_detections(
        preds, val_gt, iou_threshold=exp.iou_threshold, iou=exp.iou, min_points=LEVEL_1_MIN_POINTS
    )
    summary = result.summary()
    vehicle = summary[summary["class"] == "vehicle"].set_index("subset")["ap"]
    rareness = val_rareness[result.gt["gt_index"].to_numpy()]
    curve = recall_by_rareness(result, rareness, bin_width=exp.curve_bin_width)
    record = {
        "row": row.name,
        "seed": seed,
        "ap_all": float(vehicle.get("all", np.nan)),
        "ap_regular": float(vehicle.get("regular", np.nan)),
        "ap_large": float(vehicle.get("large", np.nan)),
        **stats,
        "train_steps": steps,
        "seconds": time.perf_counter() - start,
        "spearman": curve.spearman,
        "curve": curve.bins.to_dict(orient="list"),
    }
    return record, frame_results(result, val_ids)


def run_experiment(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    client: Any = None,
) -> ExperimentResult:
    """Every (row, seed) of ``config.experiment`` not cached yet, then the summary table.

    Runs the stages of the experiment's pipeline (``experiment_config``: the ensemble with
    the experiment's recipe, detections, tracks, auto-labels, the density model) first if
    they are not cached. ``progress(stage, done, total)`` reports each training's steps
    and the runs done. ``client``: a Dask client for the pipeline's segment-by-segment
    stages (the retrainings run here).
    """
    from rem_core.pipeline import ensure_detections, ensure_mining_pool, ensure_rareness

    config = experiment_config(config)
    exp = config.experiment
    unknown = [r for r in exp.rows if r not in EXPERIMENT_ROWS]
    if unknown:
        raise ValueError(
            f"experiment.rows: unknown row {unknown[0]!r}; known: {', '.join(EXPERIMENT_ROWS)}"
        )
    entry = CacheEntry.of("experiment", experiment_key(config, dataset), root)
    root = entry.root
    pool = ensure_mining_pool(config, dataset, root, progress, client)
    det_run = ensure_detections(config, dataset, root, progress)
    rareness_run = ensure_rareness(config, dataset, root, progress)
    val_ids = dataset.split_ids("validation")
    if not val_ids:
        raise ValueError(f"{dataset.root}: no validation segments to evaluate the runs on")
    val_rows = np.flatnonzero(det_run.gt["segment_id"].isin(val_ids).to_numpy())
    validation = (
        val_ids,
        det_run.gt.iloc[val_rows].reset_index(drop=True),
        -rareness_run.gt_log_prob[val_rows],
    )
    steps = training_steps(config, dataset)
    folder = entry.path
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    jobs = [(EXPERIMENT_ROWS[r], s) for r in exp.rows for s in range(exp.seeds)]
    report = progress or (lambda stage, done, total: None)
    records = []
    for done, (row, seed) in enumerate(jobs):
        path = folder / "runs" / f"{row.name}-seed{seed}.json"
        report("experiment runs", done, len(jobs))
        # A run is an entry of its own: one process trains it, another waits and reads it.
        with cache_entry(path, lambda path=path: path.is_file()) as todo:
            if todo:
                label = f"training {row.label}, seed {seed} ({done + 1} of {len(jobs)})"
                record, frames = _run_one(
                    row,
                    seed,
                    config,
                    dataset,
                    pool,
                    validation,
                    steps,
                    lambda d, t, label=label: report(label, d, t),
                )
                text = json.dumps(record, indent=1, default=float)
                # The JSON last: a run whose JSON exists is complete.
                write_frame_results(path.with_suffix(".npz"), frames)
                publish_file(path, lambda tmp, text=text: tmp.write_text(text), force=True)
                log.info("%s seed %d: Large AP %.3f", row.name, seed, record["ap_large"])
        records.append(json.loads(path.read_text()))
    report("experiment runs", len(jobs), len(jobs))
    result = _collect(folder, records, config, dataset)
    write_results(folder, result.table)
    return result


def _collect(folder: Path, records: list[dict], config: RemConfig, dataset: Dataset):
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in records])
    curves: dict[str, dict[int, pd.DataFrame]] = {}
    for r in records:
        curves.setdefault(r["row"], {})[r["seed"]] = pd.DataFrame(r["curve"])
    table = results_table(runs, config, dataset)
    return ExperimentResult(path=folder, runs=runs, table=table, curves=curves)


def read_experiment(
    config: RemConfig, dataset: Dataset, root: Path | None = None, *, every_seed: bool = False
) -> ExperimentResult | None:
    """The runs of ``config.experiment``'s rows cached so far, computing nothing; ``None``
    when there are none. Rows keep the table's order; seeds are those below
    ``experiment.seeds``, or every cached one with ``every_seed``."""
    config = experiment_config(config)
    folder = CacheEntry.of("experiment", experiment_key(config, dataset), root).path
    found: dict[tuple[str, int], Path] = {}
    for path in (folder / "runs").glob("*-seed*.json"):
        name, _, seed = path.stem.rpartition("-seed")
        if seed.isdigit():
            found[name, int(seed)] = path
    records = [
        json.loads(found[name, seed].read_text())
        for name in config.experiment.rows
        for seed in sorted(s for n, s in found if n == name)
        if every_seed or seed < config.experiment.seeds
    ]
    if not records:
        return None
    return _collect(folder, records, config, dataset)
