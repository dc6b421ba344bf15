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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.analysis import recall_by_rareness
from rem_core.artifacts import cache_root, dataset_key
from rem_core.config import RemConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.evaluate import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.experiment_frames import FrameResults, frame_results, write_frame_results
from rem_core.experiment_stats import ExperimentIntervals, experiment_intervals, with_intervals
from rem_core.io.files import publish_file
from rem_core.mining import MiningPool, merge_labels, mine
from rem_core.schema import BOX_COLUMNS

__all__ = [
    "EXPERIMENT_ROWS",
    "experiment_config",
    "ExperimentResult",
    "ExperimentRow",
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


@dataclass(frozen=True)
class ExperimentRow:
    """One row of the results table.

    Attributes:
        name: its key (``"md-rem++-6%"``).
        label: as the table shows it.
        group: ``reference``, ``oracle``, ``baseline``, ``ours`` or ``budget``.
        method: the selection method (``MINING_METHODS``), or ``None``: nothing mined.
        fill: how the rest of the pool is labelled: ``"none"`` (the pool is left out),
            ``"sl"`` (the main model's detections), ``"al"`` (the auto-labeler) or ``"gt"``
            (every true label).
        budget: the mining budget (``None``: the experiment's default).
        paper_large: the paper's Large AP for this row, where the issue quotes it.
    """

    name: str
    label: str
    group: str
    method: str | None
    fill: str
    budget: str | None = None
    paper_large: float | None = None


#: The rows of paper Table 3, then the budgets of Table 2 (MD-REM++ at 6% and 9%).
EXPERIMENT_ROWS: dict[str, ExperimentRow] = {
    row.name: row
    for row in (
        ExperimentRow("partial", "Partial-supervised", "reference", None, "none",
                      paper_large=0.378),
        ExperimentRow("semi-sl", "Semi-supervised (SL)", "reference", None, "sl"),
        ExperimentRow("semi-al", "Semi-supervised (AL)", "reference", None, "al"),
        ExperimentRow("full", "Fully-supervised", "reference", None, "gt", paper_large=0.602),
        ExperimentRow("oracle-hard", "Oracle Hard", "oracle", "oracle_hard", "sl"),
        ExperimentRow("oracle-size", "Oracle Size", "oracle", "oracle_size", "sl"),
        ExperimentRow("random", "Random", "baseline", "random", "sl"),
        ExperimentRow("predict-size", "Predict Size", "baseline", "predict_size", "sl"),
        ExperimentRow("ensemble", "Ensemble", "baseline", "ensemble", "sl"),
        ExperimentRow("m-rem", "M-REM", "ours", "m_rem", "sl"),
        ExperimentRow("d-rem", "D-REM", "ours", "d_rem", "sl"),
        ExperimentRow("d-rem++", "D-REM++", "ours", "d_rem", "al"),
        ExperimentRow("md-rem++", "MD-REM++", "ours", "md_rem", "al", paper_large=0.571),
        ExperimentRow("md-rem++-6%", "MD-REM++ 6%", "budget", "md_rem", "al", "6%"),
        ExperimentRow("md-rem++-9%", "MD-REM++ 9%", "budget", "md_rem", "al", "9%"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ExperimentResult:
    """The experiment's runs and their summary.

    Attributes:
        path: the cache folder (``runs/<row>-seed<k>.json`` and ``.npz``, ``results.csv``,
            ``results.json``).
        runs: one row per (row, seed): ``row, seed, ap_all, ap_regular, ap_large,
            human_tracks, human_boxes, pseudo_boxes, seconds``.
        table: one row per experiment row (``results_table``).
        curves: ``row -> seed -> RecallCurve bins`` (DataFrames) of each retrained model.
    """

    path: Path
    runs: pd.DataFrame
    table: pd.DataFrame
    curves: dict[str, dict[int, pd.DataFrame]]


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
) -> ExperimentResult:
    """Every (row, seed) of ``config.experiment`` not cached yet, then the summary table.

    Runs the stages of the experiment's pipeline (``experiment_config``: the ensemble with
    the experiment's recipe, detections, tracks, auto-labels, the density model) first if
    they are not cached. ``progress(stage, done, total)`` reports each training's steps
    and the runs done.
    """
    from rem_core.pipeline import ensure_detections, ensure_mining_pool, ensure_rareness

    config = experiment_config(config)
    exp = config.experiment
    unknown = [r for r in exp.rows if r not in EXPERIMENT_ROWS]
    if unknown:
        raise ValueError(
            f"experiment.rows: unknown row {unknown[0]!r}; known: {', '.join(EXPERIMENT_ROWS)}"
        )
    root = root or cache_root()
    pool = ensure_mining_pool(config, dataset, root, progress)
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
    folder = root / "experiment" / experiment_key(config, dataset)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    jobs = [(EXPERIMENT_ROWS[r], s) for r in exp.rows for s in range(exp.seeds)]
    report = progress or (lambda stage, done, total: None)
    records = []
    for done, (row, seed) in enumerate(jobs):
        path = folder / "runs" / f"{row.name}-seed{seed}.json"
        report("experiment runs", done, len(jobs))
        if not path.is_file():
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
    _write_results(folder, result.table)
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
    folder = (root or cache_root()) / "experiment" / experiment_key(config, dataset)
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


def results_table(runs: pd.DataFrame, config: RemConfig, dataset: Dataset) -> pd.DataFrame:
    """One row per experiment row: AP mean and standard deviation over its seeds.

    Columns: ``row, label, group, human_labels`` (the paper's "10%;3%": source share;
    mined budget), ``seeds, ap_all, ap_all_std, ap_regular, ap_regular_std, ap_large,
    ap_large_std, paper_ap_large, human_tracks, pseudo_boxes, seconds``, and ``gap_closed``:
    the share of the Large-AP gap between partial- and fully-supervised closed, on the
    seeds the row shares with both (NaN when one of them never ran).
    """
    segments = dataset.segments
    training = segments["split"].isin(["source", "unlabelled"]).sum()
    source_share = f"{(segments['split'] == 'source').sum() / max(training, 1):.0%}"
    grouped = runs.groupby("row", sort=False)
    out = []
    for name, g in grouped:
        row = EXPERIMENT_ROWS[name]
        if row.fill == "gt":
            human = "100%"
        elif row.method is None:
            human = source_share
        else:
            human = f"{source_share};{row.budget or config.mining.budget}"
        entry = {
            "row": name,
            "label": row.label,
            "group": row.group,
            "human_labels": human,
            "seeds": len(g),
        }
        for metric in ("ap_all", "ap_regular", "ap_large"):
            entry[metric] = g[metric].mean()
            entry[f"{metric}_std"] = g[metric].std(ddof=1) if len(g) > 1 else float("nan")
        entry["paper_ap_large"] = row.paper_large if row.paper_large is not None else np.nan
        entry["human_tracks"] = int(g["human_tracks"].iloc[0])
        entry["pseudo_boxes"] = int(g["pseudo_boxes"].mean())
        entry["seconds"] = g["seconds"].sum()
        out.append(entry)
    table = pd.DataFrame(out)
    large = runs.pivot_table(index="seed", columns="row", values="ap_large", aggfunc="mean")
    table["gap_closed"] = [_gap_closed(large, name) for name in table["row"]]
    return table


def _gap_closed(large: pd.DataFrame, name: str) -> float:
    """The share of the Large-AP gap between partial- and fully-supervised that ``name``
    closes, on the seeds all three ran (``large``: Large AP by seed and row): a row with one
    seed is compared with the references at that seed, not with their mean over seeds it
    never ran."""
    if not {"partial", "full", name} <= set(large.columns):
        return float("nan")
    shared = large[list(dict.fromkeys(["partial", "full", name]))].dropna()
    lo, hi = shared["partial"].mean(), shared["full"].mean()
    if shared.empty or hi == lo:
        return float("nan")
    return float((shared[name].mean() - lo) / (hi - lo))


def _write_results(folder: Path, table: pd.DataFrame) -> None:
    publish_file(folder / "results.csv", lambda tmp: table.to_csv(tmp, index=False), force=True)
    document = json.loads(table.to_json(orient="records"))
    text = json.dumps(document, indent=1)
    publish_file(folder / "results.json", lambda tmp: tmp.write_text(text), force=True)


def write_experiment(
    result: ExperimentResult,
    folder: str | Path,
    *,
    force: bool = False,
    intervals: ExperimentIntervals | None = None,
) -> list[Path]:
    """Write the results to ``folder`` (created if missing), each file atomically.

    Files: ``experiment.csv`` and ``experiment.json`` (the table, with the 95% intervals of
    ``rem_core.experiment_stats.with_intervals`` as extra columns), ``runs.csv`` (one row
    per row and seed), ``curves.csv`` (``row, seed`` and each recall-by-rareness bin) and
    ``comparisons.csv`` (``ExperimentIntervals.comparisons``: paired differences).

    Args:
        intervals: the bootstrap of ``result`` (default: ``experiment_intervals(result)``).

    Raises:
        FileExistsError: a file exists and ``force`` is false (nothing is written then).
    """
    folder = Path(folder)
    names = ["experiment.csv", "experiment.json", "runs.csv", "curves.csv", "comparisons.csv"]
    if not force:
        for name in names:
            if (folder / name).exists():
                raise FileExistsError(f"{folder / name}: exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    curves = pd.concat(
        [
            bins.assign(row=row, seed=seed)
            for row, by_seed in result.curves.items()
            for seed, bins in by_seed.items()
        ],
        ignore_index=True,
    )
    curves = curves[["row", "seed", *[c for c in curves.columns if c not in ("row", "seed")]]]
    intervals = intervals or experiment_intervals(result)
    table = with_intervals(result.table, intervals)
    document = json.dumps(json.loads(table.to_json(orient="records")), indent=1)
    writers = [
        lambda tmp: table.to_csv(tmp, index=False),
        lambda tmp: tmp.write_text(document),
        lambda tmp: result.runs.to_csv(tmp, index=False),
        lambda tmp: curves.to_csv(tmp, index=False),
        lambda tmp: intervals.comparisons.to_csv(tmp, index=False),
    ]
    return [
        publish_file(folder / name, write, force=True)
        for name, write in zip(names, writers, strict=True)
    ]


def experiment_rows(names: Sequence[str] | None = None) -> list[ExperimentRow]:
    """The rows called ``names`` (default: all), in table order."""
    return [EXPERIMENT_ROWS[n] for n in (names or EXPERIMENT_ROWS)]
