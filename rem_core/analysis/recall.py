"""Recall per rareness bin (paper Fig. 2): how often a detector finds objects as rare as these.

It takes rareness values of ground-truth objects (``-log p`` of their ROI-pooled features,
see ``rem_core.mining``) and the detector's evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import spearmanr

from rem_core.errors import InputError
from rem_core.evaluation import DetectionEval, recall_by_group
from rem_core.mining import rareness_percentile

__all__ = ["RecallCurve", "recall_by_rareness"]


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
        raise InputError(f"bin_width: must divide 100, got {bin_width}")
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
