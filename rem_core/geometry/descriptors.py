"""Geometric descriptors of boxes: features for REM when no detector features exist.

Imported data (KITTI labels, Waymo ``Objects`` files, a researcher's own detections
without features) still gets a density model and D-REM through these descriptors. They
are fed through the same PCA and standardisation as detector features. Per box:

- shape, always: ``log length``, ``log width``, ``log height``, ``log(length / width)``,
  ``log(height / max(length, width))``, ``log volume``;
- the points inside the box, where the frame has a point cloud: ``log(1 + n)``, the
  points per cubic metre (``log(1 + n / volume)``), and in the box's own frame
  (coordinates divided by the box's size, so in [-0.5, 0.5]) the mean and standard
  deviation along length, width and height, and the share of points in the upper half.
  Without points these are all 0.

All in one ``(N, 15)`` float32 array, columns named by ``DESCRIPTOR_NAMES``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from rem_core.geometry.boxes import PointGrid, inside_pairs
from rem_core.schema import BOX_COLUMNS

__all__ = ["DESCRIPTOR_NAMES", "box_descriptors"]

DESCRIPTOR_NAMES = (
    "log_length", "log_width", "log_height", "log_aspect", "log_tallness", "log_volume",
    "log_points", "log_density", "mean_u", "mean_v", "mean_w", "std_u", "std_v", "std_w",
    "upper_share",
)  # fmt: skip
_SHAPE = 6
_EPS = 1e-3  # metres: keeps degenerate (flat or empty) boxes finite


def _shape(boxes: np.ndarray) -> np.ndarray:
    length, width, height = (np.maximum(boxes[:, k], _EPS) for k in (3, 4, 5))
    return np.column_stack(
        [
            np.log(length),
            np.log(width),
            np.log(height),
            np.log(length / width),
            np.log(height / np.maximum(length, width)),
            np.log(length * width * height),
        ]
    )


def _point_stats(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N, 9)`` point statistics of each box of one frame (zeros where none)."""
    out = np.zeros((len(boxes), 9))
    if len(points) == 0 or len(boxes) == 0:
        return out
    box, idx = PointGrid(points).candidates(boxes)
    inside = inside_pairs(points[idx], boxes[box])
    box, idx = box[inside], idx[inside]
    if len(box) == 0:
        return out
    d = points[idx, :3].astype(np.float64) - boxes[box, :3]
    c, s = np.cos(boxes[box, 6]), np.sin(boxes[box, 6])
    size = np.maximum(boxes[box, 3:6], _EPS)
    local = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]])
    local /= size
    n = np.bincount(box, minlength=len(boxes)).astype(np.float64)
    volume = np.prod(np.maximum(boxes[:, 3:6], _EPS), axis=1)
    mean = np.column_stack([np.bincount(box, local[:, k], len(boxes)) for k in range(3)])
    second = np.column_stack([np.bincount(box, local[:, k] ** 2, len(boxes)) for k in range(3)])
    upper = np.bincount(box, (local[:, 2] > 0).astype(float), len(boxes))
    has = n > 0
    safe = np.maximum(n, 1)[:, None]
    mean /= safe
    std = np.sqrt(np.maximum(second / safe - mean**2, 0.0))
    out[:, 0] = np.log1p(n)
    out[:, 1] = np.log1p(n / volume)
    out[:, 2:5] = np.where(has[:, None], mean, 0.0)
    out[:, 5:8] = np.where(has[:, None], std, 0.0)
    out[:, 8] = np.where(has, upper / np.maximum(n, 1), 0.0)
    return out


def box_descriptors(
    boxes: pd.DataFrame,
    points: Callable[[str, int], np.ndarray] | None = None,
) -> np.ndarray:
    """Geometric descriptors of every box (see the module docstring).

    Args:
        boxes: rows with ``segment_id, frame_index`` and the box columns (vehicle frame).
        points: ``points(segment_id, frame_index)`` gives a frame's ``(M, >=3)`` points;
            ``None`` for shape only.

    Returns:
        ``(N, 15)`` float32, row ``i`` for box ``i``.
    """
    arr = boxes[BOX_COLUMNS].to_numpy(np.float64)
    out = np.zeros((len(arr), len(DESCRIPTOR_NAMES)), np.float64)
    out[:, :_SHAPE] = _shape(arr)
    if points is not None and len(arr):
        groups = boxes.groupby(["segment_id", "frame_index"], sort=False).indices
        for (segment, frame), rows in groups.items():
            pts = np.asarray(points(str(segment), int(frame)))
            out[rows, _SHAPE:] = _point_stats(pts, arr[rows])
    return out.astype(np.float32)
