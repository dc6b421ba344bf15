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
  size (``rem_core.geometry.size_subset``); a matched prediction to its ground truth's subset;
  an unmatched prediction to the subset of its own predicted size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.evaluation.average_precision import PRCurve, precision_recall
from rem_core.evaluation.matching import BoxMatch, frame_keys, match_boxes
from rem_core.evaluation.results import SIZE_SUBSETS, DetectionEval
from rem_core.geometry import (
    IoUKind,
    as_boxes,
    size_subset,
)
from rem_core.schema import BOX_COLUMNS, SchemaError

__all__ = ["evaluate_detections"]

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
    classes = _check_arguments(detections, ground_truth, iou, iou_threshold, classes)
    rows = _select_rows(detections, ground_truth, classes, min_points)
    matches = _match_rows(rows, iou, iou_threshold)
    return DetectionEval(
        iou=iou,
        iou_threshold=float(iou_threshold),
        classes=classes,
        curves=MappingProxyType(_curves(rows, matches, classes)),
        gt=_gt_table(rows, matches),
        predictions=_prediction_table(rows, matches),
    )


@dataclass(frozen=True, eq=False)
class _Rows:
    """The rows ``evaluate_detections`` evaluates, and the "don't care" boxes.

    Attributes:
        pred_pos: ``(P,)`` row positions of the evaluated predictions in the detections.
        gt_pos: ``(G,)`` row positions of the evaluated boxes in the ground truth.
        det: the ``P`` evaluated predictions.
        gt: the ``G`` evaluated ground-truth boxes.
        void: the "don't care" ground-truth boxes (too few points).
    """

    pred_pos: np.ndarray
    gt_pos: np.ndarray
    det: pd.DataFrame
    gt: pd.DataFrame
    void: pd.DataFrame


@dataclass(frozen=True, eq=False)
class _Matches:
    """How the evaluated rows matched, per prediction and per ground-truth box.

    Attributes:
        scores: ``(P,)`` float64 prediction scores.
        tp: ``(P,)`` bool, the prediction matched a box.
        ignored: ``(P,)`` bool, unmatched but on a "don't care" box.
        pred_gt: ``(P,)`` matched box's position in ``_Rows.gt``, -1 if none.
        pred_iou: ``(P,)`` IoU with the matched box.
        pred_max: ``(P,)`` max IoU with any box of the prediction's frame and class.
        pred_subset: ``(P,)`` object size subset of each prediction.
        gt_pred: ``(G,)`` matched prediction's position in ``_Rows.det``, -1 if none.
        gt_max: ``(G,)`` max IoU with any prediction of the box's frame and class.
        gt_subset: ``(G,)`` object size subset of each box.
    """

    scores: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    pred_gt: np.ndarray
    pred_iou: np.ndarray
    pred_max: np.ndarray
    pred_subset: np.ndarray
    gt_pred: np.ndarray
    gt_max: np.ndarray
    gt_subset: np.ndarray


def _check_arguments(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    iou: IoUKind,
    iou_threshold: float,
    classes: Sequence[str],
) -> tuple[str, ...]:
    """Check the options and the tables' columns; return the classes as a tuple."""
    if iou not in ("3d", "bev"):
        raise InputError(f"iou: expected '3d' or 'bev', got {iou!r}")
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"iou_threshold: expected a value in (0, 1], got {iou_threshold}")
    classes = (classes,) if isinstance(classes, str) else tuple(classes)
    if not classes:
        raise InputError("classes: name at least one class")
    _require(detections, [*_KEYS, *BOX_COLUMNS, "score"], "detections")
    _require(ground_truth, [*_KEYS, *BOX_COLUMNS], "ground truth")
    return classes


