"""The ``rem`` command line: every command's arguments and the function that runs it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rem_core.cli._common import cluster_arg, method_arg, setting_arg
from rem_core.cli.data import cmd_app, cmd_import, cmd_info, cmd_world
from rem_core.cli.experiment import cmd_experiment
from rem_core.cli.pool import add_pool_commands
from rem_core.cli.stages import (
    cmd_compare,
    cmd_detect_run,
    cmd_detect_ship,
    cmd_detect_train,
    cmd_eval,
    cmd_flow_fit,
    cmd_mine,
    cmd_score,
)
from rem_core.config import ESTIMATORS, EXPERIMENT_ROW_NAMES, PRESETS, SPLITS

__all__ = [
    "build_parser",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rem",
        description="REM Workbench: find the rare objects 3D detectors fail on "
        "(Rare Example Mining, Jiang et al., ECCV 2022).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "world",
        help="simulate the synthetic LiDAR world and write it as a data set",
        description="Simulate the built-in LiDAR world (ray-cast 64-beam sweeps of streets with "
        "a long-tailed vehicle mix) and write it in the REM data format.",
    )
    p.add_argument(
        "--preset",
        default="demo",
        choices=PRESETS,
        help="size of the world (default: demo)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--segments", type=int, default=None, help="override the number of training-pool segments"
    )
    p.add_argument("--frames", type=int, default=None, help="override frames per segment")
    p.add_argument("--out", type=Path, required=True, help="data set folder to create")
    p.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        help="processes simulating segments side by side (default: one per core)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing data set at --out")
    cluster_arg(p)
    p.set_defaults(func=cmd_world)

    p = sub.add_parser(
        "info",
        help="summarise a data set",
        description="Print segments, frames, points per frame, objects by class and subtype, "
        "the share of large vehicle tracks and track lengths of a data set folder.",
    )
    p.add_argument("path", type=Path, help="data set folder")
    p.set_defaults(func=cmd_info)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--preset",
            default="demo",
            choices=PRESETS,
            help="settings preset, and the built-in world used without --data (default: demo)",
        )
        p.add_argument(
            "--data",
            type=Path,
            default=None,
            help="a data set folder (default: the preset's built-in world)",
        )
        p.add_argument("--members", type=int, default=None, help="ensemble size")
        p.add_argument("--epochs", type=int, default=None, help="training epochs per detector")
        cluster_arg(p)

    def estimator_args(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument(
            "--estimator",
            choices=ESTIMATORS,
            default=None,
            help=f"{what} (default: ffjord)",
        )
        p.add_argument(
            "--estimator-setting",
            action="append",
            default=[],
            type=setting_arg,
            metavar="NAME=VALUE",
            help="a setting of the chosen estimator, e.g. n_components=4 for gmm, k=5 for knn, "
            "max_epochs=20 for ffjord (repeatable; JSON values: hidden=[32,32])",
        )

    def features_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--features",
            choices=["auto", "detector", "geometry", "imported"],
            default="auto",
            help="what REM scores: our detector's ROI features (trained on the source split), "
            "geometric box descriptors, or the features stored with your detections; auto "
            "(default) picks what the data set supports and says why",
        )

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
    common(q)
    q.add_argument(
        "--retrain",
        action="store_true",
        help="train from scratch: remove the cached ensemble and what was computed from it, "
        "and do not use the weights that ship with the package",
    )
    q.set_defaults(func=cmd_detect_train)
    q = dsub.add_parser(
        "ship",
        help="write the cached ensemble into the package, with its provenance",
        description="Copy the trained ensemble (trained here if not cached) into "
        "rem_core/weights/PRESET with provenance.json (cache key, world fingerprint, commit, "
        "file hashes), to be used instead of training when both match (rem_core.pipeline.shipped).",
    )
    common(q)
    q.add_argument("--out", type=Path, default=None, help="default: rem_core/weights/PRESET")
    q.set_defaults(func=cmd_detect_ship)
    q = dsub.add_parser(
        "run",
        help="detect, pool features, track and auto-label (cached)",
        description="Run the main detector over every segment (with ROI-pooled "
        "features for detections and ground truth), the other members over the "
        "unlabelled pool (ensemble scores), then track and auto-label.",
    )
    common(q)
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also copy the results (Parquet tables and .npy features) to this folder",
    )
    q.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(q)
    q.set_defaults(func=cmd_detect_run)

    p = sub.add_parser(
        "eval",
        help="AP of detections and auto-labels by size subset",
        description="AP of the main detector's boxes and the auto-labels against "
        "ground truth: All, Regular [3, 7) m and Large >= 7 m (see "
        "docs/evaluation.md).",
    )
    common(p)
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
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "flow",
        help="fit the density model of D-REM",
        description="Reduce the detections' ROI features by PCA and fit a density "
        "model (FFJORD by default) on the source and unlabelled pools (cached).",
    )
    fsub = p.add_subparsers(dest="flow_command", required=True, metavar="ACTION")
    q = fsub.add_parser("fit", help="fit (cached) and report", description="Fit the density model.")
    common(q)
    estimator_args(q, "density model")
    features_arg(q)
    q.set_defaults(func=cmd_flow_fit)

    p = sub.add_parser(
        "score",
        help="D-REM, M-REM, MD-REM per detection and track",
        description="Score every detection (log p, D-REM, M-REM, MD-REM) and every "
        "track (mean log p over its frames); print the rarest tracks.",
    )
    common(p)
    estimator_args(p, "density model")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for detection_scores.parquet and track_scores.parquet",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "import",
        help="import real data (Waymo, Argoverse 2, KITTI tracking) as a data set",
        description="Read a public format and write it as a data set folder in the REM data "
        "format, or add it to one (--into; atomically; an existing --out folder only with "
        "--force). Every source takes several inputs, folders of them or glob patterns: "
        "waymo (v1 segment TFRecords), waymo-objects (metrics Objects .bin files as ground "
        "truth), waymo-v2 (folders with lidar_box/ and optionally lidar/, "
        "lidar_calibration/, lidar_pose/, vehicle_pose/), av2 (sensor log folders), "
        "kitti-tracking (folders holding training/label_02 and training/calib); detections "
        "(a detector's output, stored in the data set given by --data). A log already in "
        "the data set is refused.",
    )
    p.add_argument(
        "source",
        choices=["waymo", "waymo-objects", "waymo-v2", "av2", "kitti-tracking", "detections"],
    )
    p.add_argument(
        "path",
        nargs="+",
        help="the inputs: files, folders (of logs, segment files, ...) or glob patterns",
    )
    p.add_argument("--out", type=Path, default=None, help="data set folder to create")
    p.add_argument(
        "--into",
        type=Path,
        default=None,
        help="a data set to add these inputs to (a log already in it is refused)",
    )
    p.add_argument(
        "--source-share",
        default=None,
        help="draw this share of the imported segments (e.g. 10%%) into the source split, "
        "the labelled pool, as the paper draws 10%% of segments; the rest get --split",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --source-share draw")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="detections: the data set folder they belong to (they are stored in it)",
    )
    p.add_argument(
        "--format",
        choices=["table", "waymo-objects", "kitti"],
        default="table",
        help="detections: a Parquet/CSV table (default), Waymo Objects predictions (.bin), "
        "or a folder of KITTI AB3DMOT files",
    )
    p.add_argument("--calib", type=Path, default=None, help="detections, kitti: calib folder")
    p.add_argument(
        "--features",
        type=Path,
        default=None,
        help="detections: a .npy of (N, C) features, row i for detection i in the order "
        "read; REM then scores these instead of geometric descriptors",
    )
    p.add_argument(
        "--split",
        default="unlabelled",
        choices=SPLITS,
        help="split of every imported segment (default: unlabelled, what REM mines)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=cmd_import)

    def mining_options(p: argparse.ArgumentParser) -> None:
        common(p)
        estimator_args(p, "density model of D-REM and MD-REM")
        p.add_argument(
            "--budget",
            default=None,
            help="tracks to label: a count (1500) or a share of the pool's tracks (3%%; "
            "the default)",
        )
        p.add_argument(
            "--fp-costs-budget",
            action="store_true",
            help="a check that finds no object uses one unit of the budget",
        )
        p.add_argument("--force", action="store_true", help="replace existing output files")

    p = sub.add_parser(
        "mine",
        help="mine tracks under a budget (Algorithm 1) and export them",
        description="Rank the unlabelled pool's detections by a selection method, have the "
        "simulated labeller label whole tracks under the budget (Algorithm 1), and write "
        "the mined track list; optionally the merged label set (mined tracks plus the "
        "auto-labels that do not overlap them) as Waymo metrics_pb2.Objects.",
    )
    mining_options(p)
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
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser(
        "compare",
        help="composition of what each method mines (paper Table 1)",
        description="Mine with every selection method under the same budget and print "
        "what each one found: tracks, boxes, shares of Large and irregular vehicles, of "
        "label-noise and hard boxes, and mean rareness.",
    )
    mining_options(p)
    p.add_argument(
        "--methods",
        type=method_arg,
        nargs="+",
        default=None,
        help="methods to compare (default: all)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    features_arg(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "experiment",
        help="mine, label, retrain and evaluate (paper Tables 2 and 3)",
        description="For each row (a selection method and how the rest of the pool is "
        "labelled: self-labels or the auto-labeler), mine the pool, retrain the detector "
        "from scratch on source + pool with the source recipe's number of steps, and "
        "evaluate AP (All, Regular, Large) on the validation split, once per seed. Runs are "
        "cached one by one: an interrupted experiment resumes where it stopped.",
    )
    mining_options(p)
    p.add_argument(
        "--rows",
        default=None,
        # argparse formats help with %: the 6% and 9% rows' names need escaping
        help="comma-separated rows (default: all): "
        + ", ".join(EXPERIMENT_ROW_NAMES).replace("%", "%%"),
    )
    p.add_argument("--seeds", type=int, default=None, help="runs per row (default 3)")
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
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser(
        "app",
        help="start the analysis app in the browser (as make app)",
        description="Start the Streamlit app from the project's folder, as `make app` does: "
        "its cache is the project's cache/ unless REM_CACHE_DIR says otherwise, and "
        "REM_PRESET=tiny starts it on the tiny world.",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8501),
        help="port to serve on (default: $PORT or 8501, as make app)",
    )
    p.add_argument("--address", default=None, help="address to serve on (default: streamlit's)")
    p.set_defaults(func=cmd_app)

    add_pool_commands(sub, common, estimator_args)
    return parser
