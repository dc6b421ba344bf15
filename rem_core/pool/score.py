"""Fitting, scoring and mining a pool folder part by part, where its parts lie (the steps:
``rem_core.pool``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.errors import InputError
from rem_core.files import publish_file, publishing
from rem_core.mining import (
    MergedChecks,
    PartChecks,
    merge_partitions,
    mine_part,
    part_checks,
    resolve_budget,
    track_codes,
    track_mean,
)
from rem_core.pool.folder import Pool

__all__ = ["PoolMining", "sample_features", "score_and_mine"]


def sample_features(
    pool: Pool,
    rows: int,
    *,
    min_score: float = 0.0,
    seed: int = 0,
    client: Any | None = None,
) -> np.ndarray:
    """About ``rows`` detections' features, drawn uniformly across the pool: each part
    gives its share (by its detections; largest remainders), from its detections scoring
    ``>= min_score``, with a generator seeded by ``(seed, part)``: the same sample on any
    cluster. Parts in order."""
    sizes = np.array([p["detections"] for p in pool.parts], np.float64)
    want = rows * sizes / max(sizes.sum(), 1)
    share = np.floor(want).astype(np.int64)
    extra = min(max(rows - int(share.sum()), 0), len(share))
    share[np.argsort(-(want - share), kind="stable")[:extra]] += 1
    args = [(pool.folder, p, int(share[p]), min_score, seed) for p in range(len(pool.parts))]
    if client is None:
        parts = [_sample_part(*a) for a in args]
    else:
        parts = client.gather([client.submit(_sample_part, *a, pure=False) for a in args])
    return np.concatenate(parts)


def _sample_part(folder: Path, p: int, n: int, min_score: float, seed: int) -> np.ndarray:
    pool = Pool.open(folder)
    det, features = pool.read(p)
    eligible = np.flatnonzero(det["score"].to_numpy() >= min_score)
    rng = np.random.default_rng([seed, p])
    take = np.sort(rng.choice(eligible, size=min(n, len(eligible)), replace=False))
    return features[take]


@dataclass(frozen=True)
class PoolMining:
    """What :func:`score_and_mine` mined.

    Attributes:
        tracks: the mined tracks in order (``rank, segment_id, track_id, detection,
            rareness``; ``detection`` is a global row: parts in order).
        checked, hit: ``(C,)`` each check's global row and whether it found a track.
        budget, spent: tracks asked for, budget units used.
        path: the output folder (``None`` when not written).
        timings: seconds of ``score`` (read and score, every part) and ``mine``.
    """

    tracks: pd.DataFrame
    checked: np.ndarray
    hit: np.ndarray
    budget: int
    spent: int
    path: Path | None
    timings: dict[str, float]


def score_and_mine(
    pool: Pool,
    reducer: Any,
    estimator: Any,
    budget: int | str,
    out: str | Path | None = None,
    *,
    check_iou: float = 0.0,
    fp_costs_budget: bool = False,
    rank_by: str = "track",
    client: Any | None = None,
) -> PoolMining:
    """Score every part of ``pool`` with the fitted ``reducer`` and ``estimator`` (rareness = -log
    p; with ``rank_by="track"`` and a tracked pool, a detection's rareness is its predicted
    track's mean, as the pipeline's D-REM ranks) and mine ``budget`` tracks (a count or a
    share such as ``"3%"`` of the pool's tracks) by the exact partitioned Algorithm 1; with
    ``out``, publish the folder ``out`` (``part-NNNNN.parquet``: ``log_prob``,
    ``rareness``, ``discarded_by``, the merged check that discarded each detection or -1,
    row for row with the pool's part; ``tracks.parquet``; ``meta.json``).

    With a ``client``, every part is read, scored and mined on a worker and stays there
    (a worker that dies is replaced and its parts computed again); otherwise in turn here.
    """
    if rank_by not in ("track", "detection"):
        raise InputError(f"rank_by: must be 'track' or 'detection', got {rank_by!r}")
    start = time.perf_counter()
    budget = resolve_budget(budget, pool.tracks)
    kept = _score_parts(pool, reducer, estimator, rank_by, client)
    scored = time.perf_counter()
    merged, mined = _mine_parts(pool, kept, budget, check_iou, fp_costs_budget, client)
    timings = {"score": scored - start, "mine": time.perf_counter() - scored}
    result = PoolMining(
        merged.tracks,
        merged.rows,
        merged.hit,
        merged.budget,
        merged.spent,
        None if out is None else Path(out),
        timings,
    )
    if out is not None:
        _publish_mining(pool, out, kept, mined, merged, timings, client)
    return result


def _score_parts(
    pool: Pool, reducer: Any, estimator: Any, rank_by: str, client: Any | None
) -> list[Any]:
    """Every part read and scored: here, or on the workers (their futures, once all are done)."""
    n_parts = len(pool.parts)
    if client is None:
        return [_score_part(pool.folder, p, reducer, estimator, rank_by) for p in range(n_parts)]
    models = client.scatter([reducer, estimator], broadcast=True, hash=False)
    kept = [
        client.submit(_score_part, pool.folder, p, *models, rank_by, pure=False)
        for p in range(n_parts)
    ]
    from distributed import wait  # only with a client: slow to import (as in rem_core.cluster)

    wait(kept)
    return kept


def _mine_parts(
    pool: Pool,
    kept: list[Any],
    budget: int,
    check_iou: float,
    fp_costs_budget: bool,
    client: Any | None,
) -> tuple[MergedChecks, dict[int, Any]]:
    """The scored parts mined by the partitioned Algorithm 1: merged checks, and each part's."""
    offsets = pool.offsets
    any_gt = sum(p["gt"] for p in pool.parts) > 0
    mined: dict[int, Any] = {}

    def run(which: list[int], budgets: list[int]) -> list[PartChecks]:
        args = [
            (kept[p], b, check_iou, fp_costs_budget, any_gt, offsets[p])
            for p, b in zip(which, budgets, strict=True)
        ]
        if client is None:
            results = [_mine_kept(*a) for a in args]
            checks = [c for _, c in results]
        else:
            results = [client.submit(_mine_kept, *a, pure=False) for a in args]
            checks = client.gather([client.submit(_second, r, pure=False) for r in results])
        mined.update(zip(which, results, strict=True))
        return checks

    merged = merge_partitions(
        run, [p["detections"] for p in pool.parts], budget, fp_costs_budget=fp_costs_budget
    )
    return merged, mined


def _publish_mining(
    pool: Pool,
    out: str | Path,
    kept: list[Any],
    mined: dict[int, Any],
    merged: MergedChecks,
    timings: dict[str, float],
    client: Any | None,
) -> None:
    """The folder ``out`` published whole: each part's scores, the mined tracks, ``meta.json``."""
    n_parts = len(pool.parts)
    with publishing(out) as tmp:
        if client is None:
            for p in range(n_parts):
                _write_scores(kept[p], mined[p], merged, tmp, p)
        else:
            checks = client.scatter(merged, hash=False)  # once, not once per part
            client.gather(
                [
                    client.submit(_write_scores, kept[p], mined[p], checks, tmp, p, pure=False)
                    for p in range(n_parts)
                ]
            )
        tracks = pa.Table.from_pandas(merged.tracks, preserve_index=False)
        pq.write_table(tracks, tmp / "tracks.parquet")
        meta = {
            "pool": str(pool.folder.resolve()),
            "budget": merged.budget,
            "spent": merged.spent,
            "checks": len(merged.rows),
            "tracks": len(merged.tracks),
            "detections": pool.detections,
            "timings": timings,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))


def _second(pair: tuple) -> Any:
    return pair[1]


def _score_part(folder: Path, p: int, reducer: Any, estimator: Any, rank_by: str) -> tuple:
    """Part ``p`` read and scored: ``(detections, log p, rareness, ground truth)`` (kept by
    the worker). A track lies in one segment, so its mean is the part's."""
    pool = Pool.open(folder)
    det, features = pool.read(p)
    log_prob = estimator.score_samples(reducer.transform(features)) if len(det) else np.zeros(0)
    log_prob = np.asarray(log_prob, np.float64)
    rareness = np.where(np.isfinite(log_prob), -log_prob, -np.inf)
    if rank_by == "track" and pool.tracked:
        rareness = track_mean(rareness, track_codes(det))
    return det, log_prob, rareness, pool.read_gt(p)


def _mine_kept(
    kept: tuple, budget: int, check_iou: float, fp_costs_budget: bool, any_gt: bool, offset: int
) -> tuple:
    """Algorithm 1 on a scored part: ``(its MiningResult, its PartChecks)``."""
    det, _, rareness, gt = kept
    result = mine_part((det, rareness, gt), budget, check_iou, fp_costs_budget, any_gt)
    rows = offset + np.arange(len(det), dtype=np.int64)
    return result, part_checks(result, rareness, rows)


def _write_scores(kept: tuple, mined: tuple, merged: Any, folder: Path, p: int) -> None:
    """Part ``p``'s scores and discards (in ``merged``'s check numbers), row for row."""
    _, log_prob, rareness, _ = kept
    discarded_by = merged.discarded_at(p, mined[0].discarded_at)
    table = pa.table({"log_prob": log_prob, "rareness": rareness, "discarded_by": discarded_by})
    publish_file(
        folder / f"part-{p:05d}.parquet",
        lambda tmp: pq.write_table(table, tmp, compression="zstd"),
        force=True,
    )
