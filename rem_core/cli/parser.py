"""The ``rem`` command line, declared: one function per command group.

The pipeline's commands are declared in ``rem_core.cli.stage_commands``. Every command
names its handler as ``"module:function"`` of ``rem_core.cli``
(``set_defaults(handler=...)``); ``rem_core.cli.main`` imports that module only when the
command runs, so that ``rem --help`` and ``rem info`` start without loading torch. The
arguments several commands share are in ``rem_core.cli.args``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rem_core.cli.args import (
    cluster_arg,
    dataset_args,
    estimator_args,
)
from rem_core.cli.stage_commands import (
    add_analysis_commands,
    add_compare_runs_command,
    add_detect_commands,
    add_experiment_command,
    add_mining_commands,
)
from rem_core.config import PRESETS, SPLITS

__all__ = ["build_parser"]

_Commands = argparse._SubParsersAction


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``rem`` command; a parsed command's ``handler`` names its function."""
    parser = argparse.ArgumentParser(
        prog="rem",
        description="REM Workbench: find the rare objects 3D detectors fail on "
        "(Rare Example Mining, Jiang et al., ECCV 2022).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _data,
        add_detect_commands,
        add_analysis_commands,
        _import,
        add_mining_commands,
        add_compare_runs_command,
        add_experiment_command,
        _app,
        _pool,
        _verify,
    ):
        add(sub)
    return parser


def _data(sub: _Commands) -> None:
    """``rem world`` and ``rem info``: the built-in world, and what a data set holds."""
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
    p.set_defaults(handler="data:cmd_world")

    p = sub.add_parser(
        "info",
        help="summarise a data set",
        description="Print segments, frames, points per frame, objects by class and subtype, "
        "the share of large vehicle tracks and track lengths of a data set folder.",
    )
    p.add_argument("path", type=Path, help="data set folder")
    p.set_defaults(handler="data:cmd_info")


def _import(sub: _Commands) -> None:
    """``rem import``: real data sets and a detector's detections."""
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
    p.set_defaults(handler="data:cmd_import")


def _app(sub: _Commands) -> None:
    """``rem app``: the analysis app in the browser."""
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
        default=None,  # $PORT is read when the command runs, so a bad one fails `rem app` alone
        help="port to serve on (default: $PORT or 8501, as make app)",
    )
    p.add_argument("--address", default=None, help="address to serve on (default: streamlit's)")
    p.set_defaults(handler="app:cmd_app")


def _pool(sub: _Commands) -> None:
    """``rem pool synth | export | mine``: a pool kept in parts."""
    p = sub.add_parser(
        "pool",
        help="score and mine a pool kept in parts (for pools beyond one machine)",
        description="A pool folder holds the unlabelled pool's detections, features and "
        "ground truth in Parquet parts of whole segments; `rem pool mine` fits the density on "
        "a sample across the parts, scores every part where it lies and mines it exactly "
        "(docs/scale.md).",
    )
    psub = p.add_subparsers(dest="pool_command", required=True, metavar="ACTION")

    q = psub.add_parser(
        "synth",
        help="write a synthetic pool (to try a cluster)",
        description="Write a synthetic pool folder: vehicle tracks in lanes, 3%% of them long "
        "vehicles whose features are rare (rem_core.pool.synthetic).",
    )
    q.add_argument("out", type=Path, help="the pool folder to write")
    q.add_argument("--parts", type=int, default=20, help="parts (default 20)")
    q.add_argument("--segments", type=int, default=1000, help="segments in all (default 1000)")
    q.add_argument("--tracks", type=int, default=500, help="tracks per segment (default 500)")
    q.add_argument(
        "--detections", type=int, default=10_000_000, help="detections in all (default 10M)"
    )
    q.add_argument("--features", type=int, default=64, help="feature dimensions (default 64)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--force", action="store_true", help="replace an existing folder")
    cluster_arg(q)
    q.set_defaults(handler="pool:cmd_pool_synth")

    q = psub.add_parser(
        "export",
        help="write the pipeline's unlabelled pool as a pool folder",
        description="Run (or read) the detection stage and write the unlabelled pool that "
        "mining sees as a pool folder of parts of consecutive segments.",
    )
    q.add_argument("out", type=Path, help="the pool folder to write")
    dataset_args(q)
    q.add_argument("--parts", type=int, default=8, help="parts (default 8)")
    q.add_argument("--force", action="store_true", help="replace an existing folder")
    q.set_defaults(handler="pool:cmd_pool_export")

    q = psub.add_parser(
        "mine",
        help="fit, score and mine a pool folder part by part",
        description="Fit the preset's PCA and density model on a sample drawn across the "
        "parts, score every part (D-REM: -log p, by predicted track when the pool has "
        "tracks) and mine the budget by the exact partitioned Algorithm 1. Writes OUT: "
        "tracks.parquet (the mined tracks), part-NNNNN.parquet (log_prob, rareness, "
        "discarded_by per detection), meta.json.",
    )
    q.add_argument("pool", type=Path, help="a pool folder (rem pool synth / export)")
    q.add_argument("--out", type=Path, required=True, help="the output folder")
    q.add_argument(
        "--preset",
        default="demo",
        choices=PRESETS,
        help="settings preset of the density model and the mining (default demo)",
    )
    estimator_args(q, "density model")
    q.add_argument(
        "--budget", default=None, help="tracks to label: a count or a share (default: 3%%)"
    )
    q.add_argument("--fp-costs-budget", action="store_true")
    q.add_argument(
        "--sample", type=int, default=50_000, help="detections to fit on (default 50000)"
    )
    q.add_argument("--force", action="store_true", help="replace an existing --out folder")
    cluster_arg(q)
    q.set_defaults(handler="pool:cmd_pool_mine")


def _verify(sub: _Commands) -> None:
    """``rem verify``: what ships with the package, redone here and compared."""
    p = sub.add_parser(
        "verify",
        help="retrain a shipped detector and redo reference runs here, and compare",
        description="Train member 0 of the shipped detector ensemble again (same recipe and "
        "threads) and compare its bytes with the shipped file's; redo RUNS of the shipped "
        "reference's runs and compare their AP to the last digit. Prints a table and records "
        "it for the app. Exits 0 when everything matches, or else when no paper claim's "
        "verdict changes with the runs redone here; 1 otherwise (docs/experiment.md).",
    )
    p.add_argument(
        "--preset", default="demo", choices=PRESETS, help="whose weights and reference (demo)"
    )
    p.add_argument(
        "--runs", type=int, default=2, help="reference runs to redo (default 2; 0: none)"
    )
    p.add_argument("--no-weights", action="store_true", help="do not retrain a shipped member")
    p.set_defaults(handler="experiment:cmd_verify")
