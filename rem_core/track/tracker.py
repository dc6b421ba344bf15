"""Online multi-object tracking: Kalman filter per track, Hungarian matching with a gate."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from rem_core.config import TrackerConfig
from rem_core.geometry import wrap_angle
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform
from rem_core.track.motion import (
    _cv_model,
    _initial_state,
    _kf_predict,
    _kf_update,
    _segment_frames,
    _to_world,
)

__all__ = [
    "track_detections",
]

log = logging.getLogger(__name__)


def _align_axis(angle: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``angle`` or ``angle + pi``, whichever lies within pi/2 of ``reference``, wrapped."""
    flip = np.cos(angle - reference) < 0
    return wrap_angle(angle + np.pi * flip)


def _associate(
    predicted: np.ndarray,
    gate: np.ndarray,
    track_class: np.ndarray,
    centers: np.ndarray,
    det_class: np.ndarray,
    class_aware: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of tracks to detections on BEV centre distance, with a gate.

    Args:
        predicted: ``(K, 2)`` predicted track centres, world frame, metres.
        gate: ``(K,)`` largest distance at which each track may match, metres.
        track_class: ``(K,)`` int class codes of the tracks.
        centers: ``(D, 2)`` detection centres, world frame, metres.
        det_class: ``(D,)`` int class codes of the detections.
        class_aware: forbid matches across classes.

    Returns:
        ``(M,)`` track positions and ``(M,)`` detection positions of the matched pairs: as
        many pairs as possible within the gates, then the smallest total distance.
    """
    empty = np.zeros(0, np.int64)
    if not len(predicted) or not len(centers):
        return empty, empty
    cost = np.linalg.norm(predicted[:, None, :] - centers[None, :, :], axis=-1)  # (K, D)
    feasible = cost <= gate[:, None]
    if class_aware:
        feasible &= track_class[:, None] == det_class[None, :]
    rows, cols = np.flatnonzero(feasible.any(1)), np.flatnonzero(feasible.any(0))
    if not len(rows):
        return empty, empty
    sub = feasible[np.ix_(rows, cols)]
    # A cost above any feasible total makes the solver maximise the number of gated
    # matches first; infeasible pairs it is forced into are dropped below.
    big = 1.0 + float(cost[np.ix_(rows, cols)][sub].sum())
    r, c = linear_sum_assignment(np.where(sub, cost[np.ix_(rows, cols)], big))
    ok = sub[r, c]
    return rows[r[ok]], cols[c[ok]]


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
    centers, size, heading = boxes[:, :2], boxes[:, 3:6], boxes[:, 6]
    r_var = config.measurement_noise_m**2
    alpha = config.attribute_smoothing

    x, P = np.zeros((0, 4)), np.zeros((0, 4, 4))
    number, missed = np.zeros(0, np.int64), np.zeros(0, np.int64)
    track_class, track_size, track_heading = np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0)
    next_number = 0
    for t in range(len(times)):
        if t and len(x):
            x, P = _kf_predict(x, P, *_cv_model(times[t] - times[t - 1], config.accel_noise_mps2))
        rows = order[bounds[t] : bounds[t + 1]]
        rows = rows[score[rows] >= config.min_score]
        high = rows[score[rows] >= config.birth_score]
        low = rows[score[rows] < config.birth_score]

        # The gate widens with the predicted centre's uncertainty, so that a young track,
        # whose velocity is still unknown, can find an object that moved.
        spread = np.sqrt(np.linalg.eigvalsh(P[:, :2, :2])[:, -1] + r_var)
        gate = np.maximum.reduce(
            [
                np.full(len(x), config.max_match_distance_m),
                config.gate_length_fraction * track_size[:, 0],
                config.gate_sigmas * spread,
            ]
        )
        free = np.ones(len(x), bool)
        matched_tracks, matched_rows = [], []
        for stage in (high, low):  # ByteTrack's order: confident detections choose first
            candidates = np.flatnonzero(free)
            ti, di = _associate(
                x[candidates, :2],
                gate[candidates],
                track_class[candidates],
                centers[stage],
                det_class[stage],
                config.class_aware,
            )
            matched_tracks.append(candidates[ti])
            matched_rows.append(stage[di])
            free[candidates[ti]] = False
        mt, mr = np.concatenate(matched_tracks), np.concatenate(matched_rows)

        if len(mt):
            x[mt], P[mt] = _kf_update(x[mt], P[mt], centers[mr], np.full(len(mt), r_var))
            observed = _align_axis(heading[mr], track_heading[mt])
            track_heading[mt] = wrap_angle(
                track_heading[mt] + alpha * wrap_angle(observed - track_heading[mt])
            )
            track_size[mt] += alpha * (size[mr] - track_size[mt])
            assigned[mr] = number[mt]
        missed[free] += 1
        missed[mt] = 0

        born = high[~np.isin(high, mr)]  # in score order, so numbering is deterministic
        if len(born):
            x0, P0 = _initial_state(centers[born], np.full(len(born), r_var))
            new_numbers = next_number + np.arange(len(born))
            next_number += len(born)
            assigned[born] = new_numbers
            x, P = np.concatenate([x, x0]), np.concatenate([P, P0])
            number = np.concatenate([number, new_numbers])
            missed = np.concatenate([missed, np.zeros(len(born), np.int64)])
            track_class = np.concatenate([track_class, det_class[born]])
            track_size = np.concatenate([track_size, size[born]])
            track_heading = np.concatenate([track_heading, heading[born]])

        alive = missed <= config.max_missed
        x, P, number, missed = x[alive], P[alive], number[alive], missed[alive]
        track_class, track_size = track_class[alive], track_size[alive]
        track_heading = track_heading[alive]
    return assigned


def _checked_detections(detections: pd.DataFrame, name: str) -> pd.DataFrame:
    """A conformed copy of a detections table (``track_id`` may be missing)."""
    if "track_id" not in detections.columns:
        detections = detections.assign(track_id=None)
    return conform(detections, DETECTIONS, name)


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
    poses = _segment_frames(frames)
    class_code = pd.factorize(det["class"], sort=True)[0]
    track_id = np.full(len(det), None, dtype=object)
    n_frames = 0
    jobs = []
    for segment_id, rows in det.groupby("segment_id", sort=False).indices.items():
        if segment_id not in poses:
            raise ValueError(f"detections: segment {segment_id!r} is not in the frames table")
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
    if client is None:
        numbered = (_track_one(job, config) for job in jobs)
    else:
        from rem_core.cluster import map_in_order

        numbered = map_in_order(client, _track_one, jobs, config)
    groups = det.groupby("segment_id", sort=False).indices.values()
    for rows, numbers in zip(groups, numbered, strict=True):
        ok = numbers >= 0
        track_id[rows[ok]] = [f"t{k:04d}" for k in numbers[ok]]
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
