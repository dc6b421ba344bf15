"""Detection evaluation: AP at 3D (or BEV) IoU by size subset, and recall by any grouping.

* ``matching``: the one per-frame box matcher (``match_frames``, ``match_boxes``) under three
  rules: ``"optimal"`` (Hungarian), ``"greedy"`` (score first, as KITTI and Waymo) and
  ``"best"`` (each box its best overlap); the ensemble, the evaluation and mining all use it.
* ``average_precision``: the precision-recall curve and its exact AP (``precision_recall``).
* ``evaluate``: ``evaluate_detections``, per frame and class, LEVEL_1 by default.
* ``results``: what an evaluation gives (``DetectionEval``: curves and every box's match),
  the size subsets (``SIZE_SUBSETS``; the paper's tables report ``REPORTED_SUBSETS``) and
  ``recall_by_group``.

``docs/evaluation.md`` has the worked definitions and the checks against Waymo's metric.
"""

from rem_core.evaluation.average_precision import (
    PRCurve,
    precision_recall,
)
from rem_core.evaluation.evaluate import evaluate_detections
from rem_core.evaluation.matching import (
    FRAME_COLUMNS,
    MATCH_RULES,
    BoxMatch,
    MatchRule,
    frame_keys,
    match_boxes,
    match_frames,
)
from rem_core.evaluation.results import (
    LEVEL_1_MIN_POINTS,
    REPORTED_SUBSETS,
    SIZE_SUBSETS,
    DetectionEval,
    recall_by_group,
)

__all__ = [
    "FRAME_COLUMNS",
    "LEVEL_1_MIN_POINTS",
    "MATCH_RULES",
    "REPORTED_SUBSETS",
    "SIZE_SUBSETS",
    "BoxMatch",
    "DetectionEval",
    "MatchRule",
    "PRCurve",
    "evaluate_detections",
    "frame_keys",
    "match_boxes",
    "match_frames",
    "precision_recall",
    "recall_by_group",
]
