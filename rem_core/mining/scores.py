"""Rareness scores: D-REM, M-REM, MD-REM, and their aggregation over tracks (paper section 3).

* D-REM (eq. 8): ``r = -log p(z)``, the negative log-density of an object's standardised
  features under the density model fitted on the labelled data.
* M-REM (eqs. 9-11): ``r = h * v``, the score variance ``v`` of the detector ensemble times the
  hard-example filter ``h`` (1 for an object with more than ``min_points`` points, closer than
  ``max_distance_m``; 0 otherwise).
* MD-REM: D-REM kept for easy objects only; filtered objects get ``-inf`` (ranked last),
  since ``-log p`` can be negative and a zero would rank them above genuine low scores.
* Tracks (section 4.1): the mean log-probability over a track's frames, with min and count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.config import ScoreConfig
from rem_core.errors import InputError

__all__ = [
    "aggregate_tracks",
    "d_rem",
    "easy_filter",
    "m_rem",
    "md_rem",
    "rareness_percentile",
]


def d_rem(log_prob: ArrayLike) -> np.ndarray:
    """D-REM rareness (eq. 8): ``-log p`` per object, ``(N,)`` float64."""
    return -np.asarray(log_prob, dtype=np.float64)


def easy_filter(num_points: ArrayLike, distance: ArrayLike, config: ScoreConfig) -> np.ndarray:
    """The hard-example filter ``h`` (eqs. 10-11): True for easy objects.

    Args:
        num_points: ``(N,)`` points inside each box (for detections: the predicted box).
        distance: ``(N,)`` bird's-eye-view distance of each box centre, metres.
        config: the thresholds.

    Returns:
        ``(N,)`` bool: more than ``min_points`` points and closer than ``max_distance_m``.
    """
    return (np.asarray(num_points) > config.min_points) & (
        np.asarray(distance) < config.max_distance_m
    )


def m_rem(
    variance: ArrayLike, num_points: ArrayLike, distance: ArrayLike, config: ScoreConfig
) -> np.ndarray:
    """M-REM rareness ``h * v``: ensemble score variance kept for easy objects, else 0."""
    v = np.asarray(variance, dtype=np.float64)
    return np.where(easy_filter(num_points, distance, config), v, 0.0)


def md_rem(
    log_prob: ArrayLike, num_points: ArrayLike, distance: ArrayLike, config: ScoreConfig
) -> np.ndarray:
    """MD-REM rareness: ``-log p`` for easy objects, ``-inf`` for the others."""
    return np.where(easy_filter(num_points, distance, config), d_rem(log_prob), -np.inf)


def rareness_percentile(rareness: ArrayLike) -> np.ndarray:
    """Percentile of each rareness among all, in (0, 100]: 100 is the rarest (ties averaged)."""
    r = pd.Series(np.asarray(rareness, dtype=np.float64))
    return (r.rank(method="average", pct=True) * 100).to_numpy()


def aggregate_tracks(boxes: pd.DataFrame, log_prob: ArrayLike) -> pd.DataFrame:
    """Per-track log-probability: mean over the track's boxes (section 4.1), min and count.

    Args:
        boxes: rows with ``segment_id`` and ``track_id`` (detections after tracking, or
            ground truth); rows without a track id are left out.
        log_prob: ``(N,)`` log-density of each row's features; NaN rows (ground truth
            without features of its own) are left out, and a track of only those with them.

    Returns:
        One row per track: ``segment_id, track_id, mean_log_prob, min_log_prob,
        num_boxes, rareness`` (``-mean_log_prob``), sorted rarest first.
    """
    lp = np.asarray(log_prob, dtype=np.float64)
    if len(lp) != len(boxes):
        raise InputError(f"log_prob: {len(lp)} values for {len(boxes)} boxes")
    table = pd.DataFrame(
        {
            "segment_id": boxes["segment_id"].to_numpy(),
            "track_id": boxes["track_id"].to_numpy(),
            "log_prob": lp,
        }
    ).dropna(subset=["track_id", "log_prob"])
    out = (
        table.groupby(["segment_id", "track_id"], sort=False)["log_prob"]
        .agg(mean_log_prob="mean", min_log_prob="min", num_boxes="size")
        .reset_index()
    )
    out["rareness"] = -out["mean_log_prob"]
    return out.sort_values("rareness", ascending=False, kind="stable").reset_index(drop=True)
