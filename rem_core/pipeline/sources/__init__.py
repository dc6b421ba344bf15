"""Feature sources: what the detection stage's features come from.

Each source is an object with one interface (:class:`FeatureSource`): ``detect``, which
returns a :class:`~rem_core.pipeline.DetectionRun` (its cache key is
``rem_core.pipeline.detections_key``). The pipeline chains stages
without knowing which source it runs, and the pages ask a run's source
(``feature_source(run.source_name)``) what it can show
(a trained ensemble, a score variance, features of its own for ground truth) instead of
testing names.

- ``"detector"`` (:class:`~rem_core.pipeline.DetectorFeatures`, the paper's):
  ROI-pooled BEV features of our detector ensemble, trained on the source pool.
- ``"geometry"`` (:class:`~rem_core.pipeline.GeometryFeatures`): geometric
  descriptors of the boxes, for data without point clouds to train a detector on.
- ``"imported"`` (:class:`~rem_core.pipeline.ImportedFeatures`): the features a
  researcher's detector gave its detections (``rem import detections --features``).

>>> from rem_core.config import FEATURE_SOURCES
>>> [feature_source(name).trains_detector for name in FEATURE_SOURCES]
[True, False, False]
"""

from rem_core.pipeline.sources.base import FeatureSource
from rem_core.pipeline.sources.boxes import (
    GeometryFeatures,
    ImportedFeatures,
)
from rem_core.pipeline.sources.choice import (
    MIN_DETECTOR_FRAMES,
    FeatureChoice,
    choose_features,
    feature_source,
    features_for,
)
from rem_core.pipeline.sources.detector import (
    DetectorFeatures,
    detector_entry,
    detector_origin,
    ensure_detectors,
)

__all__ = [
    "MIN_DETECTOR_FRAMES",
    "DetectorFeatures",
    "FeatureChoice",
    "FeatureSource",
    "GeometryFeatures",
    "ImportedFeatures",
    "choose_features",
    "detector_entry",
    "detector_origin",
    "ensure_detectors",
    "feature_source",
    "features_for",
]
