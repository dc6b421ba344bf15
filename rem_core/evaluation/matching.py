"""One per-frame box matcher: the boxes of two tables, frame by frame, matched by IoU.

Box convention (as Waymo, see ``rem_core.geometry.boxes``): ``center_x, center_y, center_z, length,
width, height, heading`` in the vehicle frame, metres and radians.

Boxes are compared only within a frame (equal ``segment_id, frame_index``, or any other key
columns): :func:`frame_keys` numbers the frames of several tables consistently, and
``rem_core.geometry.iou_within_keys`` gives every overlapping pair of a frame with its IoU (the
sparse per-frame IoU matrix). Each row of ``a`` then gets at most one row of ``b``, by one of
three rules (``MATCH_RULES``); a match always needs IoU ``> 0`` and ``>= min_iou``:

* ``"optimal"``: one-to-one, the assignment of largest total IoU in each frame (Hungarian,
  ``scipy.optimize.linear_sum_assignment``); the ensemble's scores (paper eq. 9) use it.
* ``"greedy"``: one-to-one, rows of ``a`` in descending score order (ties: row order) each
  take the still unmatched row of ``b`` of highest IoU (ties: the first row); KITTI's
  score-first matching of AP evaluation. A row's match never depends on lower-scored rows.
* ``"best"``: each row of ``a`` takes the row of ``b`` of highest IoU (ties: the first row),
  rows of ``b`` may be taken more than once; the mining oracles' and the simulated
  labeller's overlap.

:func:`match_frames` matches two tables; :func:`match_boxes` the same on arrays and frame
keys already computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.errors import InputError
from rem_core.geometry import IoUKind, as_boxes, bev_iou, iou_3d, iou_within_keys
from rem_core.schema import BOX_COLUMNS, SchemaError

__all__ = [
    "FRAME_COLUMNS",
    "MATCH_RULES",
    "BoxMatch",
    "MatchRule",
    "frame_keys",
    "match_boxes",
    "match_frames",
]

#: The columns that name a frame.
FRAME_COLUMNS = ("segment_id", "frame_index")

MatchRule = Literal["optimal", "greedy", "best"]
MATCH_RULES: tuple[MatchRule, ...] = ("optimal", "greedy", "best")

# IoUs this close may differ between two computations of the same pair (see ``_optimal``).
_LAST_BITS = 1e-9


@dataclass(frozen=True, eq=False)
class BoxMatch:
    """What :func:`match_boxes` found, in row positions of its inputs ``a`` (N) and ``b``.

    Attributes:
        match: ``(N,)`` int64 row of ``b`` matched to each row of ``a``, -1 if none.
        iou: ``(N,)`` float64 IoU of that match, 0 if none (the ``"optimal"`` rule may report
            a frame's IoU recomputed for its solver, equal to ``pair_iou`` to ~1e-15).
        pair_a: ``(K,)`` int64 rows of ``a`` of every overlapping pair of a frame (IoU > 0),
            sorted by ``pair_a`` then ``pair_b``.
        pair_b: ``(K,)`` int64 their rows of ``b``.
        pair_iou: ``(K,)`` float64 their IoU, in (0, 1].
    """

    match: np.ndarray
    iou: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_iou: np.ndarray


def frame_keys(*tables: pd.DataFrame, by: Sequence[str] = FRAME_COLUMNS) -> list[np.ndarray]:
    """Integer frame keys of the rows of several tables, equal where the ``by`` values are.

    Args:
        tables: tables with the ``by`` columns.
        by: the columns naming a group (a missing value is a value of its own).

    Returns:
        One ``(len(table),)`` int64 array per table, keys ``0..G-1`` for the ``G`` groups.

    Example:
        >>> a = pd.DataFrame({"segment_id": ["s", "s", "t"], "frame_index": [0, 1, 0]})
        >>> [k.tolist() for k in frame_keys(a, a.iloc[::-1])]
        [[0, 1, 2], [2, 1, 0]]
    """
    lengths = [len(t) for t in tables]
    total = sum(lengths)
    keys, n_keys = np.zeros(total, np.int64), 1
    for column in by:
        values = pd.concat([t[column] for t in tables], ignore_index=True)
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        keys, n_keys = keys * len(uniques) + codes, n_keys * len(uniques)
        if n_keys > 4 * total + 1024:  # renumber before the key space grows too large
            keys, uniques = pd.factorize(keys)
            n_keys = len(uniques)
    used = np.zeros(n_keys, bool)
    used[keys] = True
    keys = (np.cumsum(used) - 1)[keys]
    return np.split(keys, np.cumsum(lengths)[:-1])


def match_frames(
    a: pd.DataFrame,
    b: pd.DataFrame,
    rule: MatchRule,
    *,
    min_iou: float = 0.0,
    iou: IoUKind = "bev",
    score: str = "score",
    by: Sequence[str] = FRAME_COLUMNS,
) -> BoxMatch:
    """Match the rows of ``a`` to those of ``b`` in the same frame (see the module docstring).

    Args:
        a: a table with the ``by`` columns and the box columns (vehicle frame, metres,
            radians); for ``"greedy"``, also ``score``.
        b: a table with the same columns (``score`` not needed).
        rule: ``"optimal"``, ``"greedy"`` or ``"best"``.
        min_iou: the lowest IoU of a match.
        iou: ``"bev"`` or ``"3d"``.
        score: the column of ``a`` that ``"greedy"`` ranks by, higher first.
        by: the columns naming a frame.

    Returns:
        A :class:`BoxMatch` in row positions of ``a`` and ``b`` (not their index labels).

    Raises:
        SchemaError: a non-empty table lacks a column.

    Example:
        >>> a = pd.DataFrame({"segment_id": "s", "frame_index": [0, 0, 1],
        ...     **{c: [0.0, 9.0, 0.0] for c in ("center_x", "center_y", "center_z")},
        ...     "length": 4.0, "width": 2.0, "height": 1.5, "heading": 0.0})
        >>> match_frames(a, a.iloc[[2, 0]], "best").match  # rows of b: frame 1, then 0
        array([ 1, -1,  0])
    """
    _check_rule(rule)
    if len(a) == 0 or len(b) == 0:
        # Nothing to compare: no columns are needed (an empty table may have none).
        none = np.zeros(0, np.int64)
        return BoxMatch(*_unmatched(len(a)), pair_a=none, pair_b=none, pair_iou=np.zeros(0))
    for name, table, extra in (("a", a, [score] if rule == "greedy" else []), ("b", b, [])):
        missing = [c for c in (*by, *BOX_COLUMNS, *extra) if c not in table.columns]
        if missing:
            raise SchemaError(f"{name}: missing column(s) {', '.join(missing)}")
    key_a, key_b = frame_keys(a, b, by=by)
    return match_boxes(
        a[BOX_COLUMNS].to_numpy(np.float64),
        b[BOX_COLUMNS].to_numpy(np.float64),
        key_a,
        key_b,
        rule,
        min_iou=min_iou,
        iou=iou,
        scores=a[score].to_numpy(np.float64) if rule == "greedy" else None,
    )


def match_boxes(
    a: ArrayLike,
    b: ArrayLike,
    key_a: ArrayLike,
    key_b: ArrayLike,
    rule: MatchRule,
    *,
    min_iou: float = 0.0,
    iou: IoUKind = "bev",
    scores: ArrayLike | None = None,
) -> BoxMatch:
    """Match boxes of ``a`` to boxes of ``b`` with the same key (see the module docstring).

    Args:
        a: ``(N, 7)`` boxes.
        b: ``(M, 7)`` boxes in the same frame of reference.
        key_a: ``(N,)`` non-negative int frame key of each box of ``a`` (``frame_keys``).
        key_b: ``(M,)`` frame key of each box of ``b``; only equal keys are compared.
        rule: ``"optimal"``, ``"greedy"`` or ``"best"``.
        min_iou: the lowest IoU of a match.
        iou: ``"bev"`` or ``"3d"``.
        scores: ``(N,)`` scores of ``a``, higher first; needed by ``"greedy"`` only.

    Returns:
        A :class:`BoxMatch`.

    Example:
        >>> a = np.array([[0.0, 0, 0, 4, 2, 1, 0], [0.5, 0, 0, 4, 2, 1, 0]])
        >>> b = a[[0]]
        >>> m = match_boxes(a, b, [0, 0], [0], "greedy", scores=[0.2, 0.9])
        >>> m.match.tolist(), m.iou.round(3).tolist()  # the higher score takes the box
        ([-1, 0], [0.0, 0.778])
        >>> match_boxes(a, b, [0, 0], [0], "best").match.tolist()  # shared
        [0, 0]
    """
    _check_rule(rule)
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    key_a, key_b = np.asarray(key_a, dtype=np.int64), np.asarray(key_b, dtype=np.int64)
    i, j, v = iou_within_keys(a, b, key_a, key_b, iou)
    n_a, n_b = len(key_a), len(key_b)
    ok = v >= min_iou
    if rule == "best":
        match, match_iou = _best(i[ok], j[ok], v[ok], n_a)
    elif rule == "optimal":
        match, match_iou = _optimal(a, b, key_a, key_b, (i, j, v), min_iou, iou)
    else:
        if scores is None:
            raise InputError("scores: the greedy rule ranks by score; give one per box of a")
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n_a,):
            raise InputError(f"scores: expected shape ({n_a},), got {s.shape}")
        match, match_iou = _greedy(key_a, s, i[ok], j[ok], v[ok], n_b)
    return BoxMatch(match=match, iou=match_iou, pair_a=i, pair_b=j, pair_iou=v)


def _check_rule(rule: str) -> None:
    if rule not in MATCH_RULES:
        raise InputError(f"rule: expected one of {', '.join(MATCH_RULES)}, got {rule!r}")


def _unmatched(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, -1, np.int64), np.zeros(n)


def _best(i: np.ndarray, j: np.ndarray, v: np.ndarray, n_a: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``a``: its pair of highest IoU (ties: lowest row of ``b``)."""
    match, match_iou = _unmatched(n_a)
    # Per row of a, the best pair sorts last, so a plain assignment keeps it.
    order = np.lexsort((-j, v, i))
    match[i[order]] = j[order]
    match_iou[i[order]] = v[order]
    return match, match_iou


def _greedy(
    key_a: np.ndarray, scores: np.ndarray, i: np.ndarray, j: np.ndarray, v: np.ndarray, n_b: int
) -> tuple[np.ndarray, np.ndarray]:
    """Score-first greedy matching, all frames at once.

    Step ``r`` handles the ``r``-th best row of ``a`` of every frame together: frames share
    no boxes, so the only sequential dependency is within a frame.
    """
    n_a = len(key_a)
    match, match_iou = _unmatched(n_a)
    if not len(i):
        return match, match_iou
    order = np.lexsort((np.arange(n_a), -scores, key_a))
    sorted_key = key_a[order]
    first = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    rank = np.empty(n_a, np.int64)
    rank[order] = np.arange(n_a) - np.repeat(first, np.diff(np.r_[first, n_a]))
    r = rank[i]
    # Within a step: by row of a, then highest IoU, then lowest row of b.
    o = np.lexsort((j, -v, i, r))
    i, j, v, r = i[o], j[o], v[o], r[o]
    taken = np.zeros(n_b, bool)
    bounds = np.r_[0, np.flatnonzero(r[1:] != r[:-1]) + 1, len(r)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        free = ~taken[j[lo:hi]]
        ii, jj, vv = i[lo:hi][free], j[lo:hi][free], v[lo:hi][free]
        if not len(ii):
            continue
        head = np.r_[True, ii[1:] != ii[:-1]]
        match[ii[head]] = jj[head]
        match_iou[ii[head]] = vv[head]
        taken[jj[head]] = True
    return match, match_iou


def _optimal(
    a: np.ndarray,
    b: np.ndarray,
    key_a: np.ndarray,
    key_b: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    min_iou: float,
    kind: IoUKind,
) -> tuple[np.ndarray, np.ndarray]:
    """The per-frame assignment of largest total IoU, pairs below ``min_iou`` excluded.

    Where a frame's pairs of IoU >= ``min_iou`` share no box, every optimal assignment takes
    all of them (dropping one loses its IoU and frees nothing another pair could use), so
    no solver runs: most frames. The others are solved one by one, each on its own dense IoU
    matrix, rows and columns in row order (the IoU reported for their matches is that
    matrix's, which can differ from ``pairs`` in the last bit).
    """
    i, j, v = pairs
    # A frame's IoU matrix computed alone can differ from the batched pairs in the last bit
    # (``iou``'s shoelace sum depends on the widest polygon of its block); pairs that close
    # to ``min_iou`` send their frame to the solver, which near-ties could also sway.
    near = np.abs(v - min_iou) <= _LAST_BITS
    keep = v >= min_iou - _LAST_BITS
    i, j, v, near = i[keep], j[keep], v[keep], near[keep]
    shared = (np.bincount(i, minlength=len(a))[i] > 1) | (np.bincount(j, minlength=len(b))[j] > 1)
    solve = np.isin(key_a[i], key_a[i[shared | near]])
    match, match_iou = _unmatched(len(a))
    match[i[~solve]], match_iou[i[~solve]] = j[~solve], v[~solve]
    frames = np.unique(key_a[i[solve]])
    if not len(frames):
        return match, match_iou
    from scipy.optimize import linear_sum_assignment

    dense = bev_iou if kind == "bev" else iou_3d
    rows_a, rows_b = _Rows(key_a), _Rows(key_b)
    for frame in frames:
        ra, rb = rows_a.of(frame), rows_b.of(frame)
        matrix = dense(a[ra], b[rb])
        r, c = linear_sum_assignment(np.where(matrix >= min_iou, -matrix, 0.0))
        ok = (matrix[r, c] >= min_iou) & (matrix[r, c] > 0)
        match[ra[r[ok]]] = rb[c[ok]]
        match_iou[ra[r[ok]]] = matrix[r[ok], c[ok]]
    return match, match_iou


class _Rows:
    """Rows grouped by an integer key: ``of(k)`` gives the rows of key ``k`` in row order."""

    def __init__(self, keys: np.ndarray) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.start = np.r_[0, np.cumsum(np.bincount(keys))]

    def of(self, key: int) -> np.ndarray:
        return self.order[self.start[key] : self.start[key + 1]]
