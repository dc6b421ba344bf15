"""Every cache key, assembled in one place: from settings, content and code.

A stage's key hashes (``rem_core.config.config_hash``) three things:

- the settings it reads (only those: a setting a stage does not read never invalidates it);
- the content of its inputs: the data set's bytes (``Dataset.content_key``), the files of a
  researcher's detections, and the keys of the stages it reads;
- the fingerprint of the code that computes it (``rem_core.pipeline.code``): its modules'
  import closure, without docstrings, comments or formatting.

So a changed setting, other data, or a change of logic anywhere in a stage's code gives a
new key, for that stage and every stage after it; nobody has to remember to bump a version.
The chain::

    world_key   dataset_key ──> detector_key ──> detections_key ──> rareness_key ──> experiment_key
                (the data set's bytes)          (by feature source)

A job's key (``rem_core.jobs.job_key``) is not a stage's: it names one (kind, settings, data
set) the app runs at a time, whatever the stages it reads are.

>>> from rem_core.config import WorldConfig
>>> world_key(WorldConfig.tiny()) == world_key(WorldConfig.tiny())
True
"""

from __future__ import annotations

from pathlib import Path

from rem_core.config import FEATURE_SOURCES, RemConfig, WorldConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.files import file_sha256
from rem_core.io import DETECTION_FEATURES_FILE, DETECTIONS_FILE
from rem_core.pipeline.code import code_fingerprint

__all__ = [
    "SOURCE_FILES",
    "dataset_key",
    "detections_key",
    "detector_key",
    "experiment_key",
    "rareness_key",
    "world_key",
]

#: The files of a data set each feature source reads besides its tables (their bytes enter
#: the detection stage's key).
SOURCE_FILES: dict[str, tuple[str, ...]] = {
    "detector": (),
    "geometry": (DETECTIONS_FILE,),
    "imported": (DETECTIONS_FILE, DETECTION_FEATURES_FILE),
}


def world_key(config: WorldConfig) -> str:
    """Cache key of the world simulated from ``config`` (its folder under ``world/``): its
    settings and the simulator's code."""
    return config_hash(config, code_fingerprint("world"))


def dataset_key(dataset: Dataset) -> str:
    """A key for what a data set holds: the hash of its tables' and points' bytes, wherever
    it is and whatever made it (``Dataset.content_key``)."""
    return dataset.content_key()


def detector_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the detector ensemble trained on ``dataset``."""
    return config_hash(config.detector, dataset_key(dataset), code_fingerprint("detector"))


def detections_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the detection stage: only the settings its feature source
    (``config.features.source``) reads, its inputs' content and its code."""
    source = config.features.source
    if source not in SOURCE_FILES:
        raise InputError(f"features.source: unknown {source!r}; choose one of {FEATURE_SOURCES}")
    if source == "detector":
        return config_hash(
            config.tracker,
            detector_key(config, dataset),
            config_hash(config.auto_label),
            code_fingerprint("detections/detector"),
        )
    return config_hash(
        config.features,
        dataset_key(dataset),
        config_hash(config.tracker),
        config_hash(config.auto_label),
        _files_key(Path(dataset.root), SOURCE_FILES[source]),
        code_fingerprint("detections/boxes"),
    )


def _files_key(root: Path, names: tuple[str, ...]) -> str:
    """The SHA-256 of each file's bytes, ``none`` for a missing one."""
    return "-".join(
        file_sha256(root / name) if (root / name).is_file() else "none" for name in names
    )


def rareness_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of the rareness stage: its settings, the detection stage's key and its code."""
    return config_hash(
        config.rareness, detections_key(config, dataset), code_fingerprint("rareness")
    )


def experiment_key(config: RemConfig, dataset: Dataset, steps: int) -> str:
    """Cache key of the experiment's runs: everything that shapes a run except the rows and
    the seeds asked for (each run is a file of its own).

    Args:
        config: the settings with the experiment's detector recipe applied
            (``rem_core.experiment.plan_experiment`` does it).
        steps: the optimiser steps of every retraining: the count, not how it was asked
            for (960 steps are 960 steps).
    """
    return config_hash(
        _experiment_settings(config),
        str(steps),
        config_hash(config.detector),
        config_hash(config.mining),
        config_hash(config.score),
        rareness_key(config, dataset),
        code_fingerprint("experiment"),
    )


def _experiment_settings(config: RemConfig) -> object:
    """The experiment's settings that shape a run: all but the rows, the seeds and how the
    recipe and the step count were asked for."""
    return config.experiment.changed(
        rows=(), seeds=1, detector_epochs=None, detector_precision=None, steps=None
    )