def _select_rows(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    classes: tuple[str, ...],
    min_points: int,
) -> _Rows:
    """The rows of the classes, ground truth with fewer than ``min_points`` set apart."""
    pred_pos = np.flatnonzero(detections["class"].isin(classes).to_numpy())
    in_class = ground_truth["class"].isin(classes).to_numpy()
    empty = np.zeros(len(ground_truth), bool)
    if "num_points" in ground_truth.columns:
        empty = ground_truth["num_points"].to_numpy() < max(min_points, 1)
    gt_pos, void_pos = np.flatnonzero(in_class & ~empty), np.flatnonzero(in_class & empty)
    det, gt = detections.iloc[pred_pos], ground_truth.iloc[gt_pos]
    void = ground_truth.iloc[void_pos]
    return _Rows(pred_pos=pred_pos, gt_pos=gt_pos, det=det, gt=gt, void=void)


def _match_rows(rows: _Rows, iou: IoUKind, threshold: float) -> _Matches:
    """Match the rows (``_match``), with each side's best IoU and size subset."""
    det, gt = rows.det, rows.gt
    n_pred, n_gt = len(det), len(gt)
    found, ignored = _match(det, gt, rows.void, iou, threshold)
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
    return _Matches(
        scores=scores,
        tp=tp,
        ignored=ignored,
        pred_gt=pred_gt,
        pred_iou=pred_iou,
        pred_max=pred_max,
        pred_subset=pred_subset,
        gt_pred=gt_pred,
        gt_max=gt_max,
        gt_subset=gt_subset,
    )


def _curves(
    rows: _Rows, matches: _Matches, classes: tuple[str, ...]
) -> dict[tuple[str, str], PRCurve]:
    """The precision-recall curve per class and size subset, "don't care" predictions left out."""
    pred_class = rows.det["class"].to_numpy(object)
    gt_class = rows.gt["class"].to_numpy(object)
    curves: dict[tuple[str, str], PRCurve] = {}
    for c in classes:
        for s in SIZE_SUBSETS:
            pm = (pred_class == c) & ~matches.ignored & ((s == "all") | (matches.pred_subset == s))
            gm = (gt_class == c) & ((s == "all") | (matches.gt_subset == s))
            curves[c, s] = precision_recall(matches.scores[pm], matches.tp[pm], int(gm.sum()))
    return curves


def _gt_table(rows: _Rows, matches: _Matches) -> pd.DataFrame:
    """One row per evaluated ground-truth box: its keys, subset and match (``DetectionEval.gt``)."""
    gt, gt_pred = rows.gt, matches.gt_pred
    table = pd.DataFrame({"gt_index": rows.gt_pos.astype(np.int64)})
    for col in [*_KEYS, "track_id", "subtype", "num_points", "distance"]:
        if col in gt.columns:
            table[col] = gt[col].to_numpy()
    table["subset"] = matches.gt_subset.astype(str)
    table["matched"] = gt_pred >= 0
    table["pred_index"] = _take(rows.pred_pos, gt_pred, -1)
    table["iou"] = _take(matches.pred_iou, gt_pred, np.nan)
    table["score"] = _take(matches.scores, gt_pred, np.nan)
    table["max_iou"] = matches.gt_max
    return table


def _prediction_table(rows: _Rows, matches: _Matches) -> pd.DataFrame:
    """One row per evaluated prediction: keys, score, subset and match (``.predictions``)."""
    det, tp = rows.det, matches.tp
    table = pd.DataFrame({"pred_index": rows.pred_pos.astype(np.int64)})
    for col in [*_KEYS, "detection_id", "track_id"]:
        if col in det.columns:
            table[col] = det[col].to_numpy()
    table["score"] = matches.scores
    table["subset"] = matches.pred_subset.astype(str)
    table["tp"] = tp
    table["ignored"] = matches.ignored
    table["gt_index"] = _take(rows.gt_pos, matches.pred_gt, -1)
    table["iou"] = np.where(tp, matches.pred_iou, np.nan)
    table["max_iou"] = matches.pred_max
    return table


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
