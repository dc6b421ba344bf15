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
per-segment results that recompute that AP (``rem_core.experiment.segments``), from which
``rem_core.experiment.stats`` bootstraps 95% intervals. The folder's ``meta.json`` names
the detections and rareness entries the runs read: retraining the detectors
(``rem_core.pipeline.clear_pipeline``) removes the runs with them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rem_core.analysis import recall_by_rareness
from rem_core.cache import CacheEntry, compute_once
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.detect import default_steps, detect, train_detector
from rem_core.errors import InputError
from rem_core.evaluation import LEVEL_1_MIN_POINTS, REPORTED_SUBSETS, evaluate_detections
from rem_core.experiment.labels import label_set
from rem_core.experiment.results import ExperimentResult, results_table, write_results
from rem_core.experiment.rows import AP_COLUMNS, EXPERIMENT_ROWS, ExperimentRow
from rem_core.experiment.segments import SegmentResults, segment_results, write_segment_results
from rem_core.files import publish_file
from rem_core.mining import MiningPool
from rem_core.pipeline import (
    DETECTION_STAGE,
    RARENESS_STAGE,
    Progress,
    ensure_detections,
    ensure_mining_pool,
    ensure_rareness,
    experiment_key,
)

__all__ = [
    "ExperimentPlan",
    "experiment_config",
    "plan_experiment",
    "read_experiment",
    "redo_run",
    "run_experiment",
]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ExperimentPlan:
    """The experiment's settings on a data set, computed once (:func:`plan_experiment`).

    Attributes:
        config: the settings with the experiment's detector recipe
            (:func:`experiment_config`): those of the pipeline it mines from.
        steps: optimiser steps of every retraining: ``experiment.steps``, or the recipe's
            ``epochs`` passes over the source pool's frames.
        key: the cache key of its runs (``rem_core.pipeline.experiment_key``).
        own_recipe: whether the recipe differs from the given settings' detector (the
            experiment then mines from a pipeline of its own).
    """

    config: RemConfig
    steps: int
    key: str
    own_recipe: bool

    def entry(self, root: Path | None = None) -> CacheEntry:
        """The cache entry of its runs under ``root`` (default: the cache root)."""
        return CacheEntry.of("experiment", self.key, root)


def plan_experiment(config: RemConfig, dataset: Dataset) -> ExperimentPlan:
    """The experiment of ``config`` on ``dataset``: its recipe, step count and cache key."""
    recipe = experiment_config(config)
    steps = recipe.experiment.steps
    if steps is None:
        source = dataset.split_ids("source")
        frames = int(dataset.frames["segment_id"].isin(source).sum())
        steps = default_steps(recipe.detector, frames)
    return ExperimentPlan(
        config=recipe,
        steps=steps,
        key=experiment_key(recipe, dataset, steps),
        own_recipe=recipe != config,
    )


#: The validation split as every run is evaluated on it: its segment ids, its ground truth
#: and the rareness of each of those boxes.
_Validation = tuple[list[str], pd.DataFrame, np.ndarray]


def _run_one(
    row: ExperimentRow,
    seed: int,
    config: RemConfig,
    dataset: Dataset,
    pool: MiningPool,
    validation: _Validation,
    steps: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict, SegmentResults]:
    """Train and evaluate one (row, seed): its JSON record, and its per-segment results."""
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
        **{
            column: float(vehicle.get(subset, np.nan))
            for subset, column in zip(REPORTED_SUBSETS, AP_COLUMNS, strict=True)
        },
        **stats,
        "train_steps": steps,
        "seconds": time.perf_counter() - start,
        "spearman": curve.spearman,
        "curve": curve.bins.to_dict(orient="list"),
    }
    return record, segment_results(result, val_ids)


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
    plan = plan_experiment(config, dataset)
    exp = plan.config.experiment
    unknown = [r for r in exp.rows if r not in EXPERIMENT_ROWS]
    if unknown:
        raise InputError(
            f"experiment.rows: unknown row {unknown[0]!r}; known: {', '.join(EXPERIMENT_ROWS)}"
        )
    entry = plan.entry(root)
    pool = ensure_mining_pool(plan.config, dataset, entry.root, progress, client)
    validation = _validation(plan.config, dataset, entry.root, progress)
    _record_inputs(entry, plan.config, dataset)
    (entry.path / "runs").mkdir(parents=True, exist_ok=True)
    jobs = [(EXPERIMENT_ROWS[r], s) for r in exp.rows for s in range(exp.seeds)]
    report = progress or (lambda stage, done, total: None)
    records = []
    for done, (row, seed) in enumerate(jobs):
        report("experiment runs", done, len(jobs))
        label = f"training {row.label}, seed {seed} ({done + 1} of {len(jobs)})"
        path = _cached_run(
            entry.path / "runs" / f"{row.name}-seed{seed}.json",
            lambda row=row, seed=seed, label=label: _run_one(
                row,
                seed,
                plan.config,
                dataset,
                pool,
                validation,
                plan.steps,
                lambda d, t: report(label, d, t),
            ),
        )
        records.append(json.loads(path.read_text()))
    report("experiment runs", len(jobs), len(jobs))
    result = _collect(entry.path, records, plan.config, dataset)
    write_results(entry.path, result.table)
    return result


