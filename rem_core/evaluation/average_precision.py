"""Average precision: the precision-recall curve of ranked predictions and the area under it.

``AP = sum_k (r_k - r_{k-1}) * max_{j >= k} p_j`` with ``r_{-1} = 0``: the exact area under
the max-precision envelope, one curve point per distinct score (every-point interpolation,
as PASCAL VOC since 2010). Which prediction is a true positive is decided before, by
matching (``rem_core.evaluation.evaluate_detections``, ``rem_core.evaluation.matching``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from rem_core.errors import InputError

__all__ = ["PRCurve", "precision_recall"]


@dataclass(frozen=True, eq=False)
class PRCurve:
    """Precision and recall of a ranked list of predictions, and its AP.

    One point per distinct score, highest score first: point ``k`` counts every prediction
    with ``score >= thresholds[k]`` (tied scores enter together, so the curve does not
    depend on row order).

    Attributes:
        thresholds: ``(K,)`` float64 distinct scores, descending.
        precision: ``(K,)`` float64 true positives / predictions kept.
        recall: ``(K,)`` float64 true positives / ``n_gt`` (NaN when ``n_gt == 0``).
        n_gt: ground-truth boxes.
        n_pred: predictions.
        n_tp: true positives among them.
        ap: area under the max-precision envelope, in [0, 1]; 0 without predictions, NaN
            without ground truth (undefined).
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    n_gt: int
    n_pred: int
    n_tp: int
    ap: float


def precision_recall(scores: ArrayLike, is_tp: ArrayLike, n_gt: int) -> PRCurve:
    """The precision-recall curve of matched predictions and its average precision.

    ``AP = sum_k (r_k - r_{k-1}) * max_{j >= k} p_j`` with ``r_{-1} = 0``: the exact area
    under the precision envelope (every-point interpolation, as PASCAL VOC since 2010).

    Args:
        scores: ``(P,)`` prediction confidences.
        is_tp: ``(P,)`` bool, whether each prediction matched a ground-truth box.
        n_gt: number of ground-truth boxes (true positives can be at most this many).

    Returns:
        The curve; ``.ap`` is the average precision.

    Example:
        >>> precision_recall([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3).ap
        0.5555555555555556
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if len(scores) != len(tp):
        raise InputError(f"scores ({len(scores)}) and is_tp ({len(tp)}) differ in length")
    n_tp = int(tp.sum())
    if n_tp > n_gt:
        raise InputError(f"{n_tp} true positives but only n_gt={n_gt} ground-truth boxes")
    order = np.argsort(-scores, kind="stable")
    s, cum_tp = scores[order], np.cumsum(tp[order])
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.empty(0, int)
    precision = cum_tp[last] / (last + 1.0)
    if n_gt == 0:
        recall = np.full(len(last), np.nan)
        ap = float("nan")
    else:
        recall = cum_tp[last] / float(n_gt)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        ap = float(np.sum(np.diff(recall, prepend=0.0) * envelope))
    return PRCurve(
        thresholds=s[last],
        precision=precision,
        recall=recall,
        n_gt=int(n_gt),
        n_pred=len(scores),
        n_tp=n_tp,
        ap=ap,
    )
