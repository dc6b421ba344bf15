"""Rare beyond size (paper Fig. 5): does rareness find rare vehicles a size rule would miss?

The paper shows that D-REM's rarest objects are not only the large ones: irregular vehicles
of ordinary size and mislabelled boxes rank among them too, and label errors make up much of
the rarest few percent. This module measures that on ground-truth vehicle boxes whose
features the density model scored (``RarenessRun.gt_log_prob``):

* :func:`size_log_prob`: a *size-only* density, a full-covariance Gaussian on
  ``log(length, width, height)``; the baseline "rare = unusually sized".
* :func:`rare_group_aurocs`: for every rare group found in the data (each vehicle subtype
  whose family in ``VEHICLE_SUBTYPES`` is not ``"regular"``; each non-empty ``noise_kind``;
  all label noise together), the AUROC of D-REM rareness and of size-only rareness at
  telling the group's boxes from regular, non-noisy vehicle boxes.
* ``rem_core.analysis.label_noise_in_rarest``: the share of label-noise vehicle boxes
  among the rarest 5% (the paper: at least half of them), and the share of the rarest 5%
  that is label noise.
* :func:`ks_train_val`: how far the training pool's log p lies from validation's (a model
  that memorised its training pool scores it higher than unseen data).

Everything here works on boxes, not tracks: label noise is drawn per box, and a track's
other boxes are usually clean. Boxes of one track are strongly correlated, so counts of boxes
overstate how much independent evidence a group holds.

Example:
    >>> import numpy as np, pandas as pd
    >>> boxes = pd.DataFrame({"length": [4.5, 4.7, 4.6, 4.4], "width": [1.8, 1.9, 1.85, 1.8],
    ...                       "height": [1.5, 1.4, 1.6, 1.45]})
    >>> size_log_prob(boxes, boxes).shape
    (4,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import ks_2samp

from rem_core.analysis.log_prob import auroc
from rem_core.config import VEHICLE_SUBTYPES
from rem_core.errors import InputError

__all__ = [
    "EVAL_SPLITS",
    "MIN_GROUP_BOXES",
    "NOISE_ALL",
    "TRAIN_SPLITS",
    "KsTrainVal",
    "RareGroups",
    "ks_train_val",
    "rare_group_aurocs",
    "regular_vehicles",
    "size_log_prob",
    "size_train_boxes",
]

#: Splits the rare groups are measured on: held-out validation and the unlabelled pool
#: mining searches (validation alone holds only a few dozen boxes of most irregular subtypes).
EVAL_SPLITS: tuple[str, ...] = ("validation", "unlabelled")

#: The training pool (``WorldConfig``): the labelled source pool and the unlabelled pool,
#: which is also where the default ``RarenessConfig.fit_splits`` fits D-REM's density.
TRAIN_SPLITS: tuple[str, ...] = ("source", "unlabelled")

#: Groups with fewer boxes than this get NaN AUROCs (their count is still reported).
MIN_GROUP_BOXES = 20

#: Name of the group of every label-noise vehicle box, whatever its kind.
NOISE_ALL = "label noise (all)"

_SIZE = ["length", "width", "height"]


def regular_vehicles(gt: pd.DataFrame) -> np.ndarray:
    """``(K,)`` bool: vehicle boxes of a subtype of family ``"regular"`` in
    ``VEHICLE_SUBTYPES`` that are not label noise: the reference every rare group is told
    apart from. Subtypes unknown to ``VEHICLE_SUBTYPES`` (imported data) are not regular."""
    vehicle = (gt["class"] == "vehicle").to_numpy()
    family = gt["subtype"].astype(str).map(VEHICLE_SUBTYPES).to_numpy()
    return vehicle & (family == "regular") & ~gt["label_noise"].to_numpy(bool)


def size_train_boxes(
    gt: pd.DataFrame, splits: pd.Series, fit_splits: tuple[str, ...] = TRAIN_SPLITS
) -> pd.DataFrame:
    """The boxes :func:`size_log_prob` is fitted on: the regular, non-noisy ground-truth
    vehicle boxes (:func:`regular_vehicles`) of segments in ``fit_splits``.

    D-REM's density is fitted on *detections* of ``RarenessConfig.fit_splits`` (by default
    the training pool, source and unlabelled), not on ground truth, so "the same boxes" is
    not defined; these are the ground-truth boxes of the same splits. Unlike D-REM, the size
    model is told which boxes are regular (it never sees a bus or a label error), which
    makes it a *stronger* baseline than a size density fitted blindly on all boxes.

    Args:
        gt: ground-truth boxes (``BOXES`` columns).
        splits: the split of each segment, indexed by ``segment_id``.
        fit_splits: the splits to take boxes from.
    """
    in_splits = gt["segment_id"].map(splits).isin(fit_splits).to_numpy()
    return gt[regular_vehicles(gt) & in_splits]


def _log_size(boxes: pd.DataFrame, name: str) -> np.ndarray:
    sizes = boxes[_SIZE].to_numpy(np.float64)
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise InputError(f"{name}: length, width and height must be finite and > 0 metres")
    return np.log(sizes)


def size_log_prob(train_boxes: pd.DataFrame, boxes: pd.DataFrame) -> np.ndarray:
    """Size-only log-density: a full-covariance Gaussian fitted on ``log(length, width,
    height)`` of ``train_boxes`` (every row given; :func:`size_train_boxes` picks the
    training pool's regular vehicles), evaluated on ``boxes``.

    The density is of the log-sizes (nats, in log-metre space), so it ranks a box by how
    many standard deviations its shape lies from the typical one, scale-free: a box 20% too
    long counts the same for a car and a truck.

    Args:
        train_boxes: at least 4 boxes with ``length, width, height`` in metres.
        boxes: the boxes to score, same columns.

    Returns:
        ``(len(boxes),)`` float64 log p of each box's log-size; ``-log p`` is its size-only
        rareness.
    """
    # Lazily: rem_core.density loads torch, which the rest of the analyses (and the pages
    # that show them) do not need.
    from rem_core.density import GaussianDensity

    train = _log_size(train_boxes, "train_boxes")
    if len(train) < 4:
        raise InputError(f"train_boxes: a 3-D Gaussian needs 4 boxes at least, got {len(train)}")
    model = GaussianDensity(reg=1e-6).fit(train)
    return model.score_samples(_log_size(boxes, "boxes"))


def as_log_prob(gt: pd.DataFrame, values: ArrayLike, name: str) -> np.ndarray:
    lp = np.asarray(values, dtype=np.float64)
    if lp.shape != (len(gt),):
        raise InputError(f"{name}: shape {lp.shape} for {len(gt)} boxes; one value per box")
    return lp


@dataclass(frozen=True)
class RareGroups:
    """AUROCs of D-REM and size-only rareness per rare group (:func:`rare_group_aurocs`).

    Attributes:
        table: one row per group: ``group`` (a subtype, a ``noise_kind`` or ``NOISE_ALL``),
            ``kind`` (``"subtype"`` or ``"label noise"``), ``family`` (the subtype's family
            in ``VEHICLE_SUBTYPES``, or ``"label noise"``), ``n`` (boxes in the measured
            splits), ``d_rem`` and ``size_only`` (AUROC of ``-gt_log_prob`` and of size-only
            ``-log p`` against the reference; NaN below ``min_boxes``), ``regular_size``
            (the group's median length, width and height each within the 1st-99th
            percentile of the reference's), ``median_length, median_width, median_height``
            (metres, NaN for an empty group).
        n_reference: regular, non-noisy vehicle boxes in the measured splits.
        eval_splits: the splits measured.
        min_boxes: the group size below which AUROCs are NaN.
    """

    table: pd.DataFrame
    n_reference: int
    eval_splits: tuple[str, ...]
    min_boxes: int

    def beyond_size(self, margin: float = 0.1) -> list[str]:
        """Groups rareness tells apart at least ``margin`` AUROC better than size does."""
        t = self.table
        better = (t["d_rem"] - t["size_only"]) >= margin
        return t.loc[better.fillna(False), "group"].tolist()

    def as_dict(self) -> dict[str, dict[str, float | int | bool]]:
        """``{group: {"d_rem", "size_only", "n", "regular_size"}}``, JSON-ready."""
        return {
            row.group: {
                "d_rem": float(row.d_rem),
                "size_only": float(row.size_only),
                "n": int(row.n),
                "regular_size": bool(row.regular_size),
            }
            for row in self.table.itertuples(index=False)
        }


def rare_group_aurocs(
    gt: pd.DataFrame,
    gt_log_prob: ArrayLike,
    size_log_prob: ArrayLike,
    splits: pd.Series,
    *,
    eval_splits: tuple[str, ...] = EVAL_SPLITS,
    min_boxes: int = MIN_GROUP_BOXES,
) -> RareGroups:
    """For every rare group, how well D-REM and size-only rareness find its boxes.

    Groups come from the data: each subtype of a vehicle box whose family in
    ``VEHICLE_SUBTYPES`` is known and not ``"regular"`` (its non-noisy boxes), each non-empty
    ``noise_kind`` of a vehicle box (its boxes, any subtype), and ``NOISE_ALL`` (every
    label-noise vehicle box). Each is compared with the reference, :func:`regular_vehicles`,
    on the boxes of segments in ``eval_splits``. Boxes without a D-REM log p (NaN: imported
    features that missed them) are left out of both measurements.

    Args:
        gt: ground-truth boxes (``BOXES`` columns) in the row order of the log p arrays.
        gt_log_prob: ``(K,)`` D-REM log-density of each box's features.
        size_log_prob: ``(K,)`` size-only log-density of each box (:func:`size_log_prob`).
        splits: the split of each segment, indexed by ``segment_id``.
        eval_splits: the splits to measure on.
        min_boxes: groups with fewer boxes get NaN AUROCs.

    Returns:
        The table of groups, rare subtypes first (by family, then name), then each kind of
        label noise, then ``NOISE_ALL``.
    """
    lp = as_log_prob(gt, gt_log_prob, "gt_log_prob")
    size_lp = as_log_prob(gt, size_log_prob, "size_log_prob")
    measured = gt["segment_id"].map(splits).isin(eval_splits).to_numpy() & np.isfinite(lp)
    reference = regular_vehicles(gt) & measured
    ref_sizes = gt.loc[reference, _SIZE].to_numpy(np.float64)
    if len(ref_sizes):
        low, high = np.percentile(ref_sizes, [1, 99], axis=0)
    else:
        low = high = np.full(3, np.nan)
    rows = []
    for name, kind, fam, member in _rare_groups(gt):
        rows_in = member & measured
        n = int(rows_in.sum())
        medians = (
            np.median(gt.loc[rows_in, _SIZE].to_numpy(np.float64), axis=0)
            if n
            else np.full(3, np.nan)
        )
        enough = n >= min_boxes and reference.any()
        rows.append(
            {
                "group": name,
                "kind": kind,
                "family": fam,
                "n": n,
                "d_rem": auroc(-lp[rows_in], -lp[reference]) if enough else math.nan,
                "size_only": auroc(-size_lp[rows_in], -size_lp[reference]) if enough else math.nan,
                "regular_size": bool(n and ((medians >= low) & (medians <= high)).all()),
                "median_length": medians[0],
                "median_width": medians[1],
                "median_height": medians[2],
            }
        )
    columns = [
        "group", "kind", "family", "n", "d_rem", "size_only", "regular_size",
        "median_length", "median_width", "median_height",
    ]  # fmt: skip
    return RareGroups(
        table=pd.DataFrame(rows, columns=columns),
        n_reference=int(reference.sum()),
        eval_splits=tuple(eval_splits),
        min_boxes=min_boxes,
    )


def _rare_groups(gt: pd.DataFrame) -> list[tuple[str, str, str, np.ndarray]]:
    """The rare groups in ``gt``, each ``(name, kind, family, member mask)``: every rare
    subtype (by family, then name; its non-noisy vehicle boxes), each kind of label noise,
    then ``NOISE_ALL``."""
    vehicle = (gt["class"] == "vehicle").to_numpy()
    noisy = gt["label_noise"].to_numpy(bool)
    subtype = gt["subtype"].astype(str).to_numpy()
    kinds = gt["noise_kind"].astype(str).to_numpy()
    family = pd.Series(subtype).map(VEHICLE_SUBTYPES).fillna("").to_numpy()
    groups: list[tuple[str, str, str, np.ndarray]] = []
    pairs = set(zip(family[vehicle], subtype[vehicle], strict=True))
    rare = sorted((fam, name) for fam, name in pairs if fam not in ("", "regular"))
    for fam, name in rare:
        groups.append((name, "subtype", fam, vehicle & (subtype == name) & ~noisy))
    for kind in sorted(set(kinds[vehicle & noisy]) - {""}):
        groups.append((kind, "label noise", "label noise", vehicle & noisy & (kinds == kind)))
    if (vehicle & noisy).any():
        groups.append((NOISE_ALL, "label noise", "label noise", vehicle & noisy))
    return groups


@dataclass(frozen=True)
class KsTrainVal:
    """Two-sample Kolmogorov-Smirnov statistic between two sets of log p (:func:`ks_train_val`).

    Attributes:
        statistic: the largest gap between the two empirical CDFs, in [0, 1]; NaN when a
            set is empty. No p-value: boxes of one track are not independent samples.
        n_train: training-pool boxes compared.
        n_val: validation boxes compared.
    """

    statistic: float
    n_train: int
    n_val: int


def ks_train_val(
    gt: pd.DataFrame,
    gt_log_prob: ArrayLike,
    splits: pd.Series,
    *,
    train_splits: tuple[str, ...] = TRAIN_SPLITS,
    val_splits: tuple[str, ...] = ("validation",),
) -> KsTrainVal:
    """KS statistic (``scipy.stats.ks_2samp``) between the D-REM log p of the training
    pool's regular, non-noisy vehicle boxes and the validation split's.

    Both pools come from the same world, so a large statistic says the density model scores
    the data it was fitted on differently from unseen data (it overfitted), not that the
    data differ.

    Args:
        gt: ground-truth boxes (``BOXES`` columns) in the row order of ``gt_log_prob``.
        gt_log_prob: ``(K,)`` D-REM log-density of each box's features.
        splits: the split of each segment, indexed by ``segment_id``.
        train_splits: the training pool's splits.
        val_splits: the held-out splits.
    """
    lp = as_log_prob(gt, gt_log_prob, "gt_log_prob")
    split = gt["segment_id"].map(splits)
    clean = regular_vehicles(gt) & np.isfinite(lp)
    train = lp[clean & split.isin(train_splits).to_numpy()]
    val = lp[clean & split.isin(val_splits).to_numpy()]
    if len(train) == 0 or len(val) == 0:
        return KsTrainVal(math.nan, len(train), len(val))
    return KsTrainVal(float(ks_2samp(train, val).statistic), len(train), len(val))