def redo_run(
    plan: ExperimentPlan,
    dataset: Dataset,
    row: ExperimentRow,
    seed: int,
    root: Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """One run of the experiment computed afresh, whatever the cache holds: its record (the
    JSON a cached run keeps). The stages it mines from are read from the cache (or computed
    first). ``rem verify`` redoes the shipped reference's runs with it."""
    root = plan.entry(root).root
    pool = ensure_mining_pool(plan.config, dataset, root, progress)
    validation = _validation(plan.config, dataset, root, progress)
    report = progress or (lambda stage, done, total: None)
    label = f"training {row.label}, seed {seed} again"
    record, _ = _run_one(
        row,
        seed,
        plan.config,
        dataset,
        pool,
        validation,
        plan.steps,
        lambda d, t: report(label, d, t),
    )
    return record


def _validation(
    config: RemConfig, dataset: Dataset, root: Path, progress: Progress | None
) -> _Validation:
    """The validation split's ids, ground truth and rareness, from the cached pipeline."""
    det_run = ensure_detections(config, dataset, root, progress)
    rareness_run = ensure_rareness(config, dataset, root, progress)
    val_ids = dataset.split_ids("validation")
    if not val_ids:
        raise InputError(f"{dataset.root}: no validation segments to evaluate the runs on")
    val_rows = np.flatnonzero(det_run.gt["segment_id"].isin(val_ids).to_numpy())
    return (
        val_ids,
        det_run.gt.iloc[val_rows].reset_index(drop=True),
        -rareness_run.gt_log_prob[val_rows],
    )


def _record_inputs(entry: CacheEntry, config: RemConfig, dataset: Dataset) -> None:
    """``meta.json`` beside ``runs/``, written when the experiment's folder is first made:
    the cache folders of the detections and the rareness its runs read, so that
    ``rem_core.pipeline.clear_pipeline`` removes the runs with them. A folder made before
    the record existed keeps none: its runs' inputs cannot be vouched for now."""
    folder = entry.path
    if (folder / "meta.json").is_file() or (folder / "runs").is_dir():
        return
    meta = {
        "detections": str(DETECTION_STAGE.entry(config, dataset, entry.root).path),
        "rareness": str(RARENESS_STAGE.entry(config, dataset, entry.root).path),
    }
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, indent=1)
    publish_file(folder / "meta.json", lambda tmp: tmp.write_text(text), force=True)


def _cached_run(path: Path, run: Callable[[], tuple[dict, SegmentResults]]) -> Path:
    """``path``, a run's JSON, computed by ``run()`` first unless cached.

    A run is an entry of its own: one process trains it, another waits and reads it. Its
    per-segment results go beside it (``.npz``) first, the JSON last: a run whose JSON
    exists is complete.
    """
    with compute_once(path, path.is_file) as todo:
        if todo:
            record, segments = run()
            text = json.dumps(record, indent=1, default=float)
            write_segment_results(path.with_suffix(".npz"), segments)
            publish_file(path, lambda tmp: tmp.write_text(text), force=True)
            log.info("%s seed %d: Large AP %.3f", record["row"], record["seed"], record["ap_large"])
    return path


def _collect(
    folder: Path, records: list[dict], config: RemConfig, dataset: Dataset
) -> ExperimentResult:
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in records])
    curves: dict[str, dict[int, pd.DataFrame]] = {}
    for r in records:
        curves.setdefault(r["row"], {})[r["seed"]] = pd.DataFrame(r["curve"])
    table = results_table(runs, config, dataset)
    return ExperimentResult(path=folder, runs=runs, table=table, curves=curves)


def read_experiment(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    *,
    every_seed: bool = False,
    plan: ExperimentPlan | None = None,
) -> ExperimentResult | None:
    """The runs of ``config.experiment``'s rows cached so far, computing nothing; ``None``
    when there are none. Rows keep the table's order; seeds are those below
    ``experiment.seeds``, or every cached one with ``every_seed``. ``plan``: the
    experiment's :func:`plan_experiment` when the caller holds it already."""
    plan = plan or plan_experiment(config, dataset)
    folder = plan.entry(root).path
    found: dict[tuple[str, int], Path] = {}
    for path in (folder / "runs").glob("*-seed*.json"):
        name, _, seed = path.stem.rpartition("-seed")
        if seed.isdigit():
            found[name, int(seed)] = path
    exp = plan.config.experiment
    records = [
        json.loads(found[name, seed].read_text())
        for name in exp.rows
        for seed in sorted(s for n, s in found if n == name)
        if every_seed or seed < exp.seeds
    ]
    if not records:
        return None
    return _collect(folder, records, plan.config, dataset)
