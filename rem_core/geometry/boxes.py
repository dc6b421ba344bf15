"""Oriented 3D boxes: corners, point-in-box tests and bird's-eye-view overlap.

Box convention (as Waymo): an ``(N, 7)`` float array of ``center_x, center_y, center_z,
length, width, height, heading`` in metres and radians. The centre is the geometric centre,
``length`` runs along the heading, ``width`` to the left, ``height`` up, and heading is the
angle from the frame's +x axis to the box's forward axis, counter-clockwise, in [-pi, pi).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rem_core.errors import InputError

__all__ = [
    "LARGE_MIN_M",
    "PointGrid",
    "as_boxes",
    "bev_corners",
    "bev_overlap",
    "box_corners",
    "count_points_in_boxes",
    "expand_ranges",
    "inside_pairs",
    "points_in_box",
    "size_subset",
    "wrap_angle",
]

# Corners of the unit box in the box frame, scaled by half extents.
_UNIT_CORNERS = np.array(
    [[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64
)


def as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    """A box array checked at a boundary: ``(N, 7)`` float64, finite, sizes ``>= 0``.

    Args:
        boxes: ``(N, 7)`` boxes in the convention of the module docstring.
        name: what the boxes are, for the error message.

    Returns:
        ``(N, 7)`` float64 (the input itself when it already is one).

    Raises:
        ValueError: naming ``name``, for a wrong shape, a non-finite value or a negative size.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise InputError(f"{name}: expected an (N, 7) box array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: boxes must be finite")
    if (arr[:, 3:6] < 0).any():
        raise InputError(f"{name}: length, width and height must be >= 0")
    return arr


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Angles in radians wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """The 8 corners of each box.

    Args:
        boxes: ``(N, 7)`` boxes, see the module docstring.

    Returns:
        ``(N, 8, 3)`` float64 corners in the boxes' frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    half = boxes[:, None, 3:6] / 2 * _UNIT_CORNERS[None]
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = cos * half[..., 0] - sin * half[..., 1]
    y = sin * half[..., 0] + cos * half[..., 1]
    return np.stack([x, y, half[..., 2]], axis=-1) + boxes[:, None, :3]


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """The 4 bird's-eye-view corners of each box, counter-clockwise from front-left.

    Args:
        boxes: ``(N, 7)`` boxes, or ``(N, 5)`` as ``center_x, center_y, length, width, heading``.

    Returns:
        ``(N, 4, 2)`` float64 corners.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1] == 7:
        boxes = boxes[:, [0, 1, 3, 4, 6]]
    hl, hw = boxes[:, 2] / 2, boxes[:, 3] / 2
    local = np.stack(
        [
            np.stack([hl, hw], -1),
            np.stack([-hl, hw], -1),
            np.stack([-hl, -hw], -1),
            np.stack([hl, -hw], -1),
        ],
        axis=1,
    )
    cos, sin = np.cos(boxes[:, 4])[:, None], np.sin(boxes[:, 4])[:, None]
    x = cos * local[..., 0] - sin * local[..., 1]
    y = sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y], axis=-1) + boxes[:, None, :2]


