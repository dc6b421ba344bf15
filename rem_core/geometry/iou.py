"""Rotated-box IoU in bird's-eye view and in 3D, vectorised over all pairs.

Box convention (as Waymo, see ``rem_core.geometry.boxes``): an ``(N, 7)`` float array of
``center_x, center_y, center_z, length, width, height, heading`` in the vehicle frame,
metres and radians; geometric centre, ``length`` along the heading, heading in [-pi, pi).

``bev_iou`` is the IoU of the rotated rectangles; ``iou_3d`` that of the upright boxes:
BEV intersection area x vertical overlap / union volume. Each pair is clipped in the first
box's frame (Sutherland-Hodgman against the 4 half-planes of the other box, shoelace area)
after a cheap prefilter, in blocks so memory stays bounded for any N x M.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from rem_core.errors import InputError
from rem_core.geometry.boxes import as_boxes, bev_corners

__all__ = [
    "IoUKind",
    "bev_iou",
    "bev_iou_pairs",
    "bev_iou_within_keys",
    "iou_3d",
    "iou_3d_pairs",
    "iou_within_keys",
]

IoUKind = Literal["3d", "bev"]

# Pairs examined per block (prefilter) and clipped per block: memory stays near 100 MB
# for any N x M.
_PAIR_BLOCK = 1 << 20
_CLIP_BLOCK = 1 << 14


def _clip_area(x: np.ndarray, y: np.ndarray, hl: np.ndarray, hw: np.ndarray) -> np.ndarray:
    """Area of convex polygons clipped by centred axis-aligned rectangles (Sutherland-Hodgman).

    Polygons are padded arrays: row ``k`` holds ``n_k`` vertices counter-clockwise, then
    copies of its last vertex, so the cyclic predecessor of slot 0 is the last vertex and
    the shoelace sum needs no mask (the copies add zero-length edges).

    Args:
        x: ``(K, 4)`` x of the subject quadrilaterals' corners, counter-clockwise, metres,
            in the frame of the clip rectangle.
        y: ``(K, 4)`` their y.
        hl: ``(K,)`` half extent of the clip rectangle along x, metres.
        hw: ``(K,)`` half extent along y.

    Returns:
        ``(K,)`` float64 intersection areas, m^2.
    """
    k = len(x)
    rows = np.arange(k)
    n = np.full(k, x.shape[1])
    # The rectangle's four half-planes: h + sign * coordinate >= 0.
    for use_x, sign in ((True, -1.0), (True, 1.0), (False, -1.0), (False, 1.0)):
        width = x.shape[1]
        if width == 0:
            break
        s = (hl if use_x else hw)[:, None] + sign * (x if use_x else y)
        valid = np.arange(width)[None, :] < n[:, None]
        s_prev = np.concatenate([s[:, -1:], s[:, :-1]], axis=1)
        x_prev = np.concatenate([x[:, -1:], x[:, :-1]], axis=1)
        y_prev = np.concatenate([y[:, -1:], y[:, :-1]], axis=1)
        inside = s >= 0
        crossing = (inside != (s_prev >= 0)) & valid
        # Where the signs differ, s_prev - s is nonzero; elsewhere t is unused.
        t = s_prev / np.where(crossing, s_prev - s, 1.0)
        # Each vertex emits [the edge's crossing into it, itself if inside], in order.
        keep = np.stack([crossing, inside & valid], axis=2).reshape(k, 2 * width)
        cand_x = np.stack([x_prev + t * (x - x_prev), x], axis=2).reshape(k, 2 * width)
        cand_y = np.stack([y_prev + t * (y - y_prev), y], axis=2).reshape(k, 2 * width)
        n = keep.sum(axis=1)
        new_width = int(n.max(initial=0))
        last = 2 * width - 1 - np.argmax(keep[:, ::-1], axis=1)
        x = np.repeat(cand_x[rows, last][:, None], new_width, axis=1)
        y = np.repeat(cand_y[rows, last][:, None], new_width, axis=1)
        r, col = np.nonzero(keep)[0], (np.cumsum(keep, axis=1) - 1)[keep]
        x[r, col] = cand_x[keep]
        y[r, col] = cand_y[keep]
    if x.shape[1] < 3:
        return np.zeros(k)
    x_next = np.concatenate([x[:, 1:], x[:, :1]], axis=1)
    y_next = np.concatenate([y[:, 1:], y[:, :1]], axis=1)
    return np.maximum(0.5 * (x * y_next - x_next * y).sum(axis=1), 0.0)


def _bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(K,)`` BEV intersection areas (m^2) of paired ``(K, 7)`` boxes, in blocks.

    Each ``b`` box is clipped by the four half-planes of its ``a`` box, in ``a``'s frame.
    """
    out = np.empty(len(a))
    for lo in range(0, len(a), _CLIP_BLOCK):
        sa, sb = a[lo : lo + _CLIP_BLOCK], b[lo : lo + _CLIP_BLOCK]
        cos, sin = np.cos(sa[:, 6]), np.sin(sa[:, 6])
        dx, dy = sb[:, 0] - sa[:, 0], sb[:, 1] - sa[:, 1]
        local = np.column_stack(
            [cos * dx + sin * dy, cos * dy - sin * dx, sb[:, 3], sb[:, 4], sb[:, 6] - sa[:, 6]]
        )
        corners = bev_corners(local)
        area = _clip_area(
            np.ascontiguousarray(corners[..., 0]),
            np.ascontiguousarray(corners[..., 1]),
            sa[:, 3] / 2,
            sa[:, 4] / 2,
        )
        out[lo : lo + _CLIP_BLOCK] = np.minimum(
            area, np.minimum(sa[:, 3] * sa[:, 4], sb[:, 3] * sb[:, 4])
        )
    return out


