"""Label noise among the rarest boxes (paper Fig. 5): the share of label-noise vehicle boxes
that rank among the rarest few percent."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.analysis.rare_groups import EVAL_SPLITS, as_log_prob
from rem_core.errors import InputError

__all__ = ["RarestNoise", "label_noise_in_rarest"]


@dataclass(frozen=True)
class RarestNoise:
    """Label noise among the rarest vehicle boxes (:func:`label_noise_in_rarest`).

    Attributes:
        share: the rarest share looked at (0.05: the rarest 5%).
        n_vehicles: vehicle boxes ranked (with a finite log p).
        n_rarest: boxes at least as rare as the ``ceil(share * n_vehicles)``-th rarest
            (more than that only on ties).
        n_noise: label-noise boxes among the vehicle boxes.
        n_noise_in_rarest: label-noise boxes among the rarest.
        noise_in_rarest: ``n_noise_in_rarest / n_noise``, the share of label-noise boxes
            that are among the rarest (paper Fig. 5: >= 0.5 at a 5% share; ``share`` at
            chance); NaN without label noise.
        rarest_that_are_noise: ``n_noise_in_rarest / n_rarest``, the share of the rarest
            that is label noise (``base_rate`` at chance); NaN without vehicles.
        base_rate: ``n_noise / n_vehicles``.
    """

    share: float
    n_vehicles: int
    n_rarest: int
    n_noise: int
    n_noise_in_rarest: int
    noise_in_rarest: float
    rarest_that_are_noise: float
    base_rate: float


def label_noise_in_rarest(
    gt: pd.DataFrame,
    gt_log_prob: ArrayLike,
    share: float = 0.05,
    splits: pd.Series | None = None,
    eval_splits: tuple[str, ...] = EVAL_SPLITS,
    *,
    rank_by: ArrayLike | None = None,
) -> RarestNoise:
    """Of all label-noise vehicle boxes, the fraction whose rareness is among the rarest
    ``share`` of all vehicle boxes of the same splits.

    Vehicle boxes are ranked by ``-gt_log_prob`` (boxes without a log p left out); the rarest
    are the ``k = ceil(share * n)`` rarest, plus any tied with the ``k``-th. With
    ``rank_by``, the same boxes are ranked by that score instead (highest first, NaN last:
    a box it does not score counts as not found), e.g. ``box_in_track(...).score``.

    Args:
        gt: ground-truth boxes (``BOXES`` columns: ``class``, ``label_noise``,
            ``segment_id``) in the row order of ``gt_log_prob``.
        gt_log_prob: ``(K,)`` D-REM log-density of each box's features.
        share: the rarest share, in (0, 1].
        splits: the split of each segment, indexed by ``segment_id``; None ranks every
            vehicle box of ``gt`` together.
        eval_splits: with ``splits``, the splits whose boxes are ranked (together).
        rank_by: ``(K,)`` another score to rank the boxes by, higher first.
    """
    if not 0 < share <= 1:
        raise InputError(f"share: must be in (0, 1], got {share}")
    lp = as_log_prob(gt, gt_log_prob, "gt_log_prob")
    keep = (gt["class"] == "vehicle").to_numpy() & np.isfinite(lp)
    if splits is not None:
        keep &= gt["segment_id"].map(splits).isin(eval_splits).to_numpy()
    if rank_by is None:
        rareness = -lp[keep]
    else:
        by = np.asarray(rank_by, dtype=np.float64)
        if by.shape != lp.shape:
            raise InputError(f"rank_by: {by.shape} values for {len(lp)} boxes")
        rareness = np.nan_to_num(by[keep], nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    noisy = gt["label_noise"].to_numpy(bool)[keep]
    n, n_noise = len(rareness), int(noisy.sum())
    if n == 0:
        return RarestNoise(share, 0, 0, 0, 0, math.nan, math.nan, math.nan)
    k = math.ceil(share * n - 1e-9)
    threshold = np.partition(rareness, n - k)[n - k]  # the k-th largest
    rarest = (rareness >= threshold) & (rareness > -np.inf)  # an unscored box is never found
    caught = int((rarest & noisy).sum())
    return RarestNoise(
        share=share,
        n_vehicles=n,
        n_rarest=int(rarest.sum()),
        n_noise=n_noise,
        n_noise_in_rarest=caught,
        noise_in_rarest=caught / n_noise if n_noise else math.nan,
        rarest_that_are_noise=caught / int(rarest.sum()),
        base_rate=n_noise / n,
    )
