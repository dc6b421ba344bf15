"""TODO"""

from rem_core.evaluation.average_precision import (
    PRCurve,
    precision_recall,
)
from rem_core.evaluation.evaluate import (
    LEVEL_1_MIN_POINTS,
    REPORTED_SUBSETS,
    SIZE_SUBSETS,
    DetectionEval,
    evaluate_detections,
    recall_by_group,
)
from rem_core.evaluation.matching import (
    FRAME_COLUMNS,
    MATCH_RULES,
    BoxMatch,
    MatchRule,
    frame_keys,
    match_boxes,
    match_frames,
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
