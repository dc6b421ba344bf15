"""Scoring with a fitted density model on a Dask cluster, in chunks that give the same numbers.

A flow scores its rows in batches (FFJORD's adaptive ODE solver steps for a whole batch at
once, so a row's log p depends on which rows share its batch). Chunks of whole batches,
cut where the estimator itself would cut, keep every batch as it is in process: the scores
are the same bit for bit when the workers and the client run torch on the same number of
threads. The baselines are cheap and are scored in the client.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rem_core.cluster import map_in_order
from rem_core.density.base import DensityEstimator

__all__ = ["score_batch", "score_on_cluster"]

#: Rows of a chunk for a worker, at least (rounded up to whole batches).
CHUNK_ROWS = 32768


def score_batch(estimator: DensityEstimator) -> int | None:
    """The rows ``estimator.score_samples`` scores together (``None``: not a flow, scored
    here)."""
    kind = getattr(estimator, "kind", None)
    if kind == "ffjord":
        return int(estimator.config.score_batch_size)
    if kind == "realnvp":
        return 65536
    return None


def score_on_cluster(estimator: DensityEstimator, X: np.ndarray, client: Any = None) -> np.ndarray:
    """``estimator.score_samples(X)``, on ``client``'s cluster in chunks of whole batches
    (the fitted model sent once to every worker) when there is one.

    Args:
        estimator: a fitted density model.
        X: ``(N, D)`` features in its space.
        client: a ``distributed.Client`` or ``None`` (score here).

    Returns:
        ``(N,)`` float64 log-density, as ``estimator.score_samples(X)`` gives it.
    """
    batch = score_batch(estimator)
    if client is None or batch is None or len(X) <= batch:
        return estimator.score_samples(X)

    chunk = batch * max(1, -(-CHUNK_ROWS // batch))
    starts = range(0, len(X), chunk)
    parts = map_in_order(
        client, _score_chunk, (X[i : i + chunk] for i in starts), shared={"estimator": estimator}
    )
    return np.concatenate(list(parts))


def _score_chunk(X: np.ndarray, *, estimator: DensityEstimator) -> np.ndarray:
    return estimator.score_samples(X)
