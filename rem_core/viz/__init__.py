"""Figures: arrays and tables in, plotly figures out (pure functions, no streamlit).

* ``scene``, ``bev``: a LiDAR frame in 3D and in bird's-eye view, with its boxes; ``frame``:
  what the two share (point decimation, box traces by colour group, hover labels).
* ``summary``: counts of a data set for its overview.
* ``rareness``: log-probability histograms and recall by rareness.
* ``mining``: what each selection method mined.
* ``experiment``: AP after mining and retraining, beside the paper's.
* ``difficulty``: detections by rareness against how hard they are to see.
* ``tracks``: one track centred in 3D, thumbnails, and its boxes' log p frame by frame.
* ``theme``: the colours and dark theme all figures share.

The app and notebooks call them alike.
"""

from rem_core.viz.bev import bev_figure
from rem_core.viz.difficulty import (
    DIFFICULTY_AXES,
    SUBSET_COLORS,
    rare_vs_hard_figure,
)
from rem_core.viz.experiment import (
    GROUP_COLORS,
    experiment_ap_figure,
    mean_recall_curve,
)
from rem_core.viz.frame import (
    DISPLAY_POINTS,
    box_edges,
    decimate_points,
    display_columns,
)
from rem_core.viz.mining import (
    SHARES,
    composition_figure,
)
from rem_core.viz.rareness import (
    HISTOGRAM_GROUPS,
    log_prob_histogram,
    recall_figure,
)
from rem_core.viz.scene import scene_figure
from rem_core.viz.summary import (
    DatasetSummary,
    summarize_dataset,
)
from rem_core.viz.theme import (
    BACKGROUND,
    CLASS_COLORS,
    GRID,
    HIGHLIGHT_COLOR,
    NOISE_COLOR,
    OTHER_COLOR,
    RARE_VEHICLE_COLOR,
    SET_COLORS,
    SPLIT_ORDER,
    SUBTYPE_COLORS,
    TEXT,
    chart_layout,
)
from rem_core.viz.tracks import (
    crop_around,
    track_figure,
    track_gallery,
    track_log_prob_figure,
    track_thumbnail,
)

__all__ = [
    "BACKGROUND",
    "CLASS_COLORS",
    "DIFFICULTY_AXES",
    "DISPLAY_POINTS",
    "GRID",
    "GROUP_COLORS",
    "HIGHLIGHT_COLOR",
    "HISTOGRAM_GROUPS",
    "NOISE_COLOR",
    "OTHER_COLOR",
    "RARE_VEHICLE_COLOR",
    "SET_COLORS",
    "SHARES",
    "SPLIT_ORDER",
    "SUBSET_COLORS",
    "SUBTYPE_COLORS",
    "TEXT",
    "DatasetSummary",
    "bev_figure",
    "box_edges",
    "chart_layout",
    "composition_figure",
    "crop_around",
    "decimate_points",
    "display_columns",
    "experiment_ap_figure",
    "log_prob_histogram",
    "mean_recall_curve",
    "rare_vs_hard_figure",
    "recall_figure",
    "scene_figure",
    "summarize_dataset",
    "track_figure",
    "track_gallery",
    "track_log_prob_figure",
    "track_thumbnail",
]
