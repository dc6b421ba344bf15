"""Feature sources without our detector: geometric descriptors of boxes, and the features a
researcher's detector stored with its detections."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.geometry import box_descriptors
from rem_core.io import DETECTION_FEATURES_FILE, DETECTIONS_FILE, check_features
from rem_core.mining import best_overlap
from rem_core.pipeline.keys import dataset_key
from rem_core.pipeline.outputs import DetectionRun, StageCall
from rem_core.pipeline.sources.base import FeatureSource
from rem_core.schema import BOX_COLUMNS, DETECTIONS, read_table
from rem_core.track import auto_label, track_detections

__all__ = ["GeometryFeatures", "ImportedFeatures"]


class _BoxFeatures(FeatureSource):
    """The detection stage without our detector: the data set's own detections
    (``detections.parquet``, written by ``rem import detections``), tracked by our tracker,
    or else each ground-truth vehicle box standing in for a detection (score 1, its own
    track). The "ensemble" is the one score, so the variance is 0. Auto-labels smooth the
    tracks as for detections."""

    @abstractmethod
    def _features(
        self, config: RemConfig, dataset: Dataset, gt: pd.DataFrame, client: Any = None
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """``(tracked detections, their features, the features of gt's rows)``; detections
        are tracked on ``client``'s cluster when there is one."""

    def detect(self, config: RemConfig, dataset: Dataset, call: StageCall) -> DetectionRun:
        report = call.reporter("features, tracks and auto-labels")
        report(0, 2)
        gt = dataset.boxes.reset_index(drop=True)
        tracked, features, gt_features = self._features(config, dataset, gt, call.client)
        pool = tracked["segment_id"].isin(dataset.split_ids("unlabelled")).to_numpy()
        score = tracked["score"].to_numpy(np.float32)[:, None]
        scores = np.where(pool[:, None], score, np.nan).astype(np.float32)
        report(1, 2)
        labels = auto_label(tracked, dataset.frames, config.auto_label, call.client)
        report(2, 2)
        meta = {
            "features": self.name,
            "descriptors": len(features[0]) if len(features) else 0,
            "gt_features": "own" if self.own_gt_features else "matched detections",
            "dataset": str(dataset.root),
            "dataset_key": dataset_key(dataset),
        }
        return DetectionRun(None, tracked, features, scores, gt, gt_features, labels, meta)


class GeometryFeatures(_BoxFeatures):
    """Geometric descriptors (``rem_core.geometry.box_descriptors``, with the points inside
    each box where the frame has a point cloud) of every detection and every ground-truth box."""

    name = "geometry"
    label = "geometric descriptors of every box"

    def needs(self, config: RemConfig) -> str:
        return (
            f"{self.label} (this data set has no point cloud to train a detector on: its own "
            "detections, or else its ground-truth boxes, stand in)"
        )

    def _features(self, config, dataset, gt, client=None):

        points = dataset.points if dataset.frames["num_points"].any() else None
        gt_features = box_descriptors(gt, points)
        own = Path(dataset.root) / DETECTIONS_FILE
        if own.is_file():
            # The data set's own detections (``rem import detections``), tracked like ours.
            detections = read_table(own, DETECTIONS)
            features = box_descriptors(detections, points)
            tracked = track_detections(detections, dataset.frames, config.tracker, client)
            return tracked, features, gt_features
        # Like the detector, the stand-in detections are vehicles.
        vehicles = np.flatnonzero((gt["class"] == "vehicle").to_numpy())
        boxes = gt.iloc[vehicles].reset_index(drop=True)
        columns = ["segment_id", "frame_index", "class", *BOX_COLUMNS, "num_points", "distance"]
        tracked = boxes[columns].assign(
            detection_id=np.arange(len(boxes), dtype=np.int64),
            score=np.float32(1.0),
            track_id=boxes["segment_id"].astype(str) + "/" + boxes["track_id"].astype(str),
        )
        return tracked, gt_features[vehicles], gt_features


class ImportedFeatures(_BoxFeatures):
    """The researcher's detector's own features (``detection_features.npy``). A
    ground-truth box, which that detector never described, takes the features of the
    detection overlapping it best (BEV IoU >= the detector's ``match_iou``) and NaN
    features when it was missed (its log p is then NaN)."""

    name = "imported"
    label = "the features your detector gave its detections"

    def needs(self, config: RemConfig) -> str:
        return f"{self.label} (stored with `rem import detections --features`)"

    own_gt_features = False

    def _features(self, config, dataset, gt, client=None):

        detections, features = _imported_detections(dataset)
        match, iou = best_overlap(gt, detections)
        hit = (match >= 0) & (iou >= config.detector.match_iou)
        gt_features = np.full((len(gt), features.shape[1]), np.nan, np.float32)
        gt_features[hit] = features[match[hit]]
        tracked = track_detections(detections, dataset.frames, config.tracker, client)
        return tracked, features, gt_features


def _imported_detections(dataset: Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    """The data set's detections and their features, checked to pair row for row."""

    root = Path(dataset.root)
    det_file, feat_file = root / DETECTIONS_FILE, root / DETECTION_FEATURES_FILE
    for path in (det_file, feat_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"features.source = 'imported' needs {path}; store detections with their "
                "features by `rem import detections PATH --data DIR --features F.npy`"
            )
    detections = read_table(det_file, DETECTIONS)
    features = check_features(np.load(feat_file, allow_pickle=False), len(detections), feat_file)
    return detections, features