def points_in_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Which points lie inside one box (faces included).

    Args:
        points: ``(M, >=3)`` points, x, y, z first, in the box's frame.
        box: ``(7,)`` box.

    Returns:
        ``(M,)`` bool mask.
    """
    box = np.asarray(box, dtype=np.float64)
    d = np.asarray(points)[:, :3] - box[:3]
    cos, sin = np.cos(box[6]), np.sin(box[6])
    local_x = cos * d[:, 0] + sin * d[:, 1]
    local_y = -sin * d[:, 0] + cos * d[:, 1]
    return (
        (np.abs(local_x) <= box[3] / 2)
        & (np.abs(local_y) <= box[4] / 2)
        & (np.abs(d[:, 2]) <= box[5] / 2)
    )


def inside_pairs(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each point lies inside its paired box (faces included), row by row.

    Args:
        points: ``(K, >=3)`` points, x, y, z first.
        boxes: ``(K, 7)`` boxes, row ``k`` paired with point ``k``.

    Returns:
        ``(K,)`` bool.
    """
    d = np.asarray(points)[:, :3].astype(np.float64) - boxes[:, :3]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    return (
        (np.abs(cos * d[:, 0] + sin * d[:, 1]) <= boxes[:, 3] / 2)
        & (np.abs(-sin * d[:, 0] + cos * d[:, 1]) <= boxes[:, 4] / 2)
        & (np.abs(d[:, 2]) <= boxes[:, 5] / 2)
    )


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Points inside each box (faces included), by a plain test of every point near each box.

    The reference that faster counts are checked against: a loop over boxes, each tested
    against the points in a square around it.

    Args:
        points: ``(M, >=3)`` points, x, y, z first.
        boxes: ``(N, 7)`` boxes in the same frame.

    Returns:
        ``(N,)`` int64 counts.
    """
    points = np.asarray(points)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    counts = np.zeros(len(boxes), dtype=np.int64)
    for i, box in enumerate(boxes):
        radius = np.linalg.norm(box[3:6]) / 2
        near = np.abs(points[:, 0] - box[0]) <= radius
        near &= np.abs(points[:, 1] - box[1]) <= radius
        counts[i] = np.count_nonzero(points_in_box(points[near], box))
    return counts


def expand_ranges(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every element of the integer ranges ``[start_i, start_i + count_i)``, without a loop.

    Returns:
        ``(owner, value)``: ``(sum(count),)`` int64 range index and element of each.
    """
    owner = np.repeat(np.arange(len(count)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return owner, start[owner] + offset


class PointGrid:
    """Points bucketed into square bird's-eye-view cells, for fast box queries.

    Args:
        points: ``(M, >=3)`` points, x, y, z first.
        cell: cell size in metres (grown if the points spread over more than 2048 cells).
    """

    def __init__(self, points: np.ndarray, cell: float = 2.0) -> None:
        # Column by column: numpy reduces a contiguous column some 30 times faster than the
        # axis 0 of an (M, 2) array, and the values are the same.
        self.points = np.asarray(points)
        x, y = (self.points[:, k].astype(np.float64) for k in (0, 1))
        if len(x):
            self.lo = np.array([x.min(), y.min()])
            extent = max(x.max() - self.lo[0], y.max() - self.lo[1])
        else:
            self.lo, extent = np.zeros(2), 0.0
        self.cell = max(cell, extent / 2048)
        i = np.floor((x - self.lo[0]) / self.cell).astype(np.int64)
        j = np.floor((y - self.lo[1]) / self.cell).astype(np.int64)
        self.shape = (i.max() + 1, j.max() + 1) if len(x) else (1, 1)
        cells = self.shape[0] * self.shape[1]
        key = i * self.shape[1] + j
        # The same stable order either way; numpy sorts 16-bit keys by radix, in linear time.
        self.order = np.argsort(key.astype(np.uint16) if cells <= 1 << 16 else key, kind="stable")
        counts = np.bincount(key, minlength=cells)
        self.start = np.cumsum(counts) - counts
        self.count = counts
        self._sorted_xyz: np.ndarray | None = None

    def _cells(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box index, position in ``order``) of every point in the cells each box's
        footprint touches."""
        corners = bev_corners(boxes)
        lo = np.floor((corners.min(1) - self.lo) / self.cell).astype(np.int64)
        hi = np.floor((corners.max(1) - self.lo) / self.cell).astype(np.int64)
        lo = np.clip(lo, 0, np.array(self.shape) - 1)
        hi = np.clip(hi, -1, np.array(self.shape) - 1)
        span = np.maximum(hi - lo + 1, 0)
        box, k = expand_ranges(np.zeros(len(boxes), np.int64), span[:, 0] * span[:, 1])
        ncol = np.maximum(span[box, 1], 1)
        cell = (lo[box, 0] + k // ncol) * self.shape[1] + lo[box, 1] + k % ncol
        pair, idx = expand_ranges(self.start[cell], self.count[cell])
        return box[pair], idx

    def candidates(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box index, point index) of every point in the cells each box's footprint touches."""
        box, idx = self._cells(np.asarray(boxes, dtype=np.float64).reshape(-1, 7))
        return box, self.order[idx]

    def count_in_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 points inside each box, faces included; equals
        :func:`count_points_in_boxes`."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        if len(boxes) == 0 or len(self.points) == 0:
            return np.zeros(len(boxes), dtype=np.int64)
        if self._sorted_xyz is None:  # the points in cell order, once: candidates are runs
            self._sorted_xyz = self.points[self.order, :3].astype(np.float64)
        box, idx = self._cells(boxes)
        inside = inside_pairs(self._sorted_xyz[idx], boxes[box])
        return np.bincount(box[inside], minlength=len(boxes))


def bev_overlap(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Whether rotated rectangles overlap in bird's-eye view, pair by pair.

    Separating-axis test on the two rectangles' four edge normals.

    Args:
        a: ``(K, 5)`` rectangles as ``center_x, center_y, length, width, heading``.
        b: ``(K, 5)`` rectangles, paired row by row with ``a``.
        margin: metres added to every half extent (a positive margin also flags near misses).

    Returns:
        ``(K,)`` bool, True where the pair overlaps (touching counts).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 5)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
    d = b[:, :2] - a[:, :2]
    axes_a = np.stack([np.cos(a[:, 4]), np.sin(a[:, 4])], -1)
    axes_b = np.stack([np.cos(b[:, 4]), np.sin(b[:, 4])], -1)
    perp = lambda u: np.stack([-u[:, 1], u[:, 0]], -1)  # noqa: E731
    a_axes = (axes_a, perp(axes_a))
    b_axes = (axes_b, perp(axes_b))
    ha = (a[:, 2] / 2 + margin, a[:, 3] / 2 + margin)
    hb = (b[:, 2] / 2 + margin, b[:, 3] / 2 + margin)
    separated = np.zeros(len(a), dtype=bool)
    for axis in (*a_axes, *b_axes):
        reach = sum(h * np.abs(np.sum(u * axis, -1)) for h, u in zip(ha, a_axes, strict=True))
        reach = reach + sum(
            h * np.abs(np.sum(u * axis, -1)) for h, u in zip(hb, b_axes, strict=True)
        )
        separated |= np.abs(np.sum(d * axis, -1)) > reach
    return ~separated


#: Size subsets of vehicles by ``max(length, width, height)``, as in the paper's Table 3 and
#: Waymo's SIZE breakdown: Regular in [3, 7) m, Large >= 7 m; smaller ones are "small".
REGULAR_MIN_M, LARGE_MIN_M = 3.0, 7.0


def size_subset(length: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """``"small"``, ``"regular"`` or ``"large"`` per box, from its largest dimension in metres."""
    size = np.maximum(np.maximum(np.asarray(length), np.asarray(width)), np.asarray(height))
    return np.where(
        size >= LARGE_MIN_M, "large", np.where(size >= REGULAR_MIN_M, "regular", "small")
    )
