"""The pipeline's commands, declared (``rem_core.cli.parser`` builds the whole parser): the
detector ensemble, AP, the density model and rareness, mining, and the experiment."""

from __future__ import annotations

import argparse
from pathlib import Path

from rem_core.cli.args import dataset_args, estimator_args, features_arg, method_arg, mining_args
from rem_core.config import ESTIMATORS, EXPERIMENT_ROW_NAMES, PRESETS, SPLITS, RemConfig

__all__ = [
    "add_analysis_commands",
    "add_detect_commands",
    "add_experiment_command",
    "add_mining_commands",
]

_Commands = argparse._SubParsersAction


def add_detect_commands(sub: _Commands) -> None:
    """``rem detect train | ship | run``: the detector ensemble."""
    p = sub.add_parser(
        "detect",
        help="train the detector ensemble and run it",
        description="Train the BEV detector ensemble on the source pool, and run "
        "it over a data set (results are cached by settings and data).",
    )
    dsub = p.add_subparsers(dest="detect_command", required=True, metavar="ACTION")
    q = dsub.add_parser(
        "train",
        help="train the ensemble (cached)",
        description="Train the detector ensemble on the source split.",
    )
    dataset_args(q)
    q.add_argument(
        "--retrain",
        action="store_true",
        help="train from scratch: remove the cached ensemble and what was computed from it, "
        "and do not use the weights that ship with the package",
    )
    q.set_defaults(handler="stages:cmd_detect_train")
    q = dsub.add_parser(
        "ship",
        help="write the cached ensemble into the package, with its provenance",
        description="Copy the trained ensemble (trained here if not cached) into "
        "rem_core/weights/PRESET with provenance.json (cache key, world fingerprint, commit, "
        "file hashes), to be used instead of training when both match (rem_core.pipeline.shipped).",
    )
    dataset_args(q)
    q.add_argument("--out", type=Path, default=None, help="default: rem_core/weights/PRESET")
    q.set_defaults(handler="stages:cmd_detect_ship")
    q = dsub.add_parser(
        "run",
        help="detect, pool features, track and auto-label (cached)",
        description="Run the main detector over every segment (with ROI-pooled "
        "features for detections and ground truth), the other members over the "
        "unlabelled pool (ensemble scores), then track and auto-label.",
    )
    dataset_args(q)
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also copy the results (Parquet tables and .npy features) to this folder",
    )
    q.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(q)
    q.set_defaults(handler="stages:cmd_detect_run")


def add_analysis_commands(sub: _Commands) -> None:
    """``rem eval``, ``rem flow fit`` and ``rem score``: AP, the density model, rareness."""
    p = sub.add_parser(
        "eval",
        help="AP of detections and auto-labels by size subset",
        description="AP of the main detector's boxes and the auto-labels against "
        "ground truth: All, Regular [3, 7) m and Large >= 7 m (see "
        "docs/evaluation.md).",
    )
    dataset_args(p)
    p.add_argument(
        "--split",
        default="validation",
        choices=SPLITS,
        help="segments to evaluate on (default: validation)",
    )
    p.add_argument("--iou", default="3d", choices=["3d", "bev"], help="IoU kind (default: 3d)")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="default: 0.5")
    p.add_argument(
        "--min-points",
        type=int,
        default=6,
        help="ground truth with fewer points is don't-care (default 6: Waymo LEVEL_1)",
    )
    features_arg(p)
    p.set_defaults(handler="stages:cmd_eval")

    p = sub.add_parser(
        "flow",
        help="fit the density model of D-REM",
        description="Reduce the detections' ROI features by PCA and fit a density "
        "model (FFJORD by default) on the source and unlabelled pools (cached).",
    )
    fsub = p.add_subparsers(dest="flow_command", required=True, metavar="ACTION")
    q = fsub.add_parser("fit", help="fit (cached) and report", description="Fit the density model.")
    dataset_args(q)
    estimator_args(q, "density model")
    features_arg(q)
    q.set_defaults(handler="stages:cmd_flow_fit")

    p = sub.add_parser(
        "score",
        help="D-REM, M-REM, MD-REM per detection and track",
        description="Score every detection (log p, D-REM, M-REM, MD-REM) and every "
        "track (mean log p over its frames); print the rarest tracks.",
    )
    dataset_args(p)
    estimator_args(p, "density model")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for detection_scores.parquet and track_scores.parquet",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(p)
    p.set_defaults(handler="stages:cmd_score")


