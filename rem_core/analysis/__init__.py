"""The paper's analyses of rareness: what the figures and the pages show.

* ``recall``: recall of a detector per rareness bin (paper Fig. 2).
* ``log_prob``: log-probability by group, and how well rareness separates another
  distribution's objects (Fig. 6).
* ``rare_groups``: rare beyond size (Fig. 5): each rare group's AUROC against D-REM and a
  size-only density, and whether the density overfits its training pool.
* ``noise``: label noise among the rarest boxes (or the boxes of any other score's top).
* ``along_track``: rareness along a track: the boxes whose log p falls far below their own
  track's, the label errors a track reveals.
* ``run_comparison``: two rareness runs compared: rank correlation, overlap of their top
  tracks, the tracks that moved.
* ``tracks``: the tracks of a data set ranked by rareness, described (the Rarest tracks page).

They read the pipeline's outputs (ground truth, log p, an evaluation) and compute nothing
that is cached.
"""

from rem_core.analysis.along_track import (
    FLAG_UNITS,
    BoxInTrack,
    box_in_track,
    boxes_to_recheck,
)
from rem_core.analysis.log_prob import (
    auroc,
    log_prob_groups,
    ood_aurocs,
)
from rem_core.analysis.noise import (
    RarestNoise,
    label_noise_in_rarest,
)
from rem_core.analysis.rare_groups import (
    EVAL_SPLITS,
    MIN_GROUP_BOXES,
    NOISE_ALL,
    TRAIN_SPLITS,
    KsTrainVal,
    RareGroups,
    ks_train_val,
    rare_group_aurocs,
    regular_vehicles,
    size_log_prob,
    size_train_boxes,
)
from rem_core.analysis.recall import (
    RecallCurve,
    recall_by_rareness,
)
from rem_core.analysis.run_comparison import RunComparison, compare_runs
from rem_core.analysis.tracks import track_table

__all__ = [
    "EVAL_SPLITS",
    "FLAG_UNITS",
    "MIN_GROUP_BOXES",
    "NOISE_ALL",
    "TRAIN_SPLITS",
    "KsTrainVal",
    "RareGroups",
    "RarestNoise",
    "RecallCurve",
    "RunComparison",
    "BoxInTrack",
    "auroc",
    "box_in_track",
    "boxes_to_recheck",
    "compare_runs",
    "ks_train_val",
    "label_noise_in_rarest",
    "log_prob_groups",
    "ood_aurocs",
    "rare_group_aurocs",
    "recall_by_rareness",
    "regular_vehicles",
    "size_log_prob",
    "size_train_boxes",
    "track_table",
]
