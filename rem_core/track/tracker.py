"""Online multi-object tracking: the per-segment loop and ``track_detections``.

``_track_segment`` runs a segment's frames in order: predict every live track, match the
frame's detections in two stages, update the matched tracks, start new ones and drop those
missed too long (the steps and the track state are in ``rem_core.track.association``).
``track_detections`` checks the tables, makes one job per segment (run here or on a
cluster) and writes the tracks' ids back into the detections table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from rem_core.cluster import map_in_order
from rem_core.config import TrackerConfig
from rem_core.errors import InputError
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform
from rem_core.track.association import (
    _born_tracks,
    _Detections,
    _frame_stages,
    _gates,
    _match_frame,
    _Tracks,
    _update_matched,
)
from rem_core.track.motion import _cv_model, _kf_predict, _segment_frames, _SegmentFrames, _to_world

__all__ = [
    "track_detections",
]

log = logging.getLogger(__name__)


def _track_segment(
    times: np.ndarray,
    det_t: np.ndarray,
    boxes: np.ndarray,
    score: np.ndarray,
    det_class: np.ndarray,
    config: TrackerConfig,
) -> np.ndarray:
    """Track one segment's detections.

    Args:
        times: ``(T,)`` seconds of the segment's frames, increasing.
        det_t: ``(N,)`` frame position of each detection.
        boxes: ``(N, 7)`` detection boxes in the world frame.
        score: ``(N,)`` confidences.
        det_class: ``(N,)`` int class codes.
        config: the tracker's settings.

    Returns:
        ``(N,)`` int64 track number of each detection, -1 for detections left untracked.
    """
    n = len(det_t)
    assigned = np.full(n, -1, np.int64)
    order = np.lexsort((np.arange(n), -score, det_t))  # by frame, best score first
    bounds = np.searchsorted(det_t[order], np.arange(len(times) + 1))
    dets = _Detections(boxes[:, :2], boxes[:, 3:6], boxes[:, 6], score, det_class)
    r_var = config.measurement_noise_m**2

    tracks = _Tracks.empty()
    next_number = 0
    for t in range(len(times)):
        if t and len(tracks):
            F, Q = _cv_model(times[t] - times[t - 1], config.accel_noise_mps2)
            tracks.x, tracks.P = _kf_predict(tracks.x, tracks.P, F, Q)
        high, low = _frame_stages(order[bounds[t] : bounds[t + 1]], score, config)
        gate = _gates(tracks, r_var, config)
        mt, mr, free = _match_frame(tracks, gate, (high, low), dets, config.class_aware)
        if len(mt):
            _update_matched(tracks, mt, mr, dets, r_var, config.attribute_smoothing)
            assigned[mr] = tracks.number[mt]
        tracks.missed[free] += 1
        tracks.missed[mt] = 0

        born = high[~np.isin(high, mr)]  # in score order, so numbering is deterministic
        if len(born):
            new = _born_tracks(dets, born, r_var, next_number)
            next_number += len(born)
            assigned[born] = new.number
            tracks = tracks.extended(new)
        tracks = tracks.subset(tracks.missed <= config.max_missed)
    return assigned


def _checked_detections(detections: pd.DataFrame, name: str) -> pd.DataFrame:
    """A conformed copy of a detections table (``track_id`` may be missing)."""
    if "track_id" not in detections.columns:
        detections = detections.assign(track_id=None)
    return conform(detections, DETECTIONS, name)


def _track_jobs(det: pd.DataFrame, poses: dict[str, _SegmentFrames]) -> tuple[list[tuple], int]:
    """One ``_track_one`` job per segment of ``det`` (its frames, name, frame indices, boxes,
    scores and class codes), and the number of frames of those segments."""
    class_code = pd.factorize(det["class"], sort=True)[0]
    n_frames = 0
    jobs = []
    for segment_id, rows in det.groupby("segment_id", sort=False).indices.items():
        if segment_id not in poses:
            raise InputError(f"detections: segment {segment_id!r} is not in the frames table")
        sub = det.iloc[rows]
        jobs.append(
            (
                poses[segment_id],
                str(segment_id),
                sub["frame_index"].to_numpy(np.int64),
                sub[BOX_COLUMNS].to_numpy(np.float64),
                sub["score"].to_numpy(np.float64),
                class_code[rows],
            )
        )
        n_frames += len(poses[segment_id].times)
    return jobs, n_frames


def _track_ids(det: pd.DataFrame, numbered: Iterable[np.ndarray]) -> np.ndarray:
    """The ``track_id`` of each row of ``det`` (``"t0007"``, None if untracked), from the
    track numbers of each segment, in the order of the segments' first rows."""
    track_id = np.full(len(det), None, dtype=object)
    groups = det.groupby("segment_id", sort=False).indices.values()
    for rows, numbers in zip(groups, numbered, strict=True):
        ok = numbers >= 0
        track_id[rows[ok]] = [f"t{k:04d}" for k in numbers[ok]]
    return track_id