def add_compare_runs_command(sub: _Commands) -> None:
    """``rem compare-runs``: how stable the ranking of tracks is between two runs."""
    p = sub.add_parser(
        "compare-runs",
        help="two rareness runs compared: rank correlation, top-K overlap, tracks that moved",
        description="Rank the tracks with two runs, the density model --estimator against "
        "--against-estimator on the same detections, or the same density on a second "
        "detector ensemble (--against-detector-seed: its members' seeds; trained if not "
        "cached), and print Spearman's correlation of track rareness, the Jaccard overlap "
        "of the two runs' top tracks at the budget, and the tracks whose rank moved most.",
    )
    dataset_args(p)
    estimator_args(p, "run A's density model")
    against = p.add_mutually_exclusive_group(required=True)
    against.add_argument("--against-estimator", choices=ESTIMATORS, help="run B's density model")
    against.add_argument(
        "--against-detector-seed",
        type=int,
        help="run B: the same density on an ensemble whose members start from this seed",
    )
    p.add_argument(
        "--tracks",
        choices=["gt", "detected"],
        default=None,
        help="ground-truth tracks (any two runs; the default with --against-detector-seed) "
        "or detected tracks (the default between two density models on one ensemble's "
        "detections)",
    )
    p.add_argument(
        "--split", default="unlabelled", choices=[*SPLITS, "all"], help="default: unlabelled"
    )
    p.add_argument(
        "--budget", default="3%", help="top tracks compared: a count or a share (default 3%%)"
    )
    p.add_argument("--top", type=int, default=15, help="tracks that moved most to print")
    p.add_argument("--out", type=Path, default=None, help="write every shared track as CSV")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    features_arg(p)
    p.set_defaults(handler="stages:cmd_compare_runs")


def add_mining_commands(sub: _Commands) -> None:
    """``rem mine`` and ``rem compare``: Algorithm 1 and what each method mines."""
    p = sub.add_parser(
        "mine",
        help="mine tracks under a budget (Algorithm 1) and export them",
        description="Rank the unlabelled pool's detections by a selection method, have the "
        "simulated labeller label whole tracks under the budget (Algorithm 1), and write "
        "the mined track list; optionally the merged label set (mined tracks plus the "
        "auto-labels that do not overlap them) as Waymo metrics_pb2.Objects.",
    )
    mining_args(p)
    p.add_argument(
        "--method",
        type=method_arg,
        default="md_rem",
        help="random, predict-size, ensemble, m-rem, d-rem, md-rem (default), oracle-hard "
        "or oracle-size",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="mined track list, one row per box: .csv, .parquet or .json (tracks nested)",
    )
    p.add_argument(
        "--labels", type=Path, default=None, help="merged label set as Waymo Objects (.bin)"
    )
    features_arg(p)
    p.set_defaults(handler="mining:cmd_mine")

    p = sub.add_parser(
        "compare",
        help="composition of what each method mines (paper Table 1)",
        description="Mine with every selection method under the same budget and print "
        "what each one found: tracks, boxes, shares of Large and irregular vehicles, of "
        "label-noise and hard boxes, and mean rareness.",
    )
    mining_args(p)
    p.add_argument(
        "--methods",
        type=method_arg,
        nargs="+",
        default=None,
        help="methods to compare (default: all)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    features_arg(p)
    p.set_defaults(handler="mining:cmd_compare")


def _preset_seeds() -> str:
    """Each preset's runs per row (``experiment.seeds``): ``1 for demo, 3 for tiny and full``."""
    presets: dict[int, list[str]] = {}
    for name in PRESETS:
        presets.setdefault(RemConfig.preset(name).experiment.seeds, []).append(name)
    return ", ".join(f"{n} for {' and '.join(names)}" for n, names in sorted(presets.items()))


def add_experiment_command(sub: _Commands) -> None:
    """``rem experiment``: mine, label, retrain and evaluate (paper Tables 2 and 3)."""
    p = sub.add_parser(
        "experiment",
        help="mine, label, retrain and evaluate (paper Tables 2 and 3)",
        description="For each row (a selection method and how the rest of the pool is "
        "labelled: self-labels or the auto-labeler), mine the pool, retrain the detector "
        "from scratch on source + pool with the source recipe's number of steps, and "
        "evaluate AP (All, Regular, Large) on the validation split, once per seed. Runs are "
        "cached one by one: an interrupted experiment resumes where it stopped.",
    )
    mining_args(p)
    p.add_argument(
        "--rows",
        default=None,
        # argparse formats help with %: the 6% and 9% rows' names need escaping
        help="comma-separated rows (default: all): "
        + ", ".join(EXPERIMENT_ROW_NAMES).replace("%", "%%"),
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"runs per row: seeds 0 to SEEDS-1 (default: the preset's, {_preset_seeds()})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps of each retraining (default: the source recipe's)",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        help="return each retraining's exponential moving average of the weights with "
        "this decay, e.g. 0.999 (default: the preset's; 0 keeps the last step's weights)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write experiment.csv, experiment.json, runs.csv, curves.csv and "
        "comparisons.csv to (with --ship-reference: the reference folder, default "
        "rem_core/reference_results/PRESET)",
    )
    p.add_argument(
        "--ship-reference",
        action="store_true",
        help="run nothing: write the cached runs of --rows and --seeds, with their intervals "
        "and provenance, as the reference the Experiments page opens on "
        "(rem_core.experiment.reference; "
        "refuses to replace one without --force)",
    )
    features_arg(p)
    p.set_defaults(handler="experiment:cmd_experiment")
