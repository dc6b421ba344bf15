"""Track-level mining under a budget: Algorithm 1 of the paper, exactly, and fast.

Input: the unlabelled pool's detections with a rareness each (higher: rarer), the pool's
ground truth kept aside (it plays the human labeller), auto-labelled tracks ``S_a`` and a
budget of ``K`` tracks.

1. Sort the detections by descending rareness (ties: input row order; ``-inf`` last).
2. Pop the rarest remaining detection ``b`` and have it checked: the labeller finds an
   object when a ground-truth box of ``b``'s frame overlaps ``b`` with BEV IoU above
   ``check_iou`` (the best-overlapping box if several). A check that finds nothing (a false
   positive) yields no track and, if ``fp_costs_budget``, uses one unit of the budget.
3. When the check finds the box of track ``T``, the whole track ``T`` (every frame) is
   labelled and joins ``S_h``; every remaining detection that intersects ``T`` (BEV IoU > 0
   with ``T``'s box in the detection's frame; ``b`` itself included) is discarded.
4. Repeat until ``|S_h| = K``, the budget is spent, or no detection is left.
5. Merge: ``S = S_h + (S_a - {auto-labelled tracks that intersect S_h})``
   (``rem_core.mining.merge_labels``).

:func:`select_tracks` is the fast implementation: it never computes the full overlap
relation of the pool. Detections are walked in blocks in rareness order; one vectorised
pass finds the best ground-truth box of every detection of a block that is still in play
(candidates from a per-frame index, exact IoU only for pairs whose bounds overlap), another
finds every detection intersecting each track hit in the block; the greedy bookkeeping
over the block is then a short Python loop over the block's hits and misses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.errors import InputError
from rem_core.evaluation import frame_keys
from rem_core.geometry import bev_iou_pairs, expand_ranges
from rem_core.schema import BOX_COLUMNS, SchemaError

__all__ = ["MiningResult", "resolve_budget", "select_tracks"]

# Detections examined per vectorised pass: large enough to amortise numpy's per-call cost,
# small enough that little work is wasted past the last mined track.
_BLOCK = 512


@dataclass(frozen=True)
class MiningResult:
    """What Algorithm 1 mined.

    Attributes:
        tracks: one row per mined ground-truth track, in mining order: ``rank`` (1-based),
            ``segment_id``, ``track_id``, ``detection`` (row of the detection whose check
            found it), ``rareness`` (that detection's rareness).
        checked: ``(C,)`` int64 rows of every popped detection, in pop order.
        hit: ``(C,)`` bool, whether each check found a track.
        discarded: ``(N,)`` bool per input detection: popped or discarded when mining stopped.
        budget: tracks asked for.
        spent: budget units used (tracks found, plus false positives when they cost).
        discarded_at: ``(N,)`` int64 per input detection: the check (position in
            ``checked``) that popped or discarded it, -1 if none.
    """

    tracks: pd.DataFrame
    checked: np.ndarray
    hit: np.ndarray
    discarded: np.ndarray
    budget: int
    spent: int
    discarded_at: np.ndarray | None = None

    @property
    def false_positives(self) -> int:
        """Checks that found no object."""
        return int(np.count_nonzero(~self.hit))


def resolve_budget(budget: int | float | str, num_tracks: int) -> int:
    """A budget in tracks, from a count (``1500``, ``"1500"``) or a share (``"3%"``).

    A share rounds to the nearest track of ``num_tracks``. A fraction such as ``0.03`` is
    refused: write ``"3%"``.

    Raises:
        ValueError: naming the value, when it is negative, not whole, or not understood.
    """
    if isinstance(budget, bool):
        raise InputError(f"budget: expected a count or a share like '3%', got {budget!r}")
    if isinstance(budget, str):
        text = budget.strip()
        share = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", text)
        if share:
            pct = float(share.group(1))
            if pct > 100:
                raise InputError(f"budget: a share must be at most 100%, got {budget!r}")
            return int(round(pct / 100 * num_tracks))
        if re.fullmatch(r"\d+", text):
            return int(text)
        raise InputError(f"budget: expected a count or a share like '3%', got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise InputError(f"budget: must be >= 0, got {budget}")
        return int(budget)
    if isinstance(budget, float) and budget.is_integer() and budget >= 0:
        return int(budget)
    raise InputError(
        f"budget: expected a whole count or a share like '3%', got {budget!r} "
        "(for a fraction of the pool write e.g. '3%')"
    )


def _require(table: pd.DataFrame, columns: list[str], name: str) -> None:
    for column in columns:
        if column not in table.columns:
            raise SchemaError(f"{name}: missing column {column!r}")


def _order_prefix(r: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first rows of the descending, stable order of ``r``, and the rest unsorted.

    Sorting the whole pool costs more than mining a budget of a few thousand tracks: only a
    prefix holding at least ``size`` rows (all rows tied with its last value included, so
    it is exactly the start of the full order) is sorted now.
    """
    n = len(r)
    if size >= n:
        return np.argsort(-r, kind="stable"), np.zeros(0, np.int64)
    cut = r[np.argpartition(-r, size - 1)[size - 1]]
    head = np.flatnonzero(r >= cut)
    head = head[np.lexsort((head, -r[head]))]
    return head, np.flatnonzero(r < cut)


class _Index:
    """Rows grouped by an integer key (CSR): ``rows_of(keys)`` gives every row of those keys."""

    def __init__(self, keys: np.ndarray, n_keys: int) -> None:
        self.order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=n_keys)
        self.start = np.concatenate([[0], np.cumsum(counts)])

    def rows_of(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, row)``: for each key position ``k``, every row with key ``keys[k]``."""
        lo, hi = self.start[keys], self.start[keys + 1]
        owner, pos = expand_ranges(lo, hi - lo)
        return owner, self.order[pos]


def _overlap_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return bev_iou_pairs(a, b) if len(a) else np.zeros(0)


@dataclass
class _Pool:
    """The pool indexed for mining: boxes as arrays, track codes and per-frame row indexes.

    Attributes:
        det_key, gt_key: frame code of each detection and ground-truth row.
        det_boxes, gt_boxes: the box columns as float64 arrays.
        n_tids: distinct track ids; a track's code is ``segment code * n_tids + track id code``.
        track_of_row: ``(G,)`` int64 track code of each ground-truth row.
        by_frame_det, by_frame_gt: detection and ground-truth rows by frame code.
        by_segment_gt: ground-truth rows by segment code.
    """

    det_key: np.ndarray
    gt_key: np.ndarray
    det_boxes: np.ndarray
    gt_boxes: np.ndarray
    n_tids: int
    track_of_row: np.ndarray
    by_frame_det: _Index
    by_frame_gt: _Index
    by_segment_gt: _Index


@dataclass
class _Greedy:
    """The greedy walk's bookkeeping, updated block by block.

    Attributes:
        discarded, discarded_at: as :class:`MiningResult`'s.
        n_checked: checks made so far.
        checked, hits: per block, the rows checked and whether each check found a track.
        mined_tracks: the track code of each mined track, in mining order.
        mined_by: the row of the detection whose check found each mined track.
        spent: budget units used.
    """

    discarded: np.ndarray
    discarded_at: np.ndarray
    n_checked: int = 0
    checked: list[np.ndarray] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)
    mined_tracks: list[int] = field(default_factory=list)
    mined_by: list[int] = field(default_factory=list)
    spent: int = 0


def select_tracks(
    detections: pd.DataFrame,
    rareness: ArrayLike,
    gt: pd.DataFrame,
    budget: int,
    *,
    check_iou: float = 0.0,
    fp_costs_budget: bool = False,
) -> MiningResult:
    """Mine up to ``budget`` ground-truth tracks in rareness order (Algorithm 1, steps 1-4).

    Args:
        detections: the pool's detections: ``segment_id, frame_index`` and the box columns
            (vehicle frame, metres, radians).
        rareness: ``(N,)`` rareness per detection, higher first; ``-inf`` ranks last.
        gt: the pool's ground truth (the simulated labeller): ``segment_id, frame_index,
            track_id`` and the box columns.
        budget: tracks to label, ``>= 0``.
        check_iou: a check finds a ground-truth box when their BEV IoU is above this.
        fp_costs_budget: a check that finds nothing uses one unit of the budget.

    Returns:
        The mined tracks, the checks and the discards.
    """
    r, budget = _checked_inputs(detections, rareness, gt, budget)
    n = len(detections)
    state = _Greedy(discarded=np.zeros(n, bool), discarded_at=np.full(n, -1, np.int64))
    track_of_row = np.zeros(0, np.int64)
    if budget > 0 and n > 0 and len(gt):
        pool = _index_pool(detections, gt)
        track_of_row = pool.track_of_row
        for block in _blocks_in_order(r, budget):
            block = block[~state.discarded[block]]
            if not len(block):
                continue
            found = _found_tracks(pool, block, check_iou)
            members = _track_members(pool, np.unique(found[found >= 0]))
            _check_block(state, block, found, members, budget, fp_costs_budget)
            if state.spent >= budget:
                break
    return MiningResult(
        tracks=_tracks_table(gt, track_of_row, state, r),
        checked=np.concatenate(state.checked) if state.checked else np.zeros(0, np.int64),
        hit=np.concatenate(state.hits) if state.hits else np.zeros(0, bool),
        discarded=state.discarded,
        budget=budget,
        spent=int(state.spent),
        discarded_at=state.discarded_at,
    )


def _checked_inputs(
    detections: pd.DataFrame, rareness: ArrayLike, gt: pd.DataFrame, budget: int
) -> tuple[np.ndarray, int]:
    """The rareness as float64 and the budget as an int, after checking every input."""
    _require(detections, ["segment_id", "frame_index", *BOX_COLUMNS], "detections")
    _require(gt, ["segment_id", "frame_index", "track_id", *BOX_COLUMNS], "ground truth")
    r = np.asarray(rareness, dtype=np.float64)
    if r.shape != (len(detections),):
        raise InputError(
            f"rareness: {r.size} values for {len(detections)} detections; one per detection"
        )
    if np.isnan(r).any():
        raise InputError(f"rareness: {int(np.isnan(r).sum())} values are NaN")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise InputError(f"budget: must be a count >= 0, got {budget!r}")
    return r, int(budget)


def _index_pool(detections: pd.DataFrame, gt: pd.DataFrame) -> _Pool:
    """Frame and segment codes, box arrays, track codes and row indexes of the pool."""
    det_key, gt_key = frame_keys(detections, gt)
    (gt_seg,) = frame_keys(gt, by=["segment_id"])
    n_keys = int(max(det_key.max(), gt_key.max())) + 1
    # A track is a (segment, track id) pair: one int64 code, never densified.
    tid, tids = pd.factorize(gt["track_id"])
    n_tids = max(len(tids), 1)
    return _Pool(
        det_key=det_key,
        gt_key=gt_key,
        det_boxes=detections[BOX_COLUMNS].to_numpy(np.float64),
        gt_boxes=gt[BOX_COLUMNS].to_numpy(np.float64),
        n_tids=n_tids,
        track_of_row=gt_seg * n_tids + tid,
        by_frame_det=_Index(det_key, n_keys),
        by_frame_gt=_Index(gt_key, n_keys),
        by_segment_gt=_Index(gt_seg, int(gt_seg.max()) + 1),
    )


def _blocks_in_order(r: np.ndarray, budget: int) -> Iterator[np.ndarray]:
    """Blocks of ``_BLOCK`` rows in descending rareness order, sorting the pool lazily."""
    order, rest = _order_prefix(r, 4 * budget + 4 * _BLOCK)
    pos = 0
    while True:
        if pos >= len(order):
            if not len(rest):
                return
            order, pos = rest[np.lexsort((rest, -r[rest]))], 0
            rest = np.zeros(0, np.int64)
        block = order[pos : pos + _BLOCK]
        pos += len(block)
        yield block


def _found_tracks(pool: _Pool, block: np.ndarray, check_iou: float) -> np.ndarray:
    """The track code a check of each detection of ``block`` would find (-1: none)."""
    # The best ground-truth box of each detection of the block (-1: none).
    owner, g = pool.by_frame_gt.rows_of(pool.det_key[block])
    iou = _overlap_iou(pool.det_boxes[block[owner]], pool.gt_boxes[g])
    keep = iou > check_iou
    owner, g, iou = owner[keep], g[keep], iou[keep]
    best = np.full(len(block), -1, np.int64)
    sort = np.lexsort((-g, iou, owner))  # per owner the best last; ties: first row
    best[owner[sort]] = g[sort]
    return np.where(best >= 0, pool.track_of_row[np.maximum(best, 0)], -1)


def _track_members(pool: _Pool, tracks: np.ndarray) -> dict[int, np.ndarray]:
    """Per track code of ``tracks`` (sorted, unique), every detection intersecting it."""
    # The track's boxes (from its segment's rows), then the detections of each box's frame.
    s_owner, s_row = pool.by_segment_gt.rows_of(tracks // pool.n_tids)
    mine = pool.track_of_row[s_row] == tracks[s_owner]
    t_owner, t_box = s_owner[mine], s_row[mine]
    d_owner, d_row = pool.by_frame_det.rows_of(pool.gt_key[t_box])
    overlap = _overlap_iou(pool.det_boxes[d_row], pool.gt_boxes[t_box[d_owner]]) > 0
    pair_track, d_row = tracks[t_owner[d_owner]][overlap], d_row[overlap]
    split = np.argsort(pair_track, kind="stable")
    pair_track, d_row = pair_track[split], d_row[split]
    lo = np.searchsorted(pair_track, tracks, side="left")
    hi = np.searchsorted(pair_track, tracks, side="right")
    return {int(t): d_row[a:b] for t, a, b in zip(tracks, lo, hi, strict=True)}


def _check_block(
    state: _Greedy,
    block: np.ndarray,
    found: np.ndarray,
    members: dict[int, np.ndarray],
    budget: int,
    fp_costs_budget: bool,
) -> None:
    """The greedy step over one block, in rareness order: cheap bookkeeping only."""
    discarded, discarded_at = state.discarded, state.discarded_at
    block_checked, block_hit = [], []
    for i, row in enumerate(block):
        if discarded[row]:
            continue
        discarded[row] = True
        discarded_at[row] = state.n_checked
        state.n_checked += 1
        track = int(found[i])
        block_checked.append(row)
        block_hit.append(track >= 0)
        if track < 0:
            state.spent += fp_costs_budget
        else:
            state.mined_tracks.append(track)
            state.mined_by.append(int(row))
            gone = members[track][~discarded[members[track]]]
            discarded[gone] = True
            discarded_at[gone] = state.n_checked - 1
            state.spent += 1
        if state.spent >= budget:
            break
    state.checked.append(np.asarray(block_checked, np.int64))
    state.hits.append(np.asarray(block_hit, bool))


def _tracks_table(
    gt: pd.DataFrame, track_of_row: np.ndarray, state: _Greedy, r: np.ndarray
) -> pd.DataFrame:
    """The mined tracks in mining order, each named by its first ground-truth row."""
    mined = np.asarray(state.mined_tracks, np.int64)
    if len(mined):
        # The first ground-truth row of each mined track names it.
        rows = np.flatnonzero(np.isin(track_of_row, mined))
        codes, first = np.unique(track_of_row[rows], return_index=True)
        first_box = rows[first][np.searchsorted(codes, mined)]
        seg = gt["segment_id"].iloc[first_box].to_numpy(object)
        tid = gt["track_id"].iloc[first_box].to_numpy(object)
    else:
        seg = tid = np.zeros(0, object)
    by = np.asarray(state.mined_by, np.int64)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(mined) + 1, dtype=np.int64),
            "segment_id": seg,
            "track_id": tid,
            "detection": by,
            "rareness": r[by],
        }
    )
