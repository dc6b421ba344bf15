"""What every ``rem`` command that runs the pipeline prepares: its settings from the arguments,
its data set, the features it scores, and progress bars."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from rem_core.cli.progress import progress_bar
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import choose_features, ensure_world, features_for

__all__ = [
    "features_for_args",
    "open_dataset",
    "prepare",
    "settings",
]


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
    bar, update = progress_bar(config.world.n_total_segments, "world", "segment")
    with bar:
        return ensure_world(config.world, progress=update, client=getattr(args, "client", None))


def features_for_args(config: RemConfig, ds: Dataset, args: argparse.Namespace) -> RemConfig:
    """The features REM scores on an opened data set: ``--features`` (default ``auto``),
    checked against the data, and one line on stderr saying which and why."""
    wanted = getattr(args, "features", None) or "auto"
    choice = choose_features(ds, wanted)
    print(f"rem: features: {choice.source} ({choice.reason})", file=sys.stderr)
    return features_for(config, ds, wanted)


def prepare(args: argparse.Namespace, *, features: bool = True) -> tuple[RemConfig, Dataset]:
    """A command's settings and data set, and (``features``) the features it scores."""
    config = settings(args)
    ds = open_dataset(args, config)
    return (features_for_args(config, ds, args) if features else config), ds
