"""Which feature source a data set is scored with: by name, or chosen from what it holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from rem_core.config import FEATURE_CHOICES, FEATURE_SOURCES, FeatureConfig, RemConfig
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.io import DETECTION_FEATURES_FILE, DETECTIONS_FILE
from rem_core.pipeline.sources.base import FeatureSource
from rem_core.pipeline.sources.boxes import GeometryFeatures, ImportedFeatures
from rem_core.pipeline.sources.detector import DetectorFeatures
from rem_core.schema import DataError

__all__ = [
    "MIN_DETECTOR_FRAMES",
    "FeatureChoice",
    "choose_features",
    "feature_source",
    "features_for",
]

log = logging.getLogger(__name__)

#: Every feature source by name.
_SOURCES: dict[str, type[FeatureSource]] = {
    s.name: s for s in (DetectorFeatures, GeometryFeatures, ImportedFeatures)
}


def feature_source(name: str) -> FeatureSource:
    """The feature source called ``name`` (one of ``FEATURE_SOURCES``)."""
    if name not in _SOURCES:
        raise InputError(f"features.source: unknown {name!r}; choose one of {FEATURE_SOURCES}")
    return _SOURCES[name]()


#: Frames with a point cloud the source split needs for our detector to be trained on it
#: (the tiny world's single source segment has 8).
MIN_DETECTOR_FRAMES = 8


@dataclass(frozen=True)
class FeatureChoice:
    """The features REM scores on a data set, and why (one line, for the user).

    Attributes:
        source: ``"detector"``, ``"geometry"`` or ``"imported"`` (see ``FeatureConfig``).
        reason: why this source, naming what the data set holds.
    """

    source: str
    reason: str


def choose_features(dataset: Dataset, wanted: str = "auto") -> FeatureChoice:
    """The features REM can score on ``dataset``: ``wanted``, checked, or with ``"auto"``
    what the data can support.

    ``auto`` picks the features a researcher's detector gave its detections if they are
    stored (``rem import detections --features``); else our detector if the source split
    holds point clouds in at least ``MIN_DETECTOR_FRAMES`` frames to train it on; else
    geometric descriptors of the boxes. A choice the data cannot support raises
    ``DataError`` naming what is missing and the command that would add it.
    """
    if wanted not in FEATURE_CHOICES:
        raise InputError(f"features: unknown {wanted!r}; choose one of {FEATURE_CHOICES}")
    root = Path(dataset.root)
    imported = (root / DETECTIONS_FILE).is_file() and (root / DETECTION_FEATURES_FILE).is_file()
    frames = dataset.frames
    splits = dataset.segments.set_index("segment_id")["split"]
    in_source = frames["segment_id"].map(splits).eq("source").to_numpy()
    n_source = int(splits.eq("source").sum())
    with_points = int((frames["num_points"].to_numpy()[in_source] > 0).sum())
    trainable = with_points >= MIN_DETECTOR_FRAMES
    source_line = (
        f"the source split ({n_source} segment{'' if n_source == 1 else 's'}) has a point "
        f"cloud in {with_points} frame{'' if with_points == 1 else 's'}; our detector needs "
        f"{MIN_DETECTOR_FRAMES}"
    )
    if wanted == "auto":
        if imported:
            return FeatureChoice(
                "imported", f"{root} holds a detector's detections with their features"
            )
        if trainable:
            return FeatureChoice("detector", f"our detector ensemble: {source_line}")
        own = "its own detections" if (root / DETECTIONS_FILE).is_file() else "its labelled boxes"
        return FeatureChoice("geometry", f"geometric descriptors of {own}: {source_line}")
    if wanted == "detector" and not trainable:
        raise DataError(
            f"{root}: --features detector: {source_line}. Import labelled logs with their "
            "point clouds into the source split (`rem import ... --split source`), or score "
            "geometric descriptors (--features geometry)"
        )
    if wanted == "imported" and not imported:
        raise DataError(
            f"{root}: --features imported needs {DETECTIONS_FILE} and "
            f"{DETECTION_FEATURES_FILE}; store them with `rem import detections PATH --data "
            f"{root} --features F.npy`"
        )
    reasons = {
        "detector": f"our detector ensemble, as asked: {source_line}",
        "geometry": "geometric box descriptors, as asked",
        "imported": "the detector's features stored with the data set, as asked",
    }
    return FeatureChoice(wanted, reasons[wanted])


def features_for(config: RemConfig, dataset: Dataset, wanted: str = "auto") -> RemConfig:
    """``config`` with the features of :func:`choose_features` (``dataset``, ``wanted``)."""
    choice = choose_features(dataset, wanted)
    log.info("features: %s (%s)", choice.source, choice.reason)
    if choice.source == config.features.source:
        return config
    return replace(config, features=FeatureConfig(source=choice.source))
