"""Detection evaluation: rotated-box IoU, score-first matching, AP by size subset, recall.

Box convention (as Waymo, see ``rem_core.geometry.boxes``): an ``(N, 7)`` float array of
``center_x, center_y, center_z, length, width, height, heading`` in the vehicle frame,
metres and radians; geometric centre, ``length`` along the heading, heading in [-pi, pi).

The metric (``docs/evaluation.md`` has the worked definitions):

* **IoU**: bird's-eye-view IoU of the rotated rectangles (``bev_iou``), or 3D IoU of the
  upright boxes, BEV intersection area x vertical overlap / union volume (``iou_3d``).
* **Matching**, per frame and class: predictions in descending score order each take the
  still unmatched ground-truth box of highest IoU, if that IoU is >= the threshold (KITTI's
  score-first greedy matching, ``rem_core.evaluation.matching``'s ``"greedy"`` rule; the
  paper's Waymo vehicle AP uses 3D IoU 0.5).
* **AP**: the exact area under the max-precision envelope of the precision-recall curve,
  with one curve point per distinct score (``rem_core.evaluation.average_precision``).
* **Size subsets** (paper Table 3): a ground-truth box belongs to the subset of its own
  size (``rem_core.geometry.boxes.size_subset``); a matched prediction to its ground truth's subset;
  an unmatched prediction to the subset of its own predicted size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.evaluation.average_precision import PRCurve, precision_recall
from rem_core.evaluation.matching import BoxMatch, frame_keys, match_boxes
from rem_core.geometry import (
    IoUKind,
    as_boxes,
    size_subset,
)
from rem_core.schema import BOX_COLUMNS, SchemaError

__all__ = [
    "LEVEL_1_MIN_POINTS",
    "REPORTED_SUBSETS",
    "SIZE_SUBSETS",
    "DetectionEval",
    "evaluate_detections",
    "recall_by_group",
]

#: Size subsets reported by ``evaluate_detections``: every box, then by ``size_subset``.
SIZE_SUBSETS = ("all", "regular", "large", "small")
#: The subsets the paper's tables report vehicle AP for (Tables 2 and 3), in report order.
REPORTED_SUBSETS = ("all", "regular", "large")

#: Waymo's LEVEL_1 difficulty: boxes with more than 5 points. Sparser boxes are
#: "don't care" in the AP this project reports.
LEVEL_1_MIN_POINTS = 6


# --------------------------------------------------------------------------- evaluation


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
                raise ValueError(f"class_name: pick one of {list(self.classes)}")
            class_name = self.classes[0]
        if (class_name, subset) not in self.curves:
            raise KeyError(f"no curve for class {class_name!r}, subset {subset!r}")
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


_KEYS = ["segment_id", "frame_index", "class"]


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {', '.join(missing)}")
    for c in (*BOX_COLUMNS, "score"):
        if c in columns and not np.isfinite(table[c].to_numpy(np.float64)).all():
            row = int(np.flatnonzero(~np.isfinite(table[c].to_numpy(np.float64)))[0])
            raise SchemaError(f"{name}: column {c!r} has a non-finite value at row {row}")


def evaluate_detections(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    iou_threshold: float = 0.5,
    iou: IoUKind = "3d",
    classes: Sequence[str] = ("vehicle",),
    min_points: int = 1,
) -> DetectionEval:
    """Match predictions to ground truth frame by frame and compute AP by size subset.

    Matching (per segment, frame and class): predictions in descending score order (ties
    in row order) each take the unmatched ground-truth box of highest IoU, if that IoU is
    ``>= iou_threshold``; others are false positives. A prediction's match therefore never
    depends on lower-scored ones, so recall at any score threshold can be read off the
    result (``recall_by_group``).

    Size subsets (``SIZE_SUBSETS``, paper Table 3): a ground-truth box belongs to the subset of its
    own ``max(length, width, height)``; a matched prediction to its ground truth's subset; an
    unmatched prediction to the subset of its own predicted size. The AP of a subset ranks
    that subset's predictions against that subset's ground truth; ``"all"`` uses everything.
    AP is ``precision_recall``'s: exact area under the precision envelope.

    Ground-truth boxes with ``num_points < min_points`` (when the column exists) are not
    evaluated: they are neither counted nor matched, and a prediction left unmatched that
    overlaps one with IoU ``>= iou_threshold`` is ignored, neither true nor false positive
    (as KITTI's "don't care" regions); a detector cannot be asked to find what its sensor did
    not see. ``min_points=1`` ignores only empty boxes; ``min_points=6`` is Waymo's LEVEL_1
    (more than 5 points), the project's default for reported AP (``LEVEL_1_MIN_POINTS``).

    Args:
        detections: the DETECTIONS table, or any table with ``segment_id, frame_index,
            class``, the box columns (vehicle frame, metres, radians) and ``score``.
        ground_truth: the BOXES table, or any table with ``segment_id, frame_index, class``
            and the box columns; ``track_id, subtype, num_points, distance`` are optional.
        iou_threshold: minimum IoU of a match, in (0, 1].
        iou: ``"3d"`` (the paper's Waymo vehicle AP) or ``"bev"``.
        classes: classes to evaluate; predictions only match boxes of their own class.
        min_points: ground truth with fewer points is "don't care".

    Returns:
        A ``DetectionEval`` with AP, counts and per-box match tables.

    Raises:
        SchemaError: a table lacks a column or has a non-finite box or score.
        ValueError: a bad ``iou`` kind or threshold.
    """
    if iou not in ("3d", "bev"):
        raise ValueError(f"iou: expected '3d' or 'bev', got {iou!r}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold: expected a value in (0, 1], got {iou_threshold}")
    classes = (classes,) if isinstance(classes, str) else tuple(classes)
    if not classes:
        raise ValueError("classes: name at least one class")
    _require(detections, [*_KEYS, *BOX_COLUMNS, "score"], "detections")
    _require(ground_truth, [*_KEYS, *BOX_COLUMNS], "ground truth")

    pred_pos = np.flatnonzero(detections["class"].isin(classes).to_numpy())
    in_class = ground_truth["class"].isin(classes).to_numpy()
    empty = np.zeros(len(ground_truth), bool)
    if "num_points" in ground_truth.columns:
        empty = ground_truth["num_points"].to_numpy() < max(min_points, 1)
    gt_pos, void_pos = np.flatnonzero(in_class & ~empty), np.flatnonzero(in_class & empty)
    det, gt = detections.iloc[pred_pos], ground_truth.iloc[gt_pos]
    void = ground_truth.iloc[void_pos]
    n_pred, n_gt = len(det), len(gt)

    found, ignored = _match(det, gt, void, iou, iou_threshold)
    pred_gt, pred_iou, scores = found.match, found.iou, det["score"].to_numpy(np.float64)
    tp = pred_gt >= 0
    gt_pred = np.full(n_gt, -1, np.int64)
    gt_pred[pred_gt[tp]] = np.flatnonzero(tp)
    pred_max, gt_max = np.zeros(n_pred), np.zeros(n_gt)
    np.maximum.at(pred_max, found.pair_a, found.pair_iou)
    np.maximum.at(gt_max, found.pair_b, found.pair_iou)

    gt_subset = size_subset(*gt[["length", "width", "height"]].to_numpy(np.float64).T).astype(
        object
    )
    own_subset = size_subset(*det[["length", "width", "height"]].to_numpy(np.float64).T).astype(
        object
    )
    pred_subset = np.where(tp, _take(gt_subset, pred_gt, None), own_subset)

    pred_class = det["class"].to_numpy(object)
    gt_class = gt["class"].to_numpy(object)
    curves: dict[tuple[str, str], PRCurve] = {}
    for c in classes:
        for s in SIZE_SUBSETS:
            pm = (pred_class == c) & ~ignored & ((s == "all") | (pred_subset == s))
            gm = (gt_class == c) & ((s == "all") | (gt_subset == s))
            curves[c, s] = precision_recall(scores[pm], tp[pm], int(gm.sum()))

    matched = gt_pred >= 0
    gt_table = pd.DataFrame({"gt_index": gt_pos.astype(np.int64)})
    for col in [*_KEYS, "track_id", "subtype", "num_points", "distance"]:
        if col in gt.columns:
            gt_table[col] = gt[col].to_numpy()
    gt_table["subset"] = gt_subset.astype(str)
    gt_table["matched"] = matched
    gt_table["pred_index"] = _take(pred_pos, gt_pred, -1)
    gt_table["iou"] = _take(pred_iou, gt_pred, np.nan)
    gt_table["score"] = _take(scores, gt_pred, np.nan)
    gt_table["max_iou"] = gt_max

    pred_table = pd.DataFrame({"pred_index": pred_pos.astype(np.int64)})
    for col in [*_KEYS, "detection_id", "track_id"]:
        if col in det.columns:
            pred_table[col] = det[col].to_numpy()
    pred_table["score"] = scores
    pred_table["subset"] = pred_subset.astype(str)
    pred_table["tp"] = tp
    pred_table["ignored"] = ignored
    pred_table["gt_index"] = _take(gt_pos, pred_gt, -1)
    pred_table["iou"] = np.where(tp, pred_iou, np.nan)
    pred_table["max_iou"] = pred_max

    return DetectionEval(
        iou=iou,
        iou_threshold=float(iou_threshold),
        classes=classes,
        curves=MappingProxyType(curves),
        gt=gt_table,
        predictions=pred_table,
    )


def _match(
    det: pd.DataFrame, gt: pd.DataFrame, void: pd.DataFrame, iou: IoUKind, threshold: float
) -> tuple[BoxMatch, np.ndarray]:
    """Score-first matching of predictions to ground truth per segment, frame and class.

    Returns:
        The greedy ``BoxMatch`` of ``det``'s rows to ``gt``'s, and ``(P,)`` bool: unmatched
        predictions that overlap a "don't care" box of ``void`` with IoU ``>= threshold``.
    """
    pkey, gkey, vkey = frame_keys(det, gt, void, by=_KEYS)
    pboxes = as_boxes(det[BOX_COLUMNS].to_numpy(np.float64), "detections")
    gboxes = as_boxes(gt[BOX_COLUMNS].to_numpy(np.float64), "ground truth")
    scores = det["score"].to_numpy(np.float64)
    found = match_boxes(
        pboxes, gboxes, pkey, gkey, "greedy", min_iou=threshold, iou=iou, scores=scores
    )
    ignored = np.zeros(len(det), bool)
    free = np.flatnonzero(found.match < 0)
    if len(void) and len(free):
        vboxes = as_boxes(void[BOX_COLUMNS].to_numpy(np.float64), "ground truth")
        on_void = match_boxes(
            pboxes[free], vboxes, pkey[free], vkey, "best", min_iou=threshold, iou=iou
        )
        ignored[free] = on_void.match >= 0
    return found, ignored


def _take(values: np.ndarray, index: np.ndarray, fill: object) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, ``fill`` where it is -1."""
    out = np.full(len(index), fill, dtype=values.dtype)
    hit = index >= 0
    out[hit] = values[index[hit]]
    return out


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
                raise KeyError(f"groups: no column {groups!r} in the result's gt table")
            groups = result.gt[groups]
    else:
        if score_threshold is not None:
            raise ValueError("score_threshold needs a DetectionEval (flags carry no scores)")
        if isinstance(groups, str):
            raise ValueError("groups: a column name needs a DetectionEval")
        detected = np.asarray(result, dtype=bool).reshape(-1)
    groups = groups.reset_index(drop=True) if isinstance(groups, pd.Series) else groups
    if len(groups) != len(detected):
        raise ValueError(f"groups has {len(groups)} entries for {len(detected)} ground-truth boxes")
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
