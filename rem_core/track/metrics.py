"""Tracking quality against ground-truth track ids."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.evaluation import evaluate_detections

__all__ = [
    "TrackingMetrics",
    "tracking_metrics",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingMetrics:
    """Tracking quality against ground-truth track ids.

    Boxes are matched frame by frame and class by class, score first, on BEV IoU (see
    ``tracking_metrics``). Counts are over ground-truth boxes with at least one point.

    Attributes:
        id_switches: times a ground-truth track's matched predicted track id differs from
            the one matched in its previous matched frame (CLEAR MOT's IDSW).
        fragmentations: times a ground-truth track's matching resumes after being
            interrupted in frames where the object is labelled.
        purity: of the matched detections of each predicted track, the share belonging to
            the track's majority ground-truth track, pooled over tracks (NaN if no match).
        mostly_tracked: share of ground-truth tracks matched in at least 80% of their boxes.
        mota: ``1 - (misses + false positives + id_switches) / ground-truth boxes``.
        recall: share of ground-truth boxes matched.
        precision: share of tracked detections matched.
        num_gt_tracks: ground-truth tracks.
        num_tracks: predicted tracks.
    """

    id_switches: int
    fragmentations: int
    purity: float
    mostly_tracked: float
    mota: float
    recall: float
    precision: float
    num_gt_tracks: int
    num_tracks: int


def tracking_metrics(
    tracked: pd.DataFrame, ground_truth: pd.DataFrame, iou_threshold: float = 0.5
) -> TrackingMetrics:
    """Compare predicted tracks with ground-truth tracks.

    Only detections with a ``track_id`` count (the tracker's output). In every frame,
    detections in descending score order each take the unmatched ground-truth box of their
    class with the highest BEV IoU, if it is ``>= iou_threshold``
    (``rem_core.evaluation.evaluate_detections``); then, along each ground-truth track in
    frame order, changes of the matched predicted id are ID switches and resumed matching
    after an unmatched labelled frame is a fragmentation.

    Args:
        tracked: detections with ``segment_id, frame_index, class``, box columns (vehicle
            frame), ``score`` and ``track_id``.
        ground_truth: the ``BOXES`` table (``segment_id, frame_index, track_id, class``,
            box columns, optionally ``num_points``: boxes with 0 points are left out).
        iou_threshold: minimum BEV IoU of a match, in (0, 1].

    Returns:
        The metrics.

    Example:
        >>> m = tracking_metrics(tracked, dataset.boxes)  # doctest: +SKIP
        >>> m.id_switches, round(m.purity, 3)  # doctest: +SKIP
        (3, 0.991)
    """
    if "track_id" not in tracked.columns:
        raise InputError("tracked: no track_id column; run track_detections first")
    if "track_id" not in ground_truth.columns:
        raise InputError("ground_truth: no track_id column; tracking needs true track ids")
    pred = tracked[tracked["track_id"].notna().to_numpy()].reset_index(drop=True)
    classes = sorted(set(ground_truth["class"]) | set(pred["class"]))
    if not classes:
        nan = float("nan")
        return TrackingMetrics(0, 0, nan, nan, nan, nan, nan, 0, 0)
    ev = evaluate_detections(pred, ground_truth, iou_threshold, iou="bev", classes=classes)
    gt = ev.gt
    pred_track = pd.factorize(pred["segment_id"] + "\x1f" + pred["track_id"].astype(str))[0]
    gt_track = pd.factorize(gt["segment_id"] + "\x1f" + gt["track_id"].astype(str))[0]
    matched = gt["matched"].to_numpy(bool)
    gt_pred = np.where(matched, pred_track[np.maximum(gt["pred_index"].to_numpy(), 0)], -1)

    order = np.lexsort((gt["frame_index"].to_numpy(), gt_track))
    g, m, p = gt_track[order], matched[order], gt_pred[order]
    same = g[1:] == g[:-1]
    gm, pm = g[m], p[m]
    id_switches = int(np.sum((gm[1:] == gm[:-1]) & (pm[1:] != pm[:-1])))
    earlier = pd.Series(m).groupby(g).cumsum().to_numpy() - m  # matches before this box
    fragmentations = int(np.sum(same & m[1:] & ~m[:-1] & (earlier[1:] > 0)))

    n_gt_tracks = int(g.max() + 1) if len(g) else 0
    share = np.bincount(g, weights=m, minlength=n_gt_tracks) / np.maximum(
        np.bincount(g, minlength=n_gt_tracks), 1
    )
    pairs = pd.DataFrame({"p": gt_pred[matched], "g": gt_track[matched]})
    counts = pairs.groupby(["p", "g"]).size()
    majority = counts.groupby(level="p").max().sum()
    n_match, n_gt, n_pred = int(matched.sum()), len(gt), len(ev.predictions)
    false_pos = n_pred - int(ev.predictions["tp"].sum())
    return TrackingMetrics(
        id_switches=id_switches,
        fragmentations=fragmentations,
        purity=float(majority / n_match) if n_match else float("nan"),
        mostly_tracked=float(np.mean(share >= 0.8)) if n_gt_tracks else float("nan"),
        mota=1.0 - (n_gt - n_match + false_pos + id_switches) / n_gt if n_gt else float("nan"),
        recall=n_match / n_gt if n_gt else float("nan"),
        precision=n_match / n_pred if n_pred else float("nan"),
        num_gt_tracks=n_gt_tracks,
        num_tracks=int(pred_track.max() + 1) if len(pred_track) else 0,
    )
