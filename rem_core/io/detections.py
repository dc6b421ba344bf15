"""Bring-your-own detections: a researcher's detector output, checked and completed.

The file is Parquet or CSV (by suffix) with one row per detection:

- required: ``segment_id``, ``frame_index``, the box columns (``center_x, center_y,
  center_z, length, width, height, heading``: the vehicle frame, metres, radians) and
  ``score``;
- optional: ``class`` (default ``vehicle``), ``detection_id`` (default: the row number),
  ``track_id`` (default: none; the tracker fills it in).

Optionally a ``.npy`` file of ``(N, C)`` features, row ``i`` for detection ``i`` (e.g. the
detector's own ROI-pooled features, for D-REM). With the data set the detections belong
to, every ``(segment_id, frame_index)`` is checked against its frames and ``num_points``
is counted in that frame's point cloud; otherwise it is taken from the file or left 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.dataset import Dataset
from rem_core.geometry import PointGrid
from rem_core.schema import BOX_COLUMNS, DETECTIONS, DataError, SchemaError, conform

__all__ = ["check_features", "read_detections"]

REQUIRED = ["segment_id", "frame_index", *BOX_COLUMNS, "score"]


def read_detections(
    path: str | Path,
    features: str | Path | None = None,
    dataset: Dataset | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Read and check a detections file (and its features).

    Returns:
        The ``DETECTIONS`` table, and the ``(N, C)`` float32 features (or ``None``).

    Raises:
        SchemaError: naming the file, the column and the first bad row (a missing column,
            a missing or non-finite value, a negative size).
        DataError: features that do not match the rows, or a frame the data set lacks.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(path)
        elif suffix == ".csv":
            table = pd.read_csv(path, dtype={"segment_id": str, "track_id": str})
        else:
            raise DataError(f"{path}: use a .parquet or .csv file of detections")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable detections file ({exc})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SchemaError(f"{path}: detections are missing column {missing[0]!r}")
    table = table.copy()
    if "class" not in table:
        table["class"] = "vehicle"
    if "detection_id" not in table:
        table["detection_id"] = np.arange(len(table), dtype=np.int64)
    if "track_id" not in table:
        table["track_id"] = None
    sizes = table[["length", "width", "height"]].to_numpy(np.float64)
    if (sizes < 0).any():
        row, col = np.argwhere(sizes < 0)[0]
        raise SchemaError(
            f"{path}: column {['length', 'width', 'height'][col]!r} is negative at row {row}"
        )
    table["distance"] = np.hypot(table["center_x"], table["center_y"])
    if "num_points" not in table:
        table["num_points"] = 0
    if dataset is not None:
        table["num_points"] = _count_points(table, dataset, path)
    out = conform(table, DETECTIONS, path)
    feats = None
    if features is not None:
        feats = check_features(np.load(Path(features), allow_pickle=False), len(out), features)
    return out, feats


def check_features(features: np.ndarray, rows: int, name: str | Path) -> np.ndarray:
    """``features`` as ``(rows, C)`` float32, or a ``DataError`` naming ``name`` and the
    first bad row."""
    feats = np.asarray(features)
    if feats.ndim != 2 or len(feats) != rows or feats.shape[1] == 0:
        raise DataError(
            f"{name}: features of shape {feats.shape} for {rows} detections; "
            "expected (N, C), one row per detection"
        )
    if not np.issubdtype(feats.dtype, np.number):
        raise DataError(f"{name}: features of type {feats.dtype}; expected numbers")
    bad = ~np.isfinite(feats)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{name}: row {row}, column {col} holds a non-finite feature")
    return feats.astype(np.float32)


def _count_points(table: pd.DataFrame, dataset: Dataset, path: Path) -> np.ndarray:
    frames = dataset.frames.set_index(["segment_id", "frame_index"]).index
    keys = pd.MultiIndex.from_arrays(
        [table["segment_id"].astype(str), table["frame_index"].astype(int)]
    )
    known = keys.isin(frames)
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        seg, frame = keys[row]
        raise DataError(
            f"{path}: row {row}: frame {frame} of segment {seg!r} is not in {dataset.root}"
        )
    counts = np.zeros(len(table), np.int64)
    boxes = table[BOX_COLUMNS].to_numpy(np.float64)
    with_points = set(
        dataset.frames.loc[
            dataset.frames["num_points"] > 0, ["segment_id", "frame_index"]
        ].itertuples(index=False, name=None)
    )
    for (seg, frame), rows in table.groupby(["segment_id", "frame_index"]).indices.items():
        if (seg, frame) not in with_points:
            continue  # the frame has no point cloud (imported labels)
        points = dataset.points(str(seg), int(frame))
        if len(points):
            counts[rows] = PointGrid(points).count_in_boxes(boxes[rows])
    return counts
