"""Analyses of rareness: recall per rareness bin (paper Fig. 2) and OOD separation (Fig. 6).

Both take rareness values of ground-truth objects (``-log p`` of their ROI-pooled features,
see ``rem_core.score``) and say how they relate to what a detector finds, or to whether an
object comes from another distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from rem_core.evaluate import DetectionEval, recall_by_group
from rem_core.score import rareness_percentile

__all__ = ["RecallCurve", "auroc", "recall_by_rareness"]


@dataclass(frozen=True)
class RecallCurve:
    """Recall of a detector per rareness-percentile bin.

    Attributes:
        bins: one row per bin: ``lower, upper`` (percentiles, rarest bin last),
            ``n_gt, n_detected, recall``.
        spearman: rank correlation between bin rareness and recall (negative when rarer
            objects are found less often), NaN if undefined.
        bin_width: the bins' width in percentiles.
    """

    bins: pd.DataFrame
    spearman: float
    bin_width: float


def recall_by_rareness(
    result: DetectionEval | ArrayLike,
    rareness: ArrayLike,
    *,
    bin_width: float = 2.0,
    score_threshold: float | None = None,
) -> RecallCurve:
    """Sort ground-truth objects by rareness into percentile bins; recall of each bin.

    Args:
        result: a ``DetectionEval`` or ``(G,)`` "detected" flags, as ``recall_by_group``.
        rareness: ``(G,)`` rareness of each ground-truth object, in the same order.
        bin_width: width of a bin in percentiles (paper: 2, i.e. 50 bins); must divide 100.
        score_threshold: as ``recall_by_group``.

    Returns:
        The recall per bin and its rank correlation with rareness.
    """
    if not 0 < bin_width <= 100 or abs(100 / bin_width - round(100 / bin_width)) > 1e-9:
        raise ValueError(f"bin_width: must divide 100, got {bin_width}")
    pct = rareness_percentile(rareness)
    edges = np.linspace(0, 100, round(100 / bin_width) + 1)
    groups = pd.cut(pct, edges, include_lowest=True)
    table = recall_by_group(result, groups, score_threshold=score_threshold)
    table.insert(0, "lower", [g.left for g in table["group"]])
    table.insert(1, "upper", [g.right for g in table["group"]])
    table = table.drop(columns="group").sort_values("lower").reset_index(drop=True)
    table["lower"] = table["lower"].clip(lower=0.0)
    valid = table["n_gt"] > 0
    rho = float("nan")
    if valid.sum() > 2 and table.loc[valid, "recall"].nunique() > 1:
        rho = float(spearmanr(table.loc[valid, "upper"], table.loc[valid, "recall"]).statistic)
    return RecallCurve(bins=table, spearman=rho, bin_width=bin_width)


def auroc(rareness_ood: ArrayLike, rareness_in: ArrayLike) -> float:
    """How well rareness separates an out-of-distribution set from in-distribution objects.

    Returns:
        Area under the ROC curve of rareness as a detector of the OOD set: 1 when every OOD
        object is rarer than every in-distribution one, 0.5 at chance.
    """
    a = np.asarray(rareness_ood, dtype=np.float64)
    b = np.asarray(rareness_in, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"auroc: both sets need objects (got {len(a)} and {len(b)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("auroc: rareness values must be finite")
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    return float(roc_auc_score(labels, np.r_[a, b]))