def _paired_iou(a: np.ndarray, b: np.ndarray, kind: IoUKind) -> np.ndarray:
    """IoU of paired boxes already known to be candidates (no prefilter)."""
    inter = _bev_intersection(a, b)
    if kind == "3d":
        top = np.minimum(a[:, 2] + a[:, 5] / 2, b[:, 2] + b[:, 5] / 2)
        bottom = np.maximum(a[:, 2] - a[:, 5] / 2, b[:, 2] - b[:, 5] / 2)
        inter = inter * np.maximum(top - bottom, 0.0)
        size_a, size_b = a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5]
    else:
        size_a, size_b = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
    union = size_a + size_b - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.clip(iou, 0.0, 1.0)


class _Reach:
    """Per-box bounds used to skip pairs that cannot overlap: circle, AABB, z extent."""

    def __init__(self, boxes: np.ndarray) -> None:
        hl, hw = boxes[:, 3] / 2, boxes[:, 4] / 2
        c, s = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
        self.x, self.y = boxes[:, 0], boxes[:, 1]
        self.radius = np.hypot(hl, hw)
        self.ex, self.ey = c * hl + s * hw, s * hl + c * hw
        self.z_lo, self.z_hi = boxes[:, 2] - boxes[:, 5] / 2, boxes[:, 2] + boxes[:, 5] / 2


def _may_overlap(
    ra: _Reach, rb: _Reach, ia: np.ndarray, ib: np.ndarray, kind: IoUKind
) -> np.ndarray:
    """``(K,)`` bool: pairs ``(ia[k], ib[k])`` whose AABBs, circles (and z extents) overlap."""
    # Tests narrow the candidates one after another: most scene pairs fail the first.
    idx = np.flatnonzero(np.abs(ra.x[ia] - rb.x[ib]) < ra.ex[ia] + rb.ex[ib])
    ja, jb = ia[idx], ib[idx]
    dy = ra.y[ja] - rb.y[jb]
    near = np.abs(dy) < ra.ey[ja] + rb.ey[jb]
    dx = ra.x[ja] - rb.x[jb]
    near &= dx * dx + dy * dy < (ra.radius[ja] + rb.radius[jb]) ** 2
    if kind == "3d":
        near &= np.minimum(ra.z_hi[ja], rb.z_hi[jb]) > np.maximum(ra.z_lo[ja], rb.z_lo[jb])
    keep = np.zeros(len(ia), bool)
    keep[idx[near]] = True
    return keep


def _pairs_within_keys(
    key_a: np.ndarray, key_b: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every ``(i, j)`` with ``key_a[i] == key_b[j]``, in blocks of about ``_PAIR_BLOCK``."""
    if len(key_a) == 0 or len(key_b) == 0:
        return
    n_keys = int(max(key_a.max(), key_b.max())) + 1
    order_b = np.argsort(key_b, kind="stable")
    count_b = np.bincount(key_b, minlength=n_keys)
    start_b = np.cumsum(count_b) - count_b
    per_a = count_b[key_a]
    cum = np.concatenate([[0], np.cumsum(per_a)])
    lo = 0
    while lo < len(key_a):
        hi = max(int(np.searchsorted(cum, cum[lo] + _PAIR_BLOCK, side="right")) - 1, lo + 1)
        ia = np.arange(lo, hi)
        reps = per_a[ia]
        total = int(reps.sum())
        if total:
            offset = np.arange(total) - np.repeat(cum[ia] - cum[lo], reps)
            yield np.repeat(ia, reps), order_b[np.repeat(start_b[key_a[ia]], reps) + offset]
        lo = hi


def _sparse_iou(
    a: np.ndarray, b: np.ndarray, key_a: np.ndarray, key_b: np.ndarray, kind: IoUKind
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j, iou)`` with ``iou > 0`` among boxes that share a key."""
    ra, rb = _Reach(a), _Reach(b)
    out_i, out_j, out_v = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0)]
    for ia, ib in _pairs_within_keys(key_a, key_b):
        keep = _may_overlap(ra, rb, ia, ib, kind)
        ia, ib = ia[keep], ib[keep]
        iou = _paired_iou(a[ia], b[ib], kind)
        hit = iou > 0
        out_i.append(ia[hit])
        out_j.append(ib[hit])
        out_v.append(iou[hit])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_v)


