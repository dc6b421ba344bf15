"""Algorithm 1 over partitions of the pool (segments), exactly: the same selection as
:func:`~rem_core.mining.select_tracks` on the whole pool.

Why it is exact: a check can discard only detections of its own segment (a track, and every
box of it, lies in one segment, and a detection is discarded when it overlaps one of the
track's boxes in its own frame). So within a partition of whole segments, which detections
are checked, what each check finds and what it discards depend only on that partition's
earlier checks, never on another partition's. The whole pool's run is therefore the
partitions' runs interleaved in the global order (descending rareness; ties: input row
order; ``-inf`` last), cut where the budget is spent. Each partition runs Algorithm 1 on
its own rows with a share of the budget, and only the events come back (:class:`PartChecks`:
the rows checked, hits, the tracks found); :func:`merge_partitions` interleaves them and
asks again, with twice the budget, of a partition whose checks stop before the cut.

:func:`select_tracks_partitioned` does this for a pool held here, on a Dask cluster
(``client``) or in turn; ``rem_core.pool`` for a pool that stays where it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.cluster import map_in_order
from rem_core.errors import InputError
from rem_core.mining.algorithm import MiningResult, select_tracks

__all__ = [
    "MergedChecks",
    "PartChecks",
    "merge_partitions",
    "mine_part",
    "part_checks",
    "select_tracks_partitioned",
]


@dataclass(frozen=True)
class PartChecks:
    """One partition's run of Algorithm 1, as the merge needs it.

    Attributes:
        rows: ``(C,)`` int64 global rows of its checks, in its pop order.
        rareness: ``(C,)`` float64 rareness of those rows.
        hit: ``(C,)`` bool, whether each check found a track.
        tracks: its tracks in its order (``segment_id``, ``track_id``): its k-th hit's.
        budget: the budget it ran with.
        spent: budget units it used.
    """

    rows: np.ndarray
    rareness: np.ndarray
    hit: np.ndarray
    tracks: pd.DataFrame
    budget: int
    spent: int


def part_checks(result: MiningResult, rareness: np.ndarray, rows: np.ndarray) -> PartChecks:
    """The events of a partition's ``result``; ``rows[i]`` is the global row of its row ``i``."""
    local = result.checked.astype(np.int64)
    return PartChecks(
        rows=np.asarray(rows, np.int64)[local],
        rareness=np.asarray(rareness, np.float64)[local],
        hit=result.hit.astype(bool),
        tracks=result.tracks[["segment_id", "track_id"]].reset_index(drop=True),
        budget=int(result.budget),
        spent=int(result.spent),
    )


@dataclass(frozen=True)
class MergedChecks:
    """The whole pool's checks, merged from its partitions' and cut where the budget is spent.

    Attributes:
        part, local: ``(C,)`` each check's partition and its index among that partition's
            checks.
        rows, hit: ``(C,)`` its global row and whether it found a track.
        tracks: the mined tracks in order (as ``MiningResult.tracks``, ``detection`` a
            global row).
        budget, spent: as ``MiningResult``'s.
    """

    part: np.ndarray
    local: np.ndarray
    rows: np.ndarray
    hit: np.ndarray
    tracks: pd.DataFrame
    budget: int
    spent: int

    def positions(self, p: int, n_checks: int) -> np.ndarray:
        """``(n_checks,)`` the merged position of each of partition ``p``'s checks (-1:
        past the cut)."""
        out = np.full(n_checks, -1, np.int64)
        mine = self.part == p
        out[self.local[mine]] = np.flatnonzero(mine)
        return out

    def discarded_at(self, p: int, at: np.ndarray) -> np.ndarray:
        """Partition ``p``'s ``MiningResult.discarded_at`` (its check numbers, ``at``) in
        merged check numbers: -1 for rows its checks past the cut discarded."""
        at = np.asarray(at, np.int64)
        n_checks = max(int(at.max(initial=-1)), int(self.local[self.part == p].max(initial=-1)))
        position = self.positions(p, n_checks + 1)
        out = np.full(len(at), -1, np.int64)
        mask = at >= 0
        out[mask] = position[at[mask]]
        return out


