"""Arguments several ``rem`` commands share, and the types that read them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rem_core.config import ESTIMATORS, FEATURE_CHOICES, MINING_METHODS, PRESETS

__all__ = [
    "cluster_arg",
    "dataset_args",
    "estimator_args",
    "features_arg",
    "method_arg",
    "mining_args",
    "setting_arg",
]


def cluster_arg(p: argparse.ArgumentParser) -> None:
    """``--cluster SPEC`` on a command that runs stages (``rem_core.cluster``)."""
    p.add_argument(
        "--cluster",
        default=None,
        metavar="SPEC",
        help="run the segment-by-segment stages on a Dask cluster: local, local:N (N worker "
        "processes here) or a scheduler address such as tcp://host:8786 (default: "
        "$REM_DASK_SCHEDULER, else in this process)",
    )


def dataset_args(p: argparse.ArgumentParser) -> None:
    """The settings preset, the data set, the ensemble's size and epochs, and ``--cluster``:
    what every command that runs the pipeline takes."""
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
    """``--estimator`` (the density model, described as ``what``) and its settings."""
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
    """``--features``: which features REM scores (``rem_core.pipeline.choose_features``)."""
    p.add_argument(
        "--features",
        choices=list(FEATURE_CHOICES),
        default="auto",
        help="what REM scores: our detector's ROI features (trained on the source split), "
        "geometric box descriptors, or the features stored with your detections; auto "
        "(default) picks what the data set supports and says why",
    )


def mining_args(p: argparse.ArgumentParser) -> None:
    """What the commands that mine share: the data set, the density model, the budget."""
    dataset_args(p)
    estimator_args(p, "density model of D-REM and MD-REM")
    p.add_argument(
        "--budget",
        default=None,
        help="tracks to label: a count (1500) or a share of the pool's tracks (3%%; the default)",
    )
    p.add_argument(
        "--fp-costs-budget",
        action="store_true",
        help="a check that finds no object uses one unit of the budget",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")


def setting_arg(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from the command line: the value read as JSON (``4``, ``0.5``,
    ``[32,32]``, lists becoming tuples), else kept as text (``device=cuda``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. n_components=4")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), tuple(value) if isinstance(value, list) else value


def method_arg(name: str) -> str:
    """A selection method from the command line: ``md-rem`` and ``md_rem`` alike."""
    method = name.strip().lower().replace("-", "_")
    if method not in MINING_METHODS:
        choices = ", ".join(m.replace("_", "-") for m in MINING_METHODS)
        raise argparse.ArgumentTypeError(f"unknown method {name!r}; choose one of {choices}")
    return method
