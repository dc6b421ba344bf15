"""Every cache key, assembled in one place.

A stage's key hashes (``rem_core.config.config_hash``) the settings it reads and the keys of
the stages it reads, so a changed setting never reuses a stale result and a setting a stage
does not read never invalidates it. The chain::

    dataset_key ──> detector_key ──> detections_key ──> rareness_key ──> experiment_key
    (world: world_key)              (by feature source)

A job's key (``rem_core.jobs.job_key``) is not a stage's: it names one (kind, settings, data
set) the app runs at a time, whatever the stages it reads are.

The ``*_VERSION`` strings stand for the code of a stage: bumped when a change of its code
changes what it would give.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rem_core.config import FEATURE_SOURCES, RemConfig, WorldConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.io import DETECTION_FEATURES_FILE, DETECTIONS_FILE

__all__ = [
    "DETECTOR_VERSION",
    "EXPERIMENT_VERSION",
    "GEOMETRY_VERSION",
    "RARENESS_VERSION",
    "SOURCE_FILES",
    "dataset_key",
    "detections_key",
    "detector_key",
    "experiment_key",
    "rareness_key",
    "world_key",
]

#: Bumped when the detector's code changes what a trained model or its output would be.
DETECTOR_VERSION = "bev-detector-4"
#: Bumped when the geometric descriptors or the box feature sources change.
GEOMETRY_VERSION = "geometry-1"
#: Bumped when the rareness stage's code changes what it would give.
RARENESS_VERSION = "rareness-1"
#: Bumped when the experiment's code changes what a run would give.
EXPERIMENT_VERSION = "experiment-1"

#: The files of a data set each feature source reads besides its tables (their size and
#: modification time enter the detection stage's key).
SOURCE_FILES: dict[str, tuple[str, ...]] = {
    "detector": (),
    "geometry": (DETECTIONS_FILE,),
    "imported": (DETECTIONS_FILE, DETECTION_FEATURES_FILE),
}


def world_key(config: WorldConfig) -> str:
    """Cache key of the world simulated from ``config`` (its folder under ``world/``)."""
    return config_hash(config)


def dataset_key(dataset: Dataset) -> str:
    """A key for what a data set holds: the hash of the config that made it, else of its
    location and counts (an imported data set)."""
    if dataset.manifest.get("config_hash"):
        return str(dataset.manifest["config_hash"])
    counts = dataset.manifest.get("counts", {})
    text = f"{dataset.root.resolve()}|{sorted(counts.items())}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def detector_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the detector ensemble trained on ``dataset``."""
    return config_hash(config.detector, dataset_key(dataset), DETECTOR_VERSION)


def detections_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the detection stage: only the settings its feature source
    (``config.features.source``) reads, and its inputs'."""
    source = config.features.source
    if source not in SOURCE_FILES:
        raise InputError(f"features.source: unknown {source!r}; choose one of {FEATURE_SOURCES}")
    if source == "detector":
        return config_hash(
            config.detector,
            dataset_key(dataset),
            DETECTOR_VERSION,
            config_hash(config.tracker),
            config_hash(config.auto_label),
        )
    return config_hash(
        config.features,
        GEOMETRY_VERSION,
        dataset_key(dataset),
        config_hash(config.auto_label),
        config_hash(config.tracker),
        _file_stamp(Path(dataset.root), SOURCE_FILES[source]),
    )


def _file_stamp(root: Path, names: tuple[str, ...]) -> str:
    """Size and modification time of each file, ``none`` for a missing one."""
    return "-".join(
        f"{own.stat().st_size}-{own.stat().st_mtime_ns}" if own.is_file() else "none"
        for own in (root / name for name in names)
    )


def rareness_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the rareness stage: its settings and the detection stage's key."""
    return config_hash(config.rareness, detections_key(config, dataset), RARENESS_VERSION)


def experiment_key(config: RemConfig, dataset: Dataset, steps: int) -> str:
    """Cache key of the experiment's runs: everything that shapes a run except the rows and
    the seeds asked for (each run is a file of its own).

    Args:
        config: the settings with the experiment's detector recipe applied
            (``rem_core.experiment.plan_experiment`` does it).
        steps: the optimiser steps of every retraining: the count, not how it was asked
            for (960 steps are 960 steps).
    """
    settings = config.experiment.changed(
        rows=(),
        seeds=1,
        detector_epochs=None,
        detector_precision=None,
        steps=None,
    )
    return config_hash(
        settings,
        str(steps),
        config_hash(config.detector),
        config_hash(config.mining),
        config_hash(config.score),
        rareness_key(config, dataset),
        dataset_key(dataset),
        EXPERIMENT_VERSION,
    )
