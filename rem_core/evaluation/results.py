"""What an evaluation gives (:class:`DetectionEval`: the AP curves, and every box's and
prediction's match) and what is read off it: AP by size subset, recall by any grouping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.errors import InputError, InputKeyError
from rem_core.evaluation.average_precision import PRCurve
from rem_core.geometry import IoUKind

__all__ = [
    "LEVEL_1_MIN_POINTS",
    "REPORTED_SUBSETS",
    "SIZE_SUBSETS",
    "DetectionEval",
    "recall_by_group",
]


#: Size subsets reported by ``evaluate_detections``: every box, then by ``size_subset``.
SIZE_SUBSETS = ("all", "regular", "large", "small")
#: The subsets the paper's tables report vehicle AP for (Tables 2 and 3), in report order.
REPORTED_SUBSETS = ("all", "regular", "large")

#: Waymo's LEVEL_1 difficulty: boxes with more than 5 points. Sparser boxes are
#: "don't care" in the AP this project reports.
LEVEL_1_MIN_POINTS = 6


@dataclass(frozen=True, eq=False)
class DetectionEval:
    """The result of ``evaluate_detections``.

    Attributes:
        iou: ``"3d"`` or ``"bev"``.
        iou_threshold: minimum IoU of a match.
        classes: the evaluated classes.
        curves: ``PRCurve`` per ``(class, subset)``, subsets as in ``SIZE_SUBSETS``.
        gt: one row per evaluated ground-truth box, in input order: ``gt_index`` (row
            position in the input table), ``segment_id``, ``frame_index``, ``class`` and
            whichever of ``track_id, subtype, num_points, distance`` the input had;
            ``subset``; ``matched`` (bool); ``pred_index`` (matched prediction's row
            position in the detections table, -1 if none); ``iou`` and ``score`` of that
            match (NaN if none); ``max_iou`` with any prediction of its frame and class.
        predictions: one row per evaluated prediction, in input order: ``pred_index``,
            ``segment_id``, ``frame_index``, ``class``, whichever of ``detection_id,
            track_id`` the input had, ``score``, ``subset``, ``tp`` (bool), ``ignored``
            (bool: unmatched but on a box without points, left out of AP; a prediction
            neither ``tp`` nor ``ignored`` is a false positive), ``gt_index`` (-1 if none),
            ``iou`` with the matched box (NaN if none), ``max_iou`` with any ground-truth
            box of its frame and class (0 if none).
    """

    iou: IoUKind
    iou_threshold: float
    classes: tuple[str, ...]
    curves: Mapping[tuple[str, str], PRCurve]
    gt: pd.DataFrame
    predictions: pd.DataFrame

    def curve(self, subset: str = "all", class_name: str | None = None) -> PRCurve:
        """The curve of one subset; ``class_name`` may be left out when one class is evaluated."""
        if class_name is None:
            if len(self.classes) != 1:
                raise InputError(f"class_name: pick one of {list(self.classes)}")
            class_name = self.classes[0]
        if (class_name, subset) not in self.curves:
            raise InputKeyError(f"no curve for class {class_name!r}, subset {subset!r}")
        return self.curves[class_name, subset]

    def ap(self, subset: str = "all", class_name: str | None = None) -> float:
        """AP of a subset; without ``class_name``, the mean over classes with ground truth."""
        if class_name is not None or len(self.classes) == 1:
            return self.curve(subset, class_name).ap
        values = [self.curves[c, subset].ap for c in self.classes]
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> pd.DataFrame:
        """One row per ``(class, subset)``: ``class, subset, ap, n_gt, n_pred, n_tp``."""
        rows = [
            {
                "class": c,
                "subset": s,
                "ap": cv.ap,
                "n_gt": cv.n_gt,
                "n_pred": cv.n_pred,
                "n_tp": cv.n_tp,
            }
            for (c, s), cv in self.curves.items()
        ]
        return pd.DataFrame(rows, columns=["class", "subset", "ap", "n_gt", "n_pred", "n_tp"])


def recall_by_group(
    result: DetectionEval | ArrayLike,
    groups: ArrayLike | str,
    *,
    score_threshold: float | None = None,
) -> pd.DataFrame:
    """Recall of ground-truth boxes by any grouping (rareness bin, subtype, distance bin...).

    Args:
        result: a ``DetectionEval`` (its ``gt`` table), or ``(G,)`` bool "detected" flags.
        groups: ``(G,)`` group of each ground-truth box, in the order of ``result.gt`` rows
            (or of the flags); or the name of a ``result.gt`` column. Categorical groups
            (e.g. from ``pd.cut``) keep their empty categories.
        score_threshold: count a box as detected only if its match scores at least this
            (exact: a score-first match never depends on lower-scored predictions). Needs
            a ``DetectionEval``.

    Returns:
        One row per group, sorted: ``group, n_gt, n_detected, recall`` (recall NaN for an
        empty group).

    Example:
        >>> recall_by_group([True, False, True], ["a", "a", "b"])
          group  n_gt  n_detected  recall
        0     a     2           1     0.5
        1     b     1           1     1.0
    """
    if isinstance(result, DetectionEval):
        detected = result.gt["matched"].to_numpy(bool)
        if score_threshold is not None:
            detected = detected & (result.gt["score"].to_numpy(np.float64) >= score_threshold)
        if isinstance(groups, str):
            if groups not in result.gt.columns:
                raise InputKeyError(f"groups: no column {groups!r} in the result's gt table")
            groups = result.gt[groups]
    else:
        if score_threshold is not None:
            raise InputError("score_threshold needs a DetectionEval (flags carry no scores)")
        if isinstance(groups, str):
            raise InputError("groups: a column name needs a DetectionEval")
        detected = np.asarray(result, dtype=bool).reshape(-1)
    groups = groups.reset_index(drop=True) if isinstance(groups, pd.Series) else groups
    if len(groups) != len(detected):
        raise InputError(f"groups has {len(groups)} entries for {len(detected)} ground-truth boxes")
    frame = pd.DataFrame({"group": groups, "detected": detected})
    out = (
        frame.groupby("group", sort=True, observed=False, dropna=False)["detected"]
        .agg(n_gt="size", n_detected="sum")
        .reset_index()
    )
    out["n_gt"] = out["n_gt"].astype(np.int64)
    out["n_detected"] = out["n_detected"].astype(np.int64)
    out["recall"] = out["n_detected"] / out["n_gt"].where(out["n_gt"] > 0)
    return out
