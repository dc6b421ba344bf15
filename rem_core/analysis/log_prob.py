"""Log-probability by group (paper Fig. 6): how well rareness tells objects of another
distribution (large vehicles, another region's, pedestrians) from regular vehicles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

from rem_core.errors import InputError
from rem_core.geometry import size_subset

__all__ = ["auroc", "log_prob_groups", "ood_aurocs"]


def auroc(rareness_ood: ArrayLike, rareness_in: ArrayLike) -> float:
    """How well rareness separates an out-of-distribution set from in-distribution objects.

    Returns:
        Area under the ROC curve of rareness as a detector of the OOD set: 1 when every OOD
        object is rarer than every in-distribution one, 0.5 at chance.
    """
    a = np.asarray(rareness_ood, dtype=np.float64)
    b = np.asarray(rareness_in, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise InputError(f"auroc: both sets need objects (got {len(a)} and {len(b)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("auroc: rareness values must be finite")
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    return float(roc_auc_score(labels, np.r_[a, b]))


def log_prob_groups(gt: pd.DataFrame, gt_log_prob: ArrayLike, splits: pd.Series) -> pd.DataFrame:
    """Log-probability of every ground-truth object with the groups of paper Fig. 6.

    Args:
        gt: ground-truth boxes (``BOXES`` columns) in the row order of ``gt_log_prob``.
        gt_log_prob: ``(K,)`` log-density of each box's features.
        splits: the split of each segment, indexed by ``segment_id``.

    Returns:
        One row per box: ``segment_id, track_id, class, subtype, split, size`` (Regular /
        Large / small, vehicles only), ``set`` (``validation`` vehicles, ``large`` vehicles
        of validation, ``other region`` vehicles of the ``ood`` split, ``pedestrian`` of
        validation, or ``""``), and ``log_prob``.
    """
    lp = np.asarray(gt_log_prob, dtype=np.float64)
    if len(lp) != len(gt):
        raise InputError(f"gt_log_prob: {len(lp)} values for {len(gt)} boxes")
    out = gt[["segment_id", "track_id", "class", "subtype"]].reset_index(drop=True).copy()
    out["split"] = out["segment_id"].map(splits).to_numpy()
    vehicle = (out["class"] == "vehicle").to_numpy()
    size = size_subset(gt["length"], gt["width"], gt["height"])
    out["size"] = np.where(vehicle, size, "")
    val = (out["split"] == "validation").to_numpy()
    out["set"] = np.select(
        [
            vehicle & val & (size == "regular"),
            vehicle & val & (size == "large"),
            vehicle & (out["split"] == "ood").to_numpy(),
            (out["class"] == "pedestrian").to_numpy() & val,
        ],
        ["validation", "large", "other region", "pedestrian"],
        default="",
    )
    out["log_prob"] = lp
    return out


def ood_aurocs(groups: pd.DataFrame) -> dict[str, float]:
    """AUROC of rareness (``-log p``) for each set of ``log_prob_groups`` against the
    validation set's regular vehicles: ``large``, ``other region``, ``pedestrian``."""
    reference = -groups.loc[groups["set"] == "validation", "log_prob"].to_numpy()
    out = {}
    for name in ("large", "other region", "pedestrian"):
        values = -groups.loc[groups["set"] == name, "log_prob"].to_numpy()
        out[name] = auroc(values, reference) if len(values) and len(reference) else float("nan")
    return out