def merge_partitions(
    run: Callable[[list[int], list[int]], Sequence[PartChecks]],
    sizes: Sequence[int],
    budget: int,
    *,
    fp_costs_budget: bool = False,
) -> MergedChecks:
    """Algorithm 1 over partitions: ``run(parts, budgets)`` mines each partition in
    ``parts`` with its budget and gives its :class:`PartChecks`; ``sizes`` are the
    partitions' detection counts.

    Each partition first mines its share of the budget, with room to spare; a partition
    whose checks stop before the merged run's cut (it might hold checks before the cut that
    it never reached) mines again with twice its budget, until every check before the cut is
    known. A partition's checks do not depend on its budget, only where they stop, so a
    longer run extends a shorter one.
    """
    n, budget = int(sum(sizes)), int(budget)
    count = len(sizes)
    share = [max(1, -(-budget * (int(s) + 1) // (n + 1)) + 1) for s in sizes]
    local = [min(budget, b) for b in share] if budget > 0 else [0] * count
    results: list[PartChecks | None] = [None] * count
    while True:
        stale = [p for p in range(count) if results[p] is None or results[p].budget != local[p]]
        if stale:
            for p, res in zip(stale, run(stale, [local[p] for p in stale]), strict=True):
                results[p] = res
        merged = _merge(results, budget, fp_costs_budget)
        short = _short(results, merged, budget)
        if not short:
            return merged
        for p in short:
            local[p] = min(budget, 2 * local[p])


def _short(results: list[PartChecks], merged: MergedChecks, budget: int) -> list[int]:
    """Partitions that stopped at their own budget before the merged run's cut (all such
    partitions when the merged run did not spend the budget)."""
    if budget <= 0:
        return []
    cut = None
    if merged.spent >= budget and len(merged.rows):
        last = len(merged.rows) - 1
        res = results[merged.part[last]]
        cut = (-res.rareness[merged.local[last]], int(merged.rows[last]))
    short = []
    for p, res in enumerate(results):
        if res.spent < res.budget or res.budget >= budget or not len(res.rows):
            continue  # ran out of detections, or already mined the whole budget
        end = (-res.rareness[-1], int(res.rows[-1]))
        if cut is None or end < cut:
            short.append(p)
    return short


def _merge(results: list[PartChecks], budget: int, fp_costs_budget: bool) -> MergedChecks:
    """The partitions' checks interleaved in the global order, cut where the budget is spent."""
    event_row = np.concatenate([res.rows for res in results]).astype(np.int64)
    event_r = np.concatenate([res.rareness for res in results]).astype(np.float64)
    event_part = np.concatenate(
        [np.full(len(res.rows), p, np.int64) for p, res in enumerate(results)]
    )
    event_local = np.concatenate([np.arange(len(res.rows), dtype=np.int64) for res in results])
    event_hit = np.concatenate([res.hit for res in results]).astype(bool)
    order = np.lexsort((event_row, -event_r))  # descending rareness, ties: row
    spent = np.cumsum(np.where(event_hit[order], 1, int(fp_costs_budget)))
    reached = np.flatnonzero(spent >= budget)
    order = order[: int(reached[0]) + 1] if len(reached) else order

    # The tracks in the merged order: the k-th hit of a partition is its k-th track.
    hits = order[event_hit[order]]
    nth = [np.cumsum(res.hit) - 1 for res in results]
    seg, tid = [], []
    for e in hits:
        p = event_part[e]
        k = nth[p][event_local[e]]
        seg.append(results[p].tracks["segment_id"].iat[k])
        tid.append(results[p].tracks["track_id"].iat[k])
    tracks = pd.DataFrame(
        {
            "rank": np.arange(1, len(hits) + 1, dtype=np.int64),
            "segment_id": np.array(seg, dtype=object),
            "track_id": np.array(tid, dtype=object),
            "detection": event_row[hits],
            "rareness": event_r[hits],
        }
    )
    return MergedChecks(
        part=event_part[order],
        local=event_local[order],
        rows=event_row[order],
        hit=event_hit[order],
        tracks=tracks,
        budget=int(budget),
        spent=int(spent[len(order) - 1]) if len(order) else 0,
    )


def select_tracks_partitioned(
    detections: pd.DataFrame,
    rareness: ArrayLike,
    gt: pd.DataFrame,
    budget: int,
    *,
    check_iou: float = 0.0,
    fp_costs_budget: bool = False,
    partitions: int = 2,
    client: Any | None = None,
) -> MiningResult:
    """:func:`~rem_core.mining.select_tracks`, run on ``partitions`` groups of whole
    segments and merged: the same result (see the module docstring).

    Args:
        detections, rareness, gt, budget, check_iou, fp_costs_budget: as for
            ``select_tracks``.
        partitions: how many groups the segments are dealt into (round robin in order of
            first appearance).
        client: a ``distributed.Client`` to run the groups on (``rem_core.cluster``).
    """
    r = np.asarray(rareness, dtype=np.float64)
    if r.shape != (len(detections),):
        raise InputError(
            f"rareness: {r.size} values for {len(detections)} detections; one per detection"
        )
    if partitions < 1:
        raise InputError(f"partitions: must be >= 1, got {partitions}")
    codes, _ = pd.factorize(pd.concat([detections["segment_id"], gt["segment_id"]]))
    part = codes % partitions
    det_part, gt_part = part[: len(detections)], part[len(detections) :]
    jobs = [
        (np.flatnonzero(det_part == p), np.flatnonzero(gt_part == p)) for p in range(partitions)
    ]
    # Each task gets its own rows only.
    parts = [
        (
            detections.iloc[rows].reset_index(drop=True),
            r[rows],
            gt.iloc[gt_rows].reset_index(drop=True),
        )
        for rows, gt_rows in jobs
    ]
    kept: dict[int, MiningResult] = {}

    def run(which: list[int], budgets: list[int]) -> list[PartChecks]:
        args = [
            (parts[p], b, check_iou, fp_costs_budget, len(gt) > 0)
            for p, b in zip(which, budgets, strict=True)
        ]
        if client is None:
            fresh = [mine_part(*a) for a in args]
        else:
            fresh = list(map_in_order(client, _mine_part_args, args))
        for p, res in zip(which, fresh, strict=True):
            kept[p] = res
        return [
            part_checks(res, r[jobs[p][0]], jobs[p][0]) for p, res in zip(which, fresh, strict=True)
        ]

    merged = merge_partitions(
        run, [len(rows) for rows, _ in jobs], budget, fp_costs_budget=fp_costs_budget
    )
    discarded_at = np.full(len(detections), -1, np.int64)
    for p, (rows, _) in enumerate(jobs):
        discarded_at[rows] = merged.discarded_at(p, kept[p].discarded_at)
    return MiningResult(
        tracks=merged.tracks,
        checked=merged.rows,
        hit=merged.hit,
        discarded=discarded_at >= 0,
        budget=merged.budget,
        spent=merged.spent,
        discarded_at=discarded_at,
    )


def _mine_part_args(args: tuple) -> MiningResult:
    return mine_part(*args)


def mine_part(
    part: tuple[pd.DataFrame, np.ndarray, pd.DataFrame],
    budget: int,
    check_iou: float,
    fp_costs_budget: bool,
    any_gt: bool,
) -> MiningResult:
    """Algorithm 1 on one partition's ``(detections, rareness, gt)`` (a Dask task on a
    cluster); ``any_gt``: the whole pool has ground truth."""
    detections, r, gt = part
    if any_gt and not len(gt):
        # No ground truth in these segments, some elsewhere: every check here is a miss.
        return _all_misses(r, budget, fp_costs_budget)
    return select_tracks(
        detections, r, gt, budget, check_iou=check_iou, fp_costs_budget=fp_costs_budget
    )


def _all_misses(r: np.ndarray, budget: int, fp_costs_budget: bool) -> MiningResult:
    """Algorithm 1 where no check can find anything: rows popped in order, each a miss."""
    order = np.lexsort((np.arange(len(r)), -r)) if budget > 0 else np.zeros(0, np.int64)
    if fp_costs_budget:
        order = order[:budget]
    discarded_at = np.full(len(r), -1, np.int64)
    discarded_at[order] = np.arange(len(order))
    return MiningResult(
        tracks=pd.DataFrame(
            {"rank": [], "segment_id": [], "track_id": [], "detection": [], "rareness": []}
        ),
        checked=order.astype(np.int64),
        hit=np.zeros(len(order), bool),
        discarded=discarded_at >= 0,
        budget=budget,
        spent=len(order) if fp_costs_budget else 0,
        discarded_at=discarded_at,
    )
