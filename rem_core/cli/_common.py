"""What every ``rem`` command shares: its settings from the arguments, its data set, the
features it scores, and progress bars."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rem_core.config import MINING_METHODS, RemConfig
from rem_core.dataset import Dataset

__all__ = [
    "StageBars",
    "cluster_arg",
    "features_for_args",
    "method_arg",
    "open_dataset",
    "prepare",
    "setting_arg",
    "settings",
]


def progress_bar(total: int, desc: str, unit: str) -> tuple[Any, Callable[[int, int], None]]:
    """A tqdm bar and a ``(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=None)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, update


def settings(args: argparse.Namespace) -> RemConfig:
    """The preset's settings with what the command's arguments change: ``--members``,
    ``--epochs``, ``--estimator``, ``--estimator-setting``, ``--budget``,
    ``--fp-costs-budget`` (each only where the command has it).

    Raises:
        ValueError: a setting the chosen estimator does not have, or a bad value (naming
            it, e.g. ``gmm.n_components: must be an int >= 1, got 0``).
    """
    config = RemConfig.preset(args.preset)
    detector, rareness, mining = config.detector, config.rareness, config.mining
    if getattr(args, "members", None) is not None:
        detector = replace(detector, ensemble_size=args.members)
    if getattr(args, "epochs", None) is not None:
        detector = replace(detector, epochs=args.epochs)
    if getattr(args, "estimator", None):
        rareness = replace(rareness, estimator=args.estimator)
    changes = dict(getattr(args, "estimator_setting", None) or [])
    if changes:
        rareness = rareness.with_estimator_settings(**changes)
    budget = getattr(args, "budget", None)
    if budget is not None:
        mining = replace(mining, budget=int(budget) if budget.strip().isdigit() else budget)
    if getattr(args, "fp_costs_budget", False):
        mining = replace(mining, fp_costs_budget=True)
    return replace(config, detector=detector, rareness=rareness, mining=mining)


def open_dataset(args: argparse.Namespace, config: RemConfig) -> Dataset:
    """The data set named by --data, or the preset's built-in world (built if missing)."""
    if args.data is not None:
        return Dataset.open(args.data)
    from rem_core.pipeline import ensure_world

    bar, update = progress_bar(config.world.n_total_segments, "world", "segment")
    with bar:
        return ensure_world(config.world, progress=update, client=getattr(args, "client", None))


def features_for_args(config: RemConfig, ds: Dataset, args: argparse.Namespace) -> RemConfig:
    """The features REM scores on an opened data set: ``--features`` (default ``auto``),
    checked against the data, and one line on stderr saying which and why."""
    from rem_core.pipeline import choose_features, features_for

    wanted = getattr(args, "features", None) or "auto"
    choice = choose_features(ds, wanted)
    print(f"rem: features: {choice.source} ({choice.reason})", file=sys.stderr)
    return features_for(config, ds, wanted)


def prepare(args: argparse.Namespace, *, features: bool = True) -> tuple[RemConfig, Dataset]:
    """A command's settings and data set, and (``features``) the features it scores."""
    config = settings(args)
    ds = open_dataset(args, config)
    return (features_for_args(config, ds, args) if features else config), ds


class StageBars:
    """One tqdm bar per pipeline stage, driven by ``progress(stage, done, total)``."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


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


def method_arg(name: str) -> str:
    """A selection method from the command line: ``md-rem`` and ``md_rem`` alike."""
    method = name.strip().lower().replace("-", "_")
    if method not in MINING_METHODS:
        choices = ", ".join(m.replace("_", "-") for m in MINING_METHODS)
        raise argparse.ArgumentTypeError(f"unknown method {name!r}; choose one of {choices}")
    return method
