"""Algorithm 1 over partitions of the pool (segments), exactly: the same selection as
:func:`~rem_core.mining.algorithm.select_tracks` on the whole pool.

Why it is exact: a check can discard only detections of its own segment (a track, and every
box of it, lies in one segment, and a detection is discarded when it overlaps one of the
track's boxes in its own frame). So within a partition of whole segments, which detections
are checked, what each check finds and what it discards depend only on that partition's
earlier checks, never on another partition's. The whole pool's run is therefore the
partitions' runs interleaved in the global order (descending rareness; ties: input row
order; ``-inf`` last), cut where the budget is spent. Each partition runs Algorithm 1 on its
own rows with the whole budget (its checks past that point can never be reached: the global
run would have stopped before them), and only the events come back: the rows checked, hits,
the tracks found, and which check discarded each row.

On a Dask cluster (``client``) the partitions run as tasks; without one, in turn here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.mining.algorithm import MiningResult, select_tracks

__all__ = ["select_tracks_partitioned"]


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
    """:func:`~rem_core.mining.algorithm.select_tracks`, run on ``partitions`` groups of whole
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
        raise ValueError(
            f"rareness: {r.size} values for {len(detections)} detections; one per detection"
        )
    if partitions < 1:
        raise ValueError(f"partitions: must be >= 1, got {partitions}")
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
    # Each partition first mines its share of the budget, with room to spare; a partition
    # whose checks stop before the merged run's cut (it might hold checks before the cut
    # that it never reached) mines again with twice its budget, until every check before
    # the cut is known. A partition's checks do not depend on its budget, only where they
    # stop, so a longer run extends a shorter one.
    share = [max(1, -(-budget * (len(rows) + 1) // (len(detections) + 1)) + 1) for rows, _ in jobs]
    local = [min(budget, b) for b in share] if budget > 0 else [0] * partitions
    results: list[MiningResult | None] = [None] * partitions
    while True:
        stale = [
            p for p in range(partitions) if results[p] is None or results[p].budget != local[p]
        ]
        args = [(parts[p], local[p], check_iou, fp_costs_budget, len(gt) > 0) for p in stale]
        if client is None:
            fresh = [_run_part(*a) for a in args]
        else:
            from rem_core.cluster import map_in_order

            fresh = list(map_in_order(client, _run_part_args, args))
        for p, res in zip(stale, fresh, strict=True):
            results[p] = res
        merged = _merge(results, jobs, r, len(detections), int(budget), fp_costs_budget)
        short = _short(results, jobs, r, merged, budget)
        if not short:
            return merged
        for p in short:
            local[p] = min(budget, 2 * local[p])


def _short(results, jobs, r, merged, budget) -> list[int]:
    """Partitions that stopped at their own budget before the merged run's cut (all such
    partitions when the merged run did not spend the budget)."""
    if budget <= 0:
        return []
    cut = None
    if merged.spent >= budget and len(merged.checked):
        last = int(merged.checked[-1])
        cut = (-r[last], last)
    short = []
    for p, (res, (rows, _)) in enumerate(zip(results, jobs, strict=True)):
        if res.spent < res.budget or res.budget >= budget or not len(res.checked):
            continue  # ran out of detections, or already mined the whole budget
        end = int(rows[res.checked[-1]])
        if cut is None or (-r[end], end) < cut:
            short.append(p)
    return short


def _run_part_args(args: tuple) -> MiningResult:
    return _run_part(*args)


def _run_part(part, budget, check_iou, fp_costs_budget, any_gt) -> MiningResult:
    """Algorithm 1 on one partition's rows (a Dask task on a cluster)."""
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


def _merge(results, jobs, r, n, budget, fp_costs_budget) -> MiningResult:
    """The partitions' checks interleaved in the global order, cut where the budget is spent."""
    rows = [part_rows[res.checked] for res, (part_rows, _) in zip(results, jobs, strict=True)]
    event_row = np.concatenate(rows).astype(np.int64)
    event_part = np.concatenate([np.full(len(x), p, np.int64) for p, x in enumerate(rows)])
    event_local = np.concatenate([np.arange(len(x), dtype=np.int64) for x in rows])
    event_hit = np.concatenate([res.hit for res in results]).astype(bool)
    order = np.lexsort((event_row, -r[event_row]))  # descending rareness, ties: row
    spent = np.cumsum(np.where(event_hit[order], 1, int(fp_costs_budget)))
    reached = np.flatnonzero(spent >= budget)
    order = order[: int(reached[0]) + 1] if len(reached) else order

    # Each partition's checks that made the cut, by their place in the merged order.
    position = [np.full(len(x), -1, np.int64) for x in rows]
    for i, e in enumerate(order):
        position[event_part[e]][event_local[e]] = i
    discarded_at = np.full(n, -1, np.int64)
    for p, (res, (part_rows, _)) in enumerate(zip(results, jobs, strict=True)):
        at = res.discarded_at
        mask = at >= 0
        mask[mask] = position[p][at[mask]] >= 0
        discarded_at[part_rows[mask]] = position[p][at[mask]]

    # The tracks in the merged order: the k-th hit of a partition is its k-th track.
    hits = order[event_hit[order]]
    nth = [np.cumsum(res.hit) - 1 for res in results]
    found = [results[event_part[e]].tracks.iloc[nth[event_part[e]][event_local[e]]] for e in hits]
    by = event_row[hits]
    tracks = pd.DataFrame(
        {
            "rank": np.arange(1, len(hits) + 1, dtype=np.int64),
            "segment_id": np.array([t["segment_id"] for t in found], dtype=object),
            "track_id": np.array([t["track_id"] for t in found], dtype=object),
            "detection": by,
            "rareness": r[by],
        }
    )
    return MiningResult(
        tracks=tracks,
        checked=event_row[order],
        hit=event_hit[order],
        discarded=discarded_at >= 0,
        budget=int(budget),
        spent=int(spent[len(order) - 1]) if len(order) else 0,
        discarded_at=discarded_at,
    )
