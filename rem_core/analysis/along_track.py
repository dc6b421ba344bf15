"""Rareness along a track: the boxes whose log p falls far below the rest of their own track.

A label error is one bad box in an otherwise ordinary track (the world draws label noise box
by box; a labeller's slip is one frame). Global rareness ranks a rare vehicle's every box
above a common vehicle's bad box; measured against its own track instead, a box stands out
when its features are unlike those of the same object in the other frames.

For box ``i`` of track ``T`` with log-densities ``l_j`` (``j`` in ``T``)::

    m_T = median_j l_j                                    the track's typical log p
    u   = 1.4826 * median_i |l_i - m_T(i)|                one robust unit for the data set
    box_in_track_i = (m_T - l_i) / u                      how far below its track, in units

``u`` is the median absolute deviation of every scored box from its track's median, scaled
to a standard deviation for normal residuals; pooled over the data set rather than per
track, since a track of 10 boxes gives too noisy a spread of its own, and one unit makes
scores of different tracks comparable. A score of 3.5 (the modified z-score's usual bar,
Iglewicz and Hoaglin 1993) flags a box. Boxes of tracks with fewer than ``min_boxes`` boxes
with a log p get NaN: a median of two says nothing about which one is off.

>>> import pandas as pd
>>> boxes = pd.DataFrame({"segment_id": ["s"] * 5, "track_id": ["t"] * 5,
...                       "frame_index": range(5)})
>>> result = box_in_track(boxes, [-10.0, -10.5, -9.5, -10.2, -30.0])
>>> result.flagged.tolist()
[False, False, False, False, True]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.errors import InputError

__all__ = ["FLAG_UNITS", "BoxInTrack", "box_in_track", "boxes_to_recheck"]

#: Robust units below its track's median log p from which a box is flagged.
FLAG_UNITS = 3.5
#: Scaling of a median absolute deviation to a standard deviation of normal residuals.
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class BoxInTrack:
    """Each box's log p against its own track's (:func:`box_in_track`).

    Attributes:
        score: ``(N,)`` float64, ``(track median - log p) / unit``: how many robust units
            the box's log p lies below its track's median (negative: above it); NaN for a
            box without a track id or log p, or of a track with fewer than ``min_boxes``
            boxes with one.
        track_median: ``(N,)`` float64 median log p of the box's track (NaN as ``score``).
        unit: the robust unit, nats: 1.4826 times the median absolute deviation of the
            scored boxes from their tracks' medians (NaN when no box is scored).
        threshold: the score from which a box is flagged.
        min_boxes: the fewest boxes with a log p a track needs for its boxes to be scored.
    """

    score: np.ndarray
    track_median: np.ndarray
    unit: float
    threshold: float
    min_boxes: int

    @property
    def flagged(self) -> np.ndarray:
        """``(N,)`` bool: the boxes at least ``threshold`` units below their track."""
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(self.score, nan=-np.inf) >= self.threshold


def box_in_track(
    boxes: pd.DataFrame,
    log_prob: ArrayLike,
    *,
    min_boxes: int = 3,
    threshold: float = FLAG_UNITS,
) -> BoxInTrack:
    """How far each box's log p falls below the median of its own track, in robust units.

    Args:
        boxes: rows with ``segment_id`` and ``track_id`` (detections after tracking, or
            ground truth); rows without a track id get NaN.
        log_prob: ``(N,)`` log-density of each row's features (NaN: not scored).
        min_boxes: the fewest boxes with a log p a track needs (at least 3).
        threshold: the score from which a box is flagged (:data:`FLAG_UNITS`).

    Returns:
        A :class:`BoxInTrack` in the row order of ``boxes``.
    """
    lp = np.asarray(log_prob, dtype=np.float64)
    if lp.ndim != 1 or len(lp) != len(boxes):
        raise InputError(f"log_prob: {lp.shape} values for {len(boxes)} boxes")
    if min_boxes < 3:
        raise InputError(f"min_boxes: must be >= 3 (a median of two cannot say which is off), "
                         f"got {min_boxes}")  # fmt: skip
    missing = [c for c in ("segment_id", "track_id") if c not in boxes.columns]
    if missing:
        raise InputError(f"boxes: missing column(s) {', '.join(missing)}")
    table = pd.DataFrame(
        {
            "segment_id": boxes["segment_id"].to_numpy(),
            "track_id": boxes["track_id"].to_numpy(),
            "log_prob": lp,
        }
    )
    usable = table["track_id"].notna().to_numpy() & np.isfinite(lp)
    groups = table[usable].groupby(["segment_id", "track_id"], sort=False)["log_prob"]
    median = np.full(len(lp), np.nan)
    size = np.zeros(len(lp), np.int64)
    median[usable] = groups.transform("median").to_numpy()
    size[usable] = groups.transform("size").to_numpy()
    scored = usable & (size >= min_boxes)
    median[~scored] = np.nan
    residual = median - lp  # NaN outside scored
    unit = float(_MAD_TO_SD * np.median(np.abs(residual[scored]))) if scored.any() else np.nan
    score = residual / unit if unit > 0 else np.where(scored, 0.0, np.nan)
    return BoxInTrack(score, median, unit, float(threshold), int(min_boxes))


def boxes_to_recheck(
    boxes: pd.DataFrame,
    log_prob: ArrayLike,
    result: BoxInTrack | None = None,
    *,
    scored_only: bool = True,
) -> pd.DataFrame:
    """The boxes ranked by how far they fall below their track, most suspect first.

    Args:
        boxes: the boxes :func:`box_in_track` scored (``segment_id``, ``track_id``,
            ``frame_index`` and any other columns, kept).
        log_prob: ``(N,)`` their log-densities.
        result: ``box_in_track(boxes, log_prob)`` if already computed.
        scored_only: leave out the boxes without a score; else they follow, NaN.

    Returns:
        ``boxes``' rows with ``row`` (their position in ``boxes``), ``log_prob``,
        ``track_median_log_prob``, ``box_in_track`` and ``flagged``, sorted by
        ``box_in_track`` descending; ``attrs["unit"]``: the robust unit, nats.
    """
    result = result if result is not None else box_in_track(boxes, log_prob)
    keep = np.flatnonzero(np.isfinite(result.score) if scored_only else np.ones(len(boxes), bool))
    out = (
        boxes.iloc[keep]
        .reset_index(drop=True)
        .assign(
            row=keep,
            log_prob=np.asarray(log_prob, dtype=np.float64)[keep],
            track_median_log_prob=result.track_median[keep],
            box_in_track=result.score[keep],
            flagged=result.flagged[keep],
        )
    )
    out = out.sort_values("box_in_track", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["unit"] = result.unit
    return out
