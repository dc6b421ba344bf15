"""A data set's own detections: read from a detector's files and stored in its folder.

``rem import detections`` stores a detector's output (a table, Waymo ``Objects``
predictions, KITTI AB3DMOT files) and optionally its features beside the data set's
tables; the geometry pipeline then mines them (``features.source = "imported"`` scores
the stored features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.dataset import Dataset
from rem_core.files import publish_file
from rem_core.io.detections import check_features, read_detections
from rem_core.io.kitti import read_kitti_detections
from rem_core.io.waymo import read_objects
from rem_core.schema import DataError

__all__ = [
    "DETECTIONS_FILE",
    "DETECTION_FEATURES_FILE",
    "attach_detections",
    "detections_from_kitti",
    "detections_from_waymo_objects",
]

#: A data set's own detections (``rem import detections``), next to its tables.
DETECTIONS_FILE = "detections.parquet"

#: Their features (``rem import detections --features``), row ``i`` for detection ``i``.
DETECTION_FEATURES_FILE = "detection_features.npy"


def detections_from_waymo_objects(path: str | Path, dataset: Dataset) -> pd.DataFrame:
    """Predictions in a Waymo ``Objects`` file, placed on the data set's frames by segment
    (context name) and timestamp; their scores kept."""

    preds = read_objects(path)
    frames = dataset.frames.set_index(["segment_id", "timestamp_micros"])["frame_index"]
    keys = pd.MultiIndex.from_frame(preds[["segment_id", "timestamp_micros"]])
    found = keys.isin(frames.index)
    if not found.all():
        seg, stamp = keys[int(np.flatnonzero(~found)[0])]
        raise DataError(f"{path}: no frame at {stamp} of segment {seg!r} in {dataset.root}")
    preds["frame_index"] = frames.reindex(keys).to_numpy()
    return preds.drop(columns=["timestamp_micros", "track_id"])


def detections_from_kitti(folder: str | Path, calib: str | Path) -> pd.DataFrame:
    """AB3DMOT detection files: ``folder`` holds one folder per class (or the files
    themselves), ``NNNN.txt`` per sequence; ``calib`` the sequences' calibration files."""

    folder, calib = Path(folder), Path(calib)
    files = sorted(folder.glob("*.txt")) or sorted(folder.glob("*/*.txt"))
    if not files:
        raise DataError(f"{folder}: no detection files (NNNN.txt)")
    parts = [read_kitti_detections(p, calib / p.name) for p in files if p.stat().st_size]
    return pd.concat(parts, ignore_index=True).drop(columns=["subtype"])


def attach_detections(
    root: str | Path,
    detections: pd.DataFrame,
    features: np.ndarray | None = None,
    *,
    force: bool = False,
) -> pd.DataFrame:
    """Store detections in a data set folder (``detections.parquet``), checked against its
    frames and with their points counted; the geometry pipeline mines them.

    Args:
        root: the data set folder.
        detections: ``DETECTIONS`` columns (``detection_id`` and ``track_id`` are redone).
        features: ``(N, C)`` features of the detector, row ``i`` for row ``i`` of
            ``detections`` (stored as ``detection_features.npy``; ``features.source =
            "imported"`` scores them). Without them, stale features of earlier detections
            are removed.
        force: replace detections the data set already has.

    Returns:
        The stored ``DETECTIONS`` table.

    Raises:
        FileExistsError: the data set already has detections and ``force`` is false.
        DataError: features that do not match the rows, or are not finite.
    """
    import tempfile

    dataset = Dataset.open(root)
    target = Path(root) / DETECTIONS_FILE
    if target.exists() and not force:
        raise FileExistsError(f"{target}: exists; pass --force (force=True) to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "detections.parquet"
        table = detections.drop(columns=["detection_id", "track_id"], errors="ignore")
        table.to_parquet(staged)
        out, _ = read_detections(staged, dataset=dataset)
    feats = None if features is None else check_features(features, len(out), "features")
    # Features first: a crash between the two writes leaves a row count the pipeline
    # refuses (load checks it), never detections paired with another run's features.
    feature_file = Path(root) / DETECTION_FEATURES_FILE
    if feats is not None:
        publish_file(feature_file, lambda tmp: _save_npy(tmp, feats), force=True)
    publish_file(target, out.to_parquet, force=force)
    if feats is None:
        feature_file.unlink(missing_ok=True)
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save(path) would append ".npy" to the temporary name
        np.save(f, array)
