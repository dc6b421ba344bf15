"""Track-level mining under a budget (paper Algorithm 1), its selection methods, what each
method mined (Table 1), and export for labelling tools.

* ``algorithm``: :func:`select_tracks` (Algorithm 1); ``labels``: :func:`merge_labels`
  (its step 5).
* ``scores``: REM's scores per detection (D-REM, M-REM, MD-REM, the easy-object filter) and
  per track.
* ``partitioned``: :func:`select_tracks_partitioned`, the same over partitions of segments.
* ``methods``: the pool (:class:`MiningPool`) and what each method ranks it by.
* ``composition``: the share of Large, irregular, label-noise and hard objects mined.
* ``export``: the mined track list (CSV, Parquet, JSON) and the label set (Waymo ``.bin``).
* ``run``: :func:`mine` and :func:`compare_methods`, one call each.
"""

from rem_core.mining.algorithm import (
    MiningResult,
    resolve_budget,
    select_tracks,
)
from rem_core.mining.composition import (
    Composition,
    composition_table,
    describe_pool,
    describe_selection,
)
from rem_core.mining.export import (
    MINED_COLUMNS,
    MINED_FORMATS,
    mined_boxes,
    mined_tracks,
    read_mined,
    write_label_set,
    write_mined,
)
from rem_core.mining.labels import merge_labels
from rem_core.mining.methods import (
    VARIANCE_METHODS,
    MiningPool,
    best_overlap,
    rank_detections,
    track_codes,
    track_mean,
)
from rem_core.mining.partitioned import (
    MergedChecks,
    PartChecks,
    merge_partitions,
    mine_part,
    part_checks,
    select_tracks_partitioned,
)
from rem_core.mining.run import (
    Mined,
    compare_methods,
    mine,
    select_from_pool,
)
from rem_core.mining.scores import (
    aggregate_tracks,
    d_rem,
    easy_filter,
    m_rem,
    md_rem,
    rareness_percentile,
)

__all__ = [
    "MINED_COLUMNS",
    "MINED_FORMATS",
    "Composition",
    "MergedChecks",
    "Mined",
    "VARIANCE_METHODS",
    "MiningPool",
    "MiningResult",
    "PartChecks",
    "aggregate_tracks",
    "best_overlap",
    "compare_methods",
    "composition_table",
    "d_rem",
    "describe_pool",
    "describe_selection",
    "easy_filter",
    "m_rem",
    "md_rem",
    "merge_labels",
    "merge_partitions",
    "mine",
    "mine_part",
    "mined_boxes",
    "mined_tracks",
    "part_checks",
    "rank_detections",
    "rareness_percentile",
    "read_mined",
    "resolve_budget",
    "select_from_pool",
    "select_tracks",
    "select_tracks_partitioned",
    "track_codes",
    "track_mean",
    "write_label_set",
    "write_mined",
]
