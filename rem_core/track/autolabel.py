"""Offboard auto-labelling: refine each whole track, past and future (Qi et al. 2021).

``_label_segment`` labels one segment: it places the tracked detections by track and frame,
refines each track (``rem_core.track.smoothing``), keeps the tracks long or confident
enough, gives each its class by score vote, chooses the frames that get a label (observed
ones and short gaps), blends track and frame scores and builds the label rows in the vehicle
frame. ``auto_label`` checks the tables, makes one job per segment (run here or on a
cluster) and merges the segments' labels into one table, numbering the filled-in boxes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from rem_core.cluster import map_in_order
from rem_core.config import AutoLabelConfig
from rem_core.errors import InputError
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform
from rem_core.track.motion import _segment_frames, _SegmentFrames, _to_vehicle
from rem_core.track.smoothing import (
    _bottoms,
    _headings,
    _hold_static,
    _place_detections,
    _SegmentTracks,
    _smoothed_centres,
    _track_sizes,
    _travel,
    _window_kernel,
)
from rem_core.track.tracker import _checked_detections

__all__ = [
    "auto_label",
]

log = logging.getLogger(__name__)


def _kept_tracks(tracks: _SegmentTracks, config: AutoLabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each track's mean score, and whether it is long or confident enough to keep."""
    K = len(tracks.names)
    n_obs = np.bincount(tracks.k, minlength=K)
    track_score = np.bincount(tracks.k, weights=tracks.score, minlength=K) / n_obs
    keep = (n_obs >= config.min_track_length) | (track_score >= config.min_track_score)
    return track_score, keep


def _track_classes(tracks: _SegmentTracks, det_class: np.ndarray) -> np.ndarray:
    """``(K,)`` class of each track: the one its detections' scores add up highest for."""
    weighted = (
        pd.DataFrame({"k": tracks.k, "class": det_class, "s": tracks.score})
        .groupby(["k", "class"], sort=True)["s"]
        .sum()
        .reset_index()
        .sort_values(["k", "s"], ascending=[True, False], kind="stable")
        .drop_duplicates("k")
    )
    return weighted["class"].to_numpy(object)[np.argsort(weighted["k"].to_numpy())]


def _emitted_cells(tracks: _SegmentTracks, keep: np.ndarray, max_gap: int) -> np.ndarray:
    """``(K, T)`` cells that get a label: observed frames of kept tracks, and gaps of at most
    ``max_gap`` frames inside them."""
    observed = tracks.observed
    K, T = observed.shape
    tt = np.arange(T)[None, :]
    span = (tt >= tracks.first[:, None]) & (tt <= tracks.last[:, None])
    count = np.cumsum(observed, axis=1)
    gap_cell = span & ~observed
    gap_key = np.arange(K)[:, None] * (T + 1) + count
    gap_len = np.bincount(gap_key[gap_cell], minlength=K * (T + 1))[gap_key]
    fill = gap_cell & (gap_len <= max_gap)
    return (observed | fill) & keep[:, None]


