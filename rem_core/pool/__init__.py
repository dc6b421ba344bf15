"""A pool stored in partitions of whole segments, read, scored and mined where it lies.

At the scale of the Waymo Open Dataset the unlabelled pool is millions of detections with
their features: more than a client should hold, and more than one machine scores in good
time. A *pool folder* keeps it in parts of whole segments, and every step works part by
part, on a Dask cluster's workers when there is one:

1. :func:`sample_features`: each part draws its share of a sample (seeded per part), the
   client fits the PCA reducer and the density model on it (:func:`fit_density`);
2. :func:`score_and_mine`: each part is read and scored on a worker, and stays there; the
   exact partitioned Algorithm 1 (``rem_core.mining.partitioned``) mines them, and only
   the partitions' checks reach the client; each worker writes its part's log p,
   rareness and discards, and the client publishes the folder whole.

The client holds the sample, the fitted models, the checks and the mined tracks: never the
pool. The results equal the single-process run (``client=None``) bit for bit when both run
torch on the same number of threads, and equal ``select_tracks`` on the whole pool.

A pool folder::

    pool.json            {"format": "rem-pool", "version": 1, "features": C,
                          "parts": [{"detections": N, "gt": K, "tracks": T,
                                     "segments": S}, ...]}
    part-00000.parquet   detections: segment_id, frame_index, the box columns, score,
                         features (C float32)
    gt-00000.parquet     the same segments' ground truth: segment_id, frame_index,
                         track_id, the box columns
"""

from rem_core.pool.export import export_pool
from rem_core.pool.folder import (
    DETECTION_COLUMNS,
    GT_COLUMNS,
    TRACK_COLUMN,
    Pool,
    PoolPart,
    parts_from,
    write_pool,
)
from rem_core.pool.score import (
    PoolMining,
    sample_features,
    score_and_mine,
)
from rem_core.pool.synthetic import (
    SyntheticPool,
    synthetic_part,
)

__all__ = [
    "DETECTION_COLUMNS",
    "GT_COLUMNS",
    "TRACK_COLUMN",
    "Pool",
    "PoolMining",
    "PoolPart",
    "SyntheticPool",
    "export_pool",
    "parts_from",
    "sample_features",
    "score_and_mine",
    "synthetic_part",
    "write_pool",
]