def _dense_iou(a: ArrayLike, b: ArrayLike, kind: IoUKind) -> np.ndarray:
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    i, j, v = _sparse_iou(a, b, np.zeros(len(a), np.int64), np.zeros(len(b), np.int64), kind)
    out = np.zeros((len(a), len(b)))
    out[i, j] = v
    return out


def _pairs_iou(a: ArrayLike, b: ArrayLike, kind: IoUKind) -> np.ndarray:
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    if a.shape != b.shape:
        raise InputError(f"a and b must pair up row by row, got {a.shape} and {b.shape}")
    idx = np.arange(len(a))
    keep = _may_overlap(_Reach(a), _Reach(b), idx, idx, kind)
    out = np.zeros(len(a))
    out[keep] = _paired_iou(a[keep], b[keep], kind)
    return out


def bev_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Bird's-eye-view IoU of every box in ``a`` with every box in ``b``.

    Rotated rectangles are intersected by Sutherland-Hodgman clipping, vectorised over
    pairs; pairs whose bounding circles or axis-aligned boxes do not overlap are skipped,
    and pairs are processed in blocks, so memory stays bounded for thousands of boxes.

    Args:
        a: ``(N, 7)`` boxes, see the module docstring (z and height are ignored).
        b: ``(M, 7)`` boxes in the same frame.

    Returns:
        ``(N, M)`` float64 IoU in [0, 1].

    Example:
        >>> a = np.array([[0.0, 0, 0, 1, 1, 1, 0]])
        >>> b = np.array([[0.5, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1, np.pi / 2]])
        >>> bev_iou(a, b).round(4)
        array([[0.3333, 1.    ]])
    """
    return _dense_iou(a, b, "bev")


def bev_iou_pairs(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Bird's-eye-view IoU of ``a[k]`` with ``b[k]``.

    Args:
        a: ``(K, 7)`` boxes.
        b: ``(K, 7)`` boxes, paired row by row with ``a``.

    Returns:
        ``(K,)`` float64 IoU in [0, 1].
    """
    return _pairs_iou(a, b, "bev")


def iou_within_keys(
    a: ArrayLike, b: ArrayLike, key_a: ArrayLike, key_b: ArrayLike, kind: IoUKind = "bev"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every overlapping pair of boxes that share a key (e.g. the same frame), with its IoU.

    The sparse form of a per-frame IoU matrix: only boxes with equal keys are compared, and
    only pairs that overlap are returned.

    Args:
        a: ``(N, 7)`` boxes.
        b: ``(M, 7)`` boxes.
        key_a: ``(N,)`` non-negative integer key of each box of ``a``.
        key_b: ``(M,)`` key of each box of ``b``; only equal keys are compared.
        kind: ``"bev"`` (rotated rectangles) or ``"3d"`` (upright boxes).

    Returns:
        ``(i, j, iou)``: ``(K,)`` int64 rows of ``a`` and ``b`` and their ``(K,)`` float64
        IoU, for every pair with equal keys and IoU > 0, sorted by ``i`` then ``j``.

    Example:
        >>> a = np.array([[0.0, 0, 0, 2, 2, 1, 0], [0.0, 0, 0, 2, 2, 1, 0]])
        >>> i, j, v = iou_within_keys(a, a, [0, 1], [1, 1])  # row 0 has no partner
        >>> i.tolist(), j.tolist(), v.tolist()
        ([1, 1], [0, 1], [1.0, 1.0])
    """
    if kind not in ("3d", "bev"):
        raise InputError(f"kind: expected '3d' or 'bev', got {kind!r}")
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    key_a = np.asarray(key_a, dtype=np.int64)
    key_b = np.asarray(key_b, dtype=np.int64)
    if key_a.shape != (len(a),) or key_b.shape != (len(b),):
        raise InputError(
            f"keys: expected shapes ({len(a)},) and ({len(b)},), got {key_a.shape} and "
            f"{key_b.shape}"
        )
    if (len(key_a) and key_a.min() < 0) or (len(key_b) and key_b.min() < 0):
        raise InputError("keys: must be >= 0")
    return _sparse_iou(a, b, key_a, key_b, kind)


def bev_iou_within_keys(
    a: ArrayLike, b: ArrayLike, key_a: ArrayLike, key_b: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``iou_within_keys`` in bird's-eye view: ``(i, j, iou)`` of overlapping same-key pairs."""
    return iou_within_keys(a, b, key_a, key_b, "bev")


def iou_3d(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """3D IoU of upright boxes: BEV intersection area x vertical overlap / union volume.

    Args:
        a: ``(N, 7)`` boxes, see the module docstring.
        b: ``(M, 7)`` boxes in the same frame.

    Returns:
        ``(N, M)`` float64 IoU in [0, 1].

    Example:
        >>> a = np.array([[0.0, 0, 1, 4, 2, 2, 0]])
        >>> iou_3d(a, a + [0, 0, 1, 0, 0, 0, 0]).round(4)  # half the height shared
        array([[0.3333]])
    """
    return _dense_iou(a, b, "3d")


def iou_3d_pairs(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """3D IoU of ``a[k]`` with ``b[k]``: ``(K, 7)`` boxes each, ``(K,)`` float64 out."""
    return _pairs_iou(a, b, "3d")
