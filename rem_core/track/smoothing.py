"""The auto-labeler's per-track refinement: one size, smoothed centres, headings resolved.

``_SegmentTracks`` holds a segment's tracked detections in the world frame, placed on a
grid of track by frame. On it, each whole track, past and future, is refined: one size per
track (a score-weighted quantile of its detections'), Rauch-Tung-Striebel smoothed centres
and velocities, box bottoms smoothed by a Gaussian window, headings resolved modulo pi
(static objects keep the axis of their detections; moving ones are turned to their
travel, smoothed, and follow the direction of motion where fast enough), and static
objects held at one pose. ``rem_core.track.autolabel`` turns the result into labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import convolve1d

from rem_core.config import AutoLabelConfig
from rem_core.schema import BOX_COLUMNS
from rem_core.track.motion import (
    _MIN_NOISE_SCORE,
    _align_axis,
    _cv_model,
    _initial_state,
    _kf_predict,
    _kf_update,
    _SegmentFrames,
    _to_world,
)

__all__: list[str] = []


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
    """Unnormalised Gaussian weights of standard deviation ``sigma`` on ``-radius..radius``."""
    r = np.arange(-radius, radius + 1)
    return np.exp(-0.5 * (r / sigma) ** 2)


@dataclass(frozen=True)
class _SegmentTracks:
    """One segment's tracked detections in the world frame, placed by track and frame.

    Attributes:
        segment_id: the segment's name.
        names: ``(K,)`` track ids, sorted; a track's position is its index here.
        k: ``(N,)`` track position of each detection.
        t: ``(N,)`` frame position of each detection.
        world: ``(N, 7)`` detection boxes in the world frame.
        score: ``(N,)`` detection scores.
        first: ``(K,)`` first observed frame of each track.
        last: ``(K,)`` last observed frame of each track.
        observed: ``(K, T)`` bool, track ``k`` has a detection in frame ``t``.
    """

    segment_id: str
    names: pd.Index
    k: np.ndarray
    t: np.ndarray
    world: np.ndarray
    score: np.ndarray
    first: np.ndarray
    last: np.ndarray
    observed: np.ndarray

    def grid(self, values: np.ndarray) -> np.ndarray:
        """``(K, T)`` float64 grid of per-detection ``values``, zero where not observed."""
        out = np.zeros(self.observed.shape)
        out[self.k, self.t] = values
        return out


def _box_bottom(boxes: np.ndarray) -> np.ndarray:
    """The bottom height of ``(N, 7)`` boxes: ``center_z - height / 2``."""
    return boxes[:, 2] - boxes[:, 5] / 2


def _place_detections(det: pd.DataFrame, seg: _SegmentFrames, segment_id: str) -> _SegmentTracks:
    """The segment's detections moved to the world frame and numbered by track and frame."""
    T = len(seg.times)
    t = seg.positions(det["frame_index"].to_numpy(np.int64), segment_id)
    k, names = pd.factorize(det["track_id"], sort=True)
    K = len(names)
    world = _to_world(det[BOX_COLUMNS].to_numpy(np.float64), seg.rotation[t], seg.translation[t])
    first, last = np.full(K, T), np.full(K, -1)
    np.minimum.at(first, k, t)
    np.maximum.at(last, k, t)
    observed = np.zeros((K, T), bool)
    observed[k, t] = True
    score = det["score"].to_numpy(np.float64)
    return _SegmentTracks(segment_id, names, k, t, world, score, first, last, observed)


def _track_sizes(tracks: _SegmentTracks, quantile: float) -> np.ndarray:
    """``(K, 3)`` length, width and height of each track: a score-weighted quantile."""
    K = len(tracks.names)
    return np.stack(
        [
            _grouped_weighted_quantile(tracks.world[:, c], tracks.score, tracks.k, K, quantile)
            for c in (3, 4, 5)
        ],
        axis=1,
    )


