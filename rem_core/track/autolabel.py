"""Offboard auto-labelling: refine each whole track, past and future (Qi et al. 2021)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import convolve1d

from rem_core.config import AutoLabelConfig
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform
from rem_core.track.motion import (
    _MIN_NOISE_SCORE,
    _cv_model,
    _initial_state,
    _kf_predict,
    _kf_update,
    _segment_frames,
    _SegmentFrames,
    _to_vehicle,
    _to_world,
)
from rem_core.track.tracker import _align_axis, _checked_detections

__all__ = [
    "auto_label",
]

log = logging.getLogger(__name__)


def _grouped_weighted_quantile(
    values: np.ndarray, weights: np.ndarray, groups: np.ndarray, n_groups: int, q: float
) -> np.ndarray:
    """Weighted quantile of ``values`` per group: the smallest value whose cumulative weight
    within its group reaches ``q`` of the group's total.

    Args:
        values: ``(N,)`` values.
        weights: ``(N,)`` non-negative weights.
        groups: ``(N,)`` group of each value in ``[0, n_groups)``; every group non-empty.
        n_groups: number of groups.
        q: quantile in [0, 1].

    Returns:
        ``(n_groups,)`` float64.
    """
    order = np.lexsort((values, groups))
    v, w, g = values[order], weights[order] + 1e-12, groups[order]
    total = np.bincount(g, weights=w, minlength=n_groups)
    before = np.cumsum(total) - total  # weight of earlier groups
    within = np.cumsum(w) - before[g]
    reached = within >= q * total[g] * (1 - 1e-12)
    first = np.full(n_groups, len(v) - 1)
    np.minimum.at(first, g[reached], np.flatnonzero(reached))
    return v[first]


def _rts_smooth(
    times: np.ndarray,
    observed: np.ndarray,
    z: np.ndarray,
    r_var: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    accel_std: float,
) -> np.ndarray:
    """Rauch-Tung-Striebel smoothing of constant-velocity tracks, all tracks at once.

    Args:
        times: ``(T,)`` seconds of the frames.
        observed: ``(K, T)`` bool, track ``k`` has a detection in frame ``t``.
        z: ``(K, T, 2)`` detected BEV centres, world frame, metres (any value where not
            observed).
        r_var: ``(K, T)`` measurement variance per coordinate, m^2.
        first: ``(K,)`` first observed frame of each track.
        last: ``(K,)`` last observed frame of each track.
        accel_std: white acceleration of the motion model, m/s^2.

    Returns:
        ``(K, T, 4)`` smoothed ``x, y, vx, vy`` (metres, m/s); valid from ``first`` to
        ``last`` of each track, missing frames in between interpolated by the model.
    """
    K, T = observed.shape
    xf, Pf = np.zeros((K, T, 4)), np.zeros((K, T, 4, 4))
    xp, Pp = np.zeros((K, T, 4)), np.zeros((K, T, 4, 4))
    for t in range(T):
        run = (first < t) & (t <= last)
        if run.any():
            F, Q = _cv_model(times[t] - times[t - 1], accel_std)
            xp[run, t], Pp[run, t] = _kf_predict(xf[run, t - 1], Pf[run, t - 1], F, Q)
            xf[run, t], Pf[run, t] = xp[run, t], Pp[run, t]
            upd = run & observed[:, t]
            xf[upd, t], Pf[upd, t] = _kf_update(xp[upd, t], Pp[upd, t], z[upd, t], r_var[upd, t])
        init = first == t
        if init.any():
            xf[init, t], Pf[init, t] = _initial_state(z[init, t], r_var[init, t])
    xs = xf.copy()
    for t in range(T - 2, -1, -1):
        m = (first <= t) & (t < last)
        if m.any():
            F, _ = _cv_model(times[t + 1] - times[t], accel_std)
            gain = Pf[m, t] @ F.T @ np.linalg.inv(Pp[m, t + 1])
            xs[m, t] = xf[m, t] + np.einsum("kij,kj->ki", gain, xs[m, t + 1] - xp[m, t + 1])
    return xs


def _gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return np.exp(-0.5 * (r / sigma) ** 2)


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
        client: a ``distributed.Client``: one task per segment on its cluster
            (``rem_core.cluster``; the same labels).

    Returns:
        Rows with the ``DETECTIONS`` columns (``detection_id`` of interpolated rows -1) and
        ``interpolated``.
    """
    T = len(seg.times)
    t = seg.positions(det["frame_index"].to_numpy(np.int64), segment_id)
    k, names = pd.factorize(det["track_id"], sort=True)
    K = len(names)
    world = _to_world(det[BOX_COLUMNS].to_numpy(np.float64), seg.rotation[t], seg.translation[t])
    score = det["score"].to_numpy(np.float64)

    n_obs = np.bincount(k, minlength=K)
    track_score = np.bincount(k, weights=score, minlength=K) / n_obs
    first, last = np.full(K, T), np.full(K, -1)
    np.minimum.at(first, k, t)
    np.maximum.at(last, k, t)
    keep = (n_obs >= config.min_track_length) | (track_score >= config.min_track_score)
    size = np.stack(
        [
            _grouped_weighted_quantile(world[:, c], score, k, K, config.size_quantile)
            for c in (3, 4, 5)
        ],
        axis=1,
    )
    weighted = (
        pd.DataFrame({"k": k, "class": det["class"].to_numpy(), "s": score})
        .groupby(["k", "class"], sort=True)["s"]
        .sum()
        .reset_index()
        .sort_values(["k", "s"], ascending=[True, False], kind="stable")
        .drop_duplicates("k")
    )
    track_class = weighted["class"].to_numpy(object)[np.argsort(weighted["k"].to_numpy())]

    observed = np.zeros((K, T), bool)
    observed[k, t] = True
    dense = {}
    for name, values in {
        "x": world[:, 0],
        "y": world[:, 1],
        "bottom": world[:, 2] - world[:, 5] / 2,
        "heading": world[:, 6],
        "score": score,
    }.items():
        dense[name] = np.zeros((K, T))
        dense[name][k, t] = values
    w = dense["score"] * observed

    r_var = config.measurement_noise_m**2 / np.clip(dense["score"], _MIN_NOISE_SCORE, 1.0)
    xs = _rts_smooth(
        seg.times,
        observed,
        np.stack([dense["x"], dense["y"]], -1),
        r_var,
        first,
        last,
        config.accel_noise_mps2,
    )
    tracks = np.arange(K)
    travel = xs[tracks, last, :2] - xs[tracks, first, :2]
    static = np.hypot(travel[:, 0], travel[:, 1]) < config.static_max_displacement_m

    # Headings: a static object's axis is the weighted mean of the doubled angles, its
    # direction the side most detections agree with; a moving object points where it goes.
    h = dense["heading"]
    axis = np.arctan2((w * np.sin(2 * h)).sum(1), (w * np.cos(2 * h)).sum(1)) / 2
    axis = np.where((w * np.cos(h - axis[:, None])).sum(1) < 0, axis + np.pi, axis)
    reference = np.where(static, axis, np.arctan2(travel[:, 1], travel[:, 0]))
    aligned = _align_axis(h, reference[:, None])
    # The window reaches across the longest gap that gets filled.
    kernel = _gaussian_kernel(
        config.smoothing_sigma_frames,
        int(np.ceil(3 * config.smoothing_sigma_frames)) + config.max_gap,
    )

    def smooth(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score-weighted sums of ``(K, T)`` values in the window, and of the weights."""
        return (
            convolve1d(w * values, kernel, axis=1, mode="constant"),
            convolve1d(w, kernel, axis=1, mode="constant"),
        )

    sin_sum, den = smooth(np.sin(aligned))
    cos_sum, _ = smooth(np.cos(aligned))
    has = den > 1e-12
    smooth_heading = np.where(has, np.arctan2(sin_sum, cos_sum), reference[:, None])
    speed = np.hypot(xs[..., 2], xs[..., 3])
    heading = np.where(
        speed >= config.moving_min_speed_mps, np.arctan2(xs[..., 3], xs[..., 2]), smooth_heading
    )
    heading = np.where(static[:, None], axis[:, None], heading)

    bottom_sum, bottom_den = smooth(dense["bottom"])
    bottom = np.where(bottom_den > 1e-12, bottom_sum / np.maximum(bottom_den, 1e-300), 0.0)
    cx, cy = xs[..., 0], xs[..., 1]
    if static.any():
        sk = np.flatnonzero(static[k])  # detections of static tracks
        remap = np.full(K, -1)  # static track -> its row in the medians; -1 is masked below
        remap[static] = np.arange(static.sum())
        med = [
            _grouped_weighted_quantile(v[sk], score[sk], remap[k[sk]], int(static.sum()), 0.5)
            for v in (world[:, 0], world[:, 1], world[:, 2] - world[:, 5] / 2)
        ]
        cx = np.where(static[:, None], med[0][remap][:, None], cx)
        cy = np.where(static[:, None], med[1][remap][:, None], cy)
        bottom = np.where(static[:, None], med[2][remap][:, None], bottom)

    # Cells to emit: observed frames, and gaps of at most max_gap frames inside a track.
    tt = np.arange(T)[None, :]
    span = (tt >= first[:, None]) & (tt <= last[:, None])
    count = np.cumsum(observed, axis=1)
    gap_cell = span & ~observed
    gap_key = tracks[:, None] * (T + 1) + count
    gap_len = np.bincount(gap_key[gap_cell], minlength=K * (T + 1))[gap_key]
    fill = gap_cell & (gap_len <= config.max_gap)
    emit = (observed | fill) & keep[:, None]

    prev = np.maximum.accumulate(np.where(observed, tt, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(observed, tt, T)[:, ::-1], axis=1)[:, ::-1]
    prev_s = np.take_along_axis(dense["score"], np.clip(prev, 0, T - 1), 1)
    next_s = np.take_along_axis(dense["score"], np.clip(nxt, 0, T - 1), 1)
    frac = (tt - prev) / np.maximum(nxt - prev, 1)
    frame_score = np.where(observed, dense["score"], prev_s + (next_s - prev_s) * frac)

    ek, et = np.nonzero(emit)  # by track, then frame
    boxes = np.column_stack(
        [
            cx[ek, et],
            cy[ek, et],
            bottom[ek, et] + size[ek, 2] / 2,
            size[ek],
            heading[ek, et],
        ]
    )
    boxes = _to_vehicle(boxes, seg.rotation[et], seg.translation[et])
    det_id, points = np.full((K, T), -1, np.int64), np.zeros((K, T), np.int64)
    det_id[k, t] = det["detection_id"].to_numpy(np.int64)
    points[k, t] = det["num_points"].to_numpy(np.int64)
    blend = config.score_blend
    out = pd.DataFrame(
        {
            "segment_id": segment_id,
            "frame_index": seg.frame_index[et],
            "detection_id": det_id[ek, et],
            "class": track_class[ek],
            **{c: boxes[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": blend * track_score[ek] + (1 - blend) * frame_score[ek, et],
            "num_points": points[ek, et],
            "distance": np.hypot(boxes[:, 0], boxes[:, 1]),
            "track_id": names.to_numpy(object)[ek],
            "interpolated": ~observed[ek, et],
        }
    )
    log.debug(
        "segment %s: %d tracks kept of %d (%d static), %d boxes filled in",
        segment_id,
        int(keep.sum()),
        K,
        int((static & keep).sum()),
        int(out["interpolated"].sum()),
    )
    return out


def _label_job(job: tuple, config: AutoLabelConfig) -> pd.DataFrame:
    """One segment's labels (``_label_segment``), as a task on a cluster."""
    return _label_segment(*job, config)


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
    det = det[det["track_id"].notna().to_numpy()]
    before = len(det)
    det = det.sort_values("score", ascending=False, kind="stable").drop_duplicates(
        ["segment_id", "track_id", "frame_index"]
    )
    if len(det) < before:
        log.warning(
            "auto_label: %d detections share a track and frame with a better one; ignored",
            before - len(det),
        )
    jobs = []
    for segment_id, rows in det.groupby("segment_id", sort=False):
        if segment_id not in poses:
            raise ValueError(f"tracked: segment {segment_id!r} is not in the frames table")
        jobs.append((rows, poses[segment_id], str(segment_id)))
    if client is None:
        parts = [_label_segment(*job, config) for job in jobs]
    else:
        from rem_core.cluster import map_in_order

        parts = list(map_in_order(client, _label_job, jobs, config))
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