def track_detections(
    detections: pd.DataFrame,
    frames: pd.DataFrame,
    config: TrackerConfig,
    client: Any | None = None,
) -> pd.DataFrame:
    """Link detections into tracks, segment by segment, in the world frame.

    Per frame: predict every track with its constant-velocity Kalman filter; match
    detections scoring ``>= birth_score`` to tracks by Hungarian assignment on the BEV
    distance between predicted and detected centres, within the gate
    ``max(max_match_distance_m, gate_length_fraction * length, gate_sigmas * sigma)``, where
    ``sigma`` is the predicted centre's standard deviation (largest axis, measurement noise
    included); match the remaining
    detections scoring ``>= min_score`` to the remaining tracks the same way; update the
    matched tracks; start a track from each unmatched detection scoring ``>= birth_score``;
    drop tracks unmatched for more than ``max_missed`` frames.

    Args:
        detections: a table in the ``DETECTIONS`` schema (``track_id`` may be absent);
            boxes in the vehicle frame of their frame.
        frames: the ``FRAMES`` table of the segments (poses and timestamps).
        config: the tracker's settings.
        client: a ``distributed.Client``: one task per segment on its cluster
            (``rem_core.cluster``; the same tracks).

    Returns:
        A copy of ``detections`` (same rows, order, index and columns) with ``track_id``
        filled: a string such as ``"t0007"``, unique within its segment, or missing (NA,
        as ``rem_core.schema.conform`` reads a null) for detections that joined no track
        (scoring below ``min_score``, or below ``birth_score`` and matching no track).

    Raises:
        SchemaError: a table does not follow its schema.
        ValueError: a detection's frame is not in ``frames``.

    Example:
        >>> tracked = track_detections(detections, frames, TrackerConfig())  # doctest: +SKIP
        >>> tracked.groupby(["segment_id", "track_id"]).size()  # doctest: +SKIP
    """
    det = _checked_detections(detections, "detections")
    jobs, n_frames = _track_jobs(det, _segment_frames(frames))
    if client is None:
        numbered = (_track_one(job, config) for job in jobs)
    else:
        numbered = map_in_order(client, _track_one, jobs, config)
    track_id = _track_ids(det, numbered)
    out = detections.copy()
    out["track_id"] = pd.Series(track_id, index=out.index, dtype="str")  # as conform reads it
    log.info(
        "tracked %d detections in %d frames: %d tracked, %d left untracked",
        len(det),
        n_frames,
        int(np.sum(track_id != None)),  # noqa: E711
        int(np.sum(track_id == None)),  # noqa: E711
    )
    return out


def _track_one(job: tuple, config: TrackerConfig) -> np.ndarray:
    """The track number of each detection of one segment (-1: none); a task on a cluster."""
    seg, segment_id, frame_index, boxes, scores, classes = job
    t = seg.positions(frame_index, segment_id)
    world = _to_world(boxes, seg.rotation[t], seg.translation[t])
    numbers = _track_segment(seg.times, t, world, scores, classes, config)
    log.debug("segment %s: %d detections, %d tracks", segment_id, len(boxes), numbers.max() + 1)
    return numbers