def _smoothed_centres(
    tracks: _SegmentTracks, times: np.ndarray, score_grid: np.ndarray, config: AutoLabelConfig
) -> np.ndarray:
    """``(K, T, 4)`` smoothed ``x, y, vx, vy`` of every track (``_rts_smooth``)."""
    r_var = config.measurement_noise_m**2 / np.clip(score_grid, _MIN_NOISE_SCORE, 1.0)
    return _rts_smooth(
        times,
        tracks.observed,
        np.stack([tracks.grid(tracks.world[:, 0]), tracks.grid(tracks.world[:, 1])], -1),
        r_var,
        tracks.first,
        tracks.last,
        config.accel_noise_mps2,
    )


def _travel(tracks: _SegmentTracks, xs: np.ndarray) -> np.ndarray:
    """``(K, 2)`` move of each track's smoothed centre from its first to its last frame."""
    every = np.arange(len(tracks.names))
    return xs[every, tracks.last, :2] - xs[every, tracks.first, :2]


def _window_kernel(config: AutoLabelConfig) -> np.ndarray:
    """The Gaussian window that smooths headings and bottoms, reaching across filled gaps."""
    return _gaussian_kernel(
        config.smoothing_sigma_frames,
        int(np.ceil(3 * config.smoothing_sigma_frames)) + config.max_gap,
    )


def _window_sums(
    values: np.ndarray, w: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score-weighted sums of ``(K, T)`` values in the window, and of the weights."""
    return (
        convolve1d(w * values, kernel, axis=1, mode="constant"),
        convolve1d(w, kernel, axis=1, mode="constant"),
    )


def _static_axis(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each track's axis from the weighted mean of doubled angles, turned to the side most
    detections agree with (the heading of a static object)."""
    axis = np.arctan2((w * np.sin(2 * h)).sum(1), (w * np.cos(2 * h)).sum(1)) / 2
    return np.where((w * np.cos(h - axis[:, None])).sum(1) < 0, axis + np.pi, axis)


def _headings(
    h: np.ndarray,
    w: np.ndarray,
    xs: np.ndarray,
    travel: np.ndarray,
    static: np.ndarray,
    kernel: np.ndarray,
    min_speed: float,
) -> np.ndarray:
    """``(K, T)`` heading of every track: a static one keeps its axis; a moving one points
    where it goes, else along its detections flipped to the travel and smoothed."""
    axis = _static_axis(h, w)
    reference = np.where(static, axis, np.arctan2(travel[:, 1], travel[:, 0]))
    aligned = _align_axis(h, reference[:, None])
    sin_sum, den = _window_sums(np.sin(aligned), w, kernel)
    cos_sum, _ = _window_sums(np.cos(aligned), w, kernel)
    has = den > 1e-12
    smooth_heading = np.where(has, np.arctan2(sin_sum, cos_sum), reference[:, None])
    speed = np.hypot(xs[..., 2], xs[..., 3])
    heading = np.where(speed >= min_speed, np.arctan2(xs[..., 3], xs[..., 2]), smooth_heading)
    return np.where(static[:, None], axis[:, None], heading)


def _bottoms(tracks: _SegmentTracks, w: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``(K, T)`` box bottom of every track, smoothed over the window (0 with no detection)."""
    bottom_sum, bottom_den = _window_sums(tracks.grid(_box_bottom(tracks.world)), w, kernel)
    return np.where(bottom_den > 1e-12, bottom_sum / np.maximum(bottom_den, 1e-300), 0.0)


def _hold_static(
    tracks: _SegmentTracks,
    static: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    bottom: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cx, cy, bottom`` with static tracks held at the weighted medians of their detections."""
    if not static.any():
        return cx, cy, bottom
    k, score, world = tracks.k, tracks.score, tracks.world
    sk = np.flatnonzero(static[k])  # detections of static tracks
    remap = np.full(len(tracks.names), -1)  # static track -> its row in the medians; -1 masked
    remap[static] = np.arange(static.sum())
    med = [
        _grouped_weighted_quantile(v[sk], score[sk], remap[k[sk]], int(static.sum()), 0.5)
        for v in (world[:, 0], world[:, 1], _box_bottom(world))
    ]
    cx = np.where(static[:, None], med[0][remap][:, None], cx)
    cy = np.where(static[:, None], med[1][remap][:, None], cy)
    bottom = np.where(static[:, None], med[2][remap][:, None], bottom)
    return cx, cy, bottom
