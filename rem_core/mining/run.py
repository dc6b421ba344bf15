"""One call per question: mine with a method, or compare every method under one budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rem_core.cluster import n_workers
from rem_core.config import MINING_METHODS, MiningConfig, RemConfig
from rem_core.mining.algorithm import MiningResult, resolve_budget, select_tracks
from rem_core.mining.composition import (
    Composition,
    composition_table,
    describe_pool,
    describe_selection,
)
from rem_core.mining.export import mined_boxes
from rem_core.mining.labels import merge_labels
from rem_core.mining.methods import MiningPool, rank_detections
from rem_core.mining.partitioned import select_tracks_partitioned

__all__ = ["Mined", "compare_methods", "mine", "select_from_pool"]


@dataclass(frozen=True)
class Mined:
    """What one selection method mined from a pool.

    Attributes:
        method: the selection method.
        result: Algorithm 1's output (mined tracks in order, checks, budget spent).
        boxes: every box of every mined track (``mined_boxes``).
        labels: the merged label set ``S`` (``merge_labels``): human boxes of the mined
            tracks, then the auto-labels of the tracks that do not overlap them.
        composition: what the mined tracks hold (paper Table 1).
    """

    method: str
    result: MiningResult
    boxes: pd.DataFrame
    labels: pd.DataFrame
    composition: Composition


def select_from_pool(
    pool: MiningPool, rareness: np.ndarray, mining: MiningConfig, client: Any = None
) -> MiningResult:
    """Algorithm 1 on ``pool`` in the order of ``rareness``, under ``mining``'s budget,
    labeller check and false-positive cost; with a Dask ``client``, over one partition of
    segments per worker, merged exactly (``mining.partitioned``: the same result)."""
    args = (pool.detections, rareness, pool.gt, resolve_budget(mining.budget, pool.num_tracks))
    settings = {"check_iou": mining.check_iou, "fp_costs_budget": mining.fp_costs_budget}
    if client is None:
        return select_tracks(*args, **settings)

    return select_tracks_partitioned(*args, **settings, partitions=n_workers(client), client=client)


def mine(
    pool: MiningPool, method: str, config: RemConfig | None = None, client: Any = None
) -> Mined:
    """Rank ``pool`` by ``method`` and run Algorithm 1 under ``config.mining``'s budget
    (``client``: see :func:`select_from_pool`)."""
    config = config or RemConfig()
    m = config.mining
    rareness = rank_detections(pool, method, score=config.score, rank_by=m.rank_by, seed=m.seed)
    result = select_from_pool(pool, rareness, m, client)
    return Mined(
        method=method,
        result=result,
        boxes=mined_boxes(result, pool, method),
        labels=merge_labels(result, pool.gt, pool.autolabels),
        composition=describe_selection(result, pool, method, config.score),
    )


def compare_methods(
    pool: MiningPool, config: RemConfig | None = None, methods: Sequence[str] | None = None
) -> pd.DataFrame:
    """The composition of every method's selection under one budget, side by side.

    Returns:
        ``composition_table`` rows: the whole pool first (the reference), then each method
        in ``methods`` order (default ``MINING_METHODS``).
    """
    config = config or RemConfig()
    rows = [describe_pool(pool, config.score)]
    for method in methods or MINING_METHODS:
        rows.append(mine(pool, method, config).composition)
    return composition_table(rows)