def _frame_scores(observed: np.ndarray, score_grid: np.ndarray) -> np.ndarray:
    """``(K, T)`` frame score: the detection's where observed, else interpolated linearly
    between the track's neighbouring detections."""
    T = observed.shape[1]
    tt = np.arange(T)[None, :]
    prev = np.maximum.accumulate(np.where(observed, tt, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(observed, tt, T)[:, ::-1], axis=1)[:, ::-1]
    prev_s = np.take_along_axis(score_grid, np.clip(prev, 0, T - 1), 1)
    next_s = np.take_along_axis(score_grid, np.clip(nxt, 0, T - 1), 1)
    frac = (tt - prev) / np.maximum(nxt - prev, 1)
    return np.where(observed, score_grid, prev_s + (next_s - prev_s) * frac)


def _label_boxes(
    ek: np.ndarray,
    et: np.ndarray,
    pose: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    size: np.ndarray,
    seg: _SegmentFrames,
) -> np.ndarray:
    """``(M, 7)`` boxes of the cells ``(ek, et)`` in the vehicle frame of their frames, from
    the ``(K, T)`` grids ``pose = (cx, cy, bottom, heading)`` and the ``(K, 3)`` sizes."""
    cx, cy, bottom, heading = pose
    boxes = np.column_stack(
        [
            cx[ek, et],
            cy[ek, et],
            bottom[ek, et] + size[ek, 2] / 2,
            size[ek],
            heading[ek, et],
        ]
    )
    return _to_vehicle(boxes, seg.rotation[et], seg.translation[et])


def _label_table(
    det: pd.DataFrame,
    tracks: _SegmentTracks,
    ek: np.ndarray,
    et: np.ndarray,
    frame_index: np.ndarray,
    boxes: np.ndarray,
    track_class: np.ndarray,
    score: np.ndarray,
) -> pd.DataFrame:
    """The label rows of the cells ``(ek, et)``: ``DETECTIONS`` columns and ``interpolated``
    (``detection_id`` -1 and ``num_points`` 0 where no detection was observed)."""
    det_id = np.full(tracks.observed.shape, -1, np.int64)
    points = np.zeros(tracks.observed.shape, np.int64)
    det_id[tracks.k, tracks.t] = det["detection_id"].to_numpy(np.int64)
    points[tracks.k, tracks.t] = det["num_points"].to_numpy(np.int64)
    return pd.DataFrame(
        {
            "segment_id": tracks.segment_id,
            "frame_index": frame_index,
            "detection_id": det_id[ek, et],
            "class": track_class,
            **{c: boxes[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": score,
            "num_points": points[ek, et],
            "distance": np.hypot(boxes[:, 0], boxes[:, 1]),
            "track_id": tracks.names.to_numpy(object)[ek],
            "interpolated": ~tracks.observed[ek, et],
        }
    )


def _label_segment(
    det: pd.DataFrame, seg: _SegmentFrames, segment_id: str, config: AutoLabelConfig
) -> pd.DataFrame:
    """Auto-label one segment's tracked detections (see ``auto_label``).

    Args:
        det: the segment's detections with a ``track_id``, at most one per track and frame;
            boxes in the vehicle frame of their frame.
        seg: the segment's frames and poses.
        segment_id: its name, for the output and messages.
        config: the auto-labeller's settings.

    Returns:
        Rows with the ``DETECTIONS`` columns (``detection_id`` of interpolated rows -1) and
        ``interpolated``.
    """
    tracks = _place_detections(det, seg, segment_id)
    track_score, keep = _kept_tracks(tracks, config)
    size = _track_sizes(tracks, config.size_quantile)
    track_class = _track_classes(tracks, det["class"].to_numpy())
    score_grid = tracks.grid(tracks.score)
    w = score_grid * tracks.observed
    xs = _smoothed_centres(tracks, seg.times, score_grid, config)
    travel = _travel(tracks, xs)
    static = np.hypot(travel[:, 0], travel[:, 1]) < config.static_max_displacement_m
    kernel = _window_kernel(config)
    heading = _headings(
        tracks.grid(tracks.world[:, 6]), w, xs, travel, static, kernel, config.moving_min_speed_mps
    )
    bottom = _bottoms(tracks, w, kernel)
    cx, cy, bottom = _hold_static(tracks, static, xs[..., 0], xs[..., 1], bottom)

    ek, et = np.nonzero(_emitted_cells(tracks, keep, config.max_gap))  # by track, then frame
    boxes = _label_boxes(ek, et, (cx, cy, bottom, heading), size, seg)
    frame_score = _frame_scores(tracks.observed, score_grid)
    blend = config.score_blend
    score = blend * track_score[ek] + (1 - blend) * frame_score[ek, et]
    out = _label_table(det, tracks, ek, et, seg.frame_index[et], boxes, track_class[ek], score)
    log.debug(
        "segment %s: %d tracks kept of %d (%d static), %d boxes filled in",
        segment_id,
        int(keep.sum()),
        len(tracks.names),
        int((static & keep).sum()),
        int(out["interpolated"].sum()),
    )
    return out


def _label_job(job: tuple, config: AutoLabelConfig) -> pd.DataFrame:
    """One segment's labels (``_label_segment``), as a task on a cluster."""
    return _label_segment(*job, config)


def _best_per_track_and_frame(det: pd.DataFrame) -> pd.DataFrame:
    """``det`` without detections that share a track and frame with a better-scoring one."""
    before = len(det)
    det = det.sort_values("score", ascending=False, kind="stable").drop_duplicates(
        ["segment_id", "track_id", "frame_index"]
    )
    if len(det) < before:
        log.warning(
            "auto_label: %d detections share a track and frame with a better one; ignored",
            before - len(det),
        )
    return det


def _label_jobs(det: pd.DataFrame, poses: dict[str, _SegmentFrames]) -> list[tuple]:
    """One ``_label_segment`` job per segment of ``det``: its rows, frames and name."""
    jobs = []
    for segment_id, rows in det.groupby("segment_id", sort=False):
        if segment_id not in poses:
            raise InputError(f"tracked: segment {segment_id!r} is not in the frames table")
        jobs.append((rows, poses[segment_id], str(segment_id)))
    return jobs


def _merge_labels(parts: list[pd.DataFrame], det: pd.DataFrame, next_id: int) -> pd.DataFrame:
    """The segments' labels in one conformed table, interpolated rows numbered from
    ``next_id``, ordered by segment (as in ``det``), frame and ``detection_id``."""
    columns = [*DETECTIONS.names, "interpolated"]
    if not parts:
        empty = conform(pd.DataFrame({f.name: [] for f in DETECTIONS}), DETECTIONS, "labels")
        return empty.assign(interpolated=np.zeros(0, bool))[columns]
    out = pd.concat(parts, ignore_index=True)
    new = out["detection_id"].to_numpy() < 0
    ids = out["detection_id"].to_numpy().copy()
    ids[new] = next_id + np.arange(new.sum())
    out["detection_id"] = ids
    segment_order = {s: i for i, s in enumerate(pd.unique(det["segment_id"]))}
    out = out.assign(_s=out["segment_id"].map(segment_order))
    out = out.sort_values(["_s", "frame_index", "detection_id"], kind="stable")
    interpolated = out["interpolated"].to_numpy(bool)
    out = conform(out.reset_index(drop=True), DETECTIONS, "labels")
    out["interpolated"] = interpolated
    log.info(
        "auto-labelled %d tracks: %d boxes, %d interpolated",
        out.groupby(["segment_id", "track_id"]).ngroups,
        len(out),
        int(interpolated.sum()),
    )
    return out[columns]


def auto_label(
    tracked: pd.DataFrame,
    frames: pd.DataFrame,
    config: AutoLabelConfig,
    client: Any | None = None,
) -> pd.DataFrame:
    """Refine tracked detections into offboard labels, using each whole track.

    Per track, in the world frame:

    * **size**: one ``length, width, height`` for the whole track, the score-weighted
      ``size_quantile`` of its detections' (partial views shrink boxes, so a high quantile).
    * **centre**: a Rauch-Tung-Striebel smoother (constant velocity, detections weighted by
      score) over the whole track; the box bottom is smoothed by a Gaussian window and the
      centre put at ``bottom + height / 2``.
    * **static objects** (smoothed centre moves less than ``static_max_displacement_m``
      from first to last frame) keep one pose: weighted medians of centre and bottom, and
      the heading axis of the doubled-angle mean, its direction voted by the detections.
    * **heading** of moving objects: detections are flipped by pi to agree with the
      direction of travel, then smoothed; where the smoothed speed reaches
      ``moving_min_speed_mps`` the heading is the direction of motion.
    * **gaps** of at most ``max_gap`` frames inside a track get interpolated boxes (from the
      smoother), flagged ``interpolated``.
    * **score**: ``score_blend * track score + (1 - score_blend) * frame score``; the track
      score is its detections' mean score, the frame score of an interpolated box is
      interpolated from its neighbours.
    * tracks with fewer than ``min_track_length`` detections and a track score below
      ``min_track_score`` are dropped; so are detections without a ``track_id``.

    Args:
        tracked: detections in the ``DETECTIONS`` schema with ``track_id`` filled
            (``track_detections``); boxes in the vehicle frame of their frame.
        frames: the ``FRAMES`` table of the segments.
        config: the auto-labeller's settings.
        client: a ``distributed.Client``: one task per segment on its cluster
            (``rem_core.cluster``; the same labels).

    Returns:
        One row per label, with the ``DETECTIONS`` columns plus ``interpolated`` (bool),
        boxes in the vehicle frame of each row's frame, ordered by segment (as in
        ``tracked``), frame and ``detection_id``. Rows from a detection keep its
        ``detection_id`` and ``num_points`` (counted in the detector's box, not the refined
        one); interpolated rows get new ids above every input id and ``num_points = 0``.
        When a track has several detections in one frame, the best-scoring one is used.

    Raises:
        SchemaError: a table does not follow its schema.
        ValueError: a detection's frame is not in ``frames``.

    Example:
        >>> labels = auto_label(tracked, frames, AutoLabelConfig())  # doctest: +SKIP
        >>> labels["interpolated"].mean()  # doctest: +SKIP
    """
    det = _checked_detections(tracked, "tracked")
    poses = _segment_frames(frames)
    next_id = int(det["detection_id"].max()) + 1 if len(det) else 0
    det = _best_per_track_and_frame(det[det["track_id"].notna().to_numpy()])
    jobs = _label_jobs(det, poses)
    if client is None:
        parts = [_label_segment(*job, config) for job in jobs]
    else:
        parts = list(map_in_order(client, _label_job, jobs, config))
    return _merge_labels(parts, det, next_id)
