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

from rem_core.config import VEHICLE_SUBTYPES
from rem_core.dataset import Dataset
from rem_core.evaluate import DetectionEval, recall_by_group
from rem_core.score import aggregate_tracks, rareness_percentile

__all__ = [
    "RecallCurve",
    "auroc",
    "log_prob_groups",
    "ood_aurocs",
    "recall_by_rareness",
    "track_table",
]


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
    from rem_core.boxes import size_subset

    lp = np.asarray(gt_log_prob, dtype=np.float64)
    if len(lp) != len(gt):
        raise ValueError(f"gt_log_prob: {len(lp)} values for {len(gt)} boxes")
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


def track_table(
    dataset: Dataset,
    detections: pd.DataFrame,
    log_prob: ArrayLike,
    *,
    gt: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per track, rarest first, described, with its rareness percentile.

    Args:
        dataset: the data set (its splits and, for ground truth, its track summaries).
        detections: the boxes to rank, with ``segment_id, track_id``: a detection run's
            detections (``num_points``, ``distance``, ``length``), or its ground-truth boxes
            when ``gt`` is that same table.
        log_prob: ``(N,)`` log p of each row of ``detections``.
        gt: pass the ground-truth table (``label_noise``, ``noise_kind``) to describe
            ground-truth tracks from the data set's own summaries.

    Returns:
        ``aggregate_tracks``'s columns (``segment_id, track_id, rareness, ...``), then
        ``class, subtype, length, max_points, min_distance, label_noise_boxes, noise_kinds``
        (the kinds of the track's label errors, ", "-joined; "" for detections),
        ``family`` (``VEHICLE_SUBTYPES``), ``split`` and ``percentile``.
    """
    keys = ["segment_id", "track_id"]
    table = aggregate_tracks(detections, log_prob)
    if gt is not None:
        info = dataset.tracks.set_index(keys)[
            ["class", "subtype", "length", "max_points", "min_distance", "label_noise_boxes"]
        ]
        table = table.join(info, on=keys)
        noisy = gt[gt["label_noise"].to_numpy(bool)]
        kinds = noisy.groupby(keys)["noise_kind"].agg(
            lambda k: ", ".join(sorted(set(k) - {""})) or "label noise"
        )
        table = table.join(kinds.rename("noise_kinds"), on=keys)
    else:
        extra = detections.groupby(keys).agg(
            max_points=("num_points", "max"),
            min_distance=("distance", "min"),
            length=("length", "median"),
        )
        table = table.join(extra, on=keys)
        table["class"], table["subtype"], table["label_noise_boxes"] = "vehicle", "", 0
        table["noise_kinds"] = ""
    table["noise_kinds"] = table["noise_kinds"].fillna("")
    table["family"] = table["subtype"].map(VEHICLE_SUBTYPES).fillna("")
    table["split"] = table["segment_id"].map(dataset.segments.set_index("segment_id")["split"])
    table["percentile"] = rareness_percentile(table["rareness"])
    return table
