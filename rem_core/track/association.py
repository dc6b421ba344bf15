"""The tracker's live tracks and their association with one frame's detections.

``_Tracks`` holds the live tracks of a segment (the constant-velocity Kalman state of the
BEV centre in the world frame, the class, and an exponentially smoothed size and heading)
and ``_Detections`` the segment's detections in the world frame. The steps of one frame work on
them: the gate of each track, which widens with the predicted centre's uncertainty;
Hungarian matching of tracks to detections on the BEV centre distance within the gates
(``_associate``), in two stages, confident detections first and low-score ones after
(``_match_frame``); the update of the matched tracks; and new tracks born from unmatched
confident detections. ``rem_core.track.tracker`` runs these steps frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from rem_core.config import TrackerConfig
from rem_core.geometry import wrap_angle
from rem_core.track.motion import _align_axis, _initial_state, _kf_update

__all__: list[str] = []


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


@dataclass
class _Tracks:
    """The live tracks of a segment, one row each.

    Attributes:
        x: ``(K, 4)`` Kalman state ``x, y, vx, vy``, world frame (metres, m/s).
        P: ``(K, 4, 4)`` covariance of ``x``.
        number: ``(K,)`` int64 track number.
        missed: ``(K,)`` int64 consecutive frames without a match.
        track_class: ``(K,)`` int class code.
        size: ``(K, 3)`` smoothed length, width and height.
        heading: ``(K,)`` smoothed heading.
    """

    x: np.ndarray
    P: np.ndarray
    number: np.ndarray
    missed: np.ndarray
    track_class: np.ndarray
    size: np.ndarray
    heading: np.ndarray

    @classmethod
    def empty(cls) -> _Tracks:
        """No tracks."""
        return cls(
            np.zeros((0, 4)),
            np.zeros((0, 4, 4)),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros(0),
        )

    def __len__(self) -> int:
        """The number of tracks."""
        return len(self.x)

    def extended(self, other: _Tracks) -> _Tracks:
        """These tracks followed by ``other``'s."""
        return _Tracks(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                for f in fields(self)
            }
        )

    def subset(self, keep: np.ndarray) -> _Tracks:
        """The tracks where the bool mask ``keep`` is set."""
        return _Tracks(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})


@dataclass(frozen=True)
class _Detections:
    """One segment's detections in the world frame, one row each.

    Attributes:
        centers: ``(N, 2)`` BEV box centres, metres.
        size: ``(N, 3)`` length, width and height, metres.
        heading: ``(N,)`` headings, radians.
        score: ``(N,)`` confidences.
        det_class: ``(N,)`` int class codes.
    """

    centers: np.ndarray
    size: np.ndarray
    heading: np.ndarray
    score: np.ndarray
    det_class: np.ndarray


def _frame_stages(
    rows: np.ndarray, score: np.ndarray, config: TrackerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's detections ``rows`` that may start tracks, and those that may only extend
    them; detections scoring below ``min_score`` are dropped."""
    rows = rows[score[rows] >= config.min_score]
    return rows[score[rows] >= config.birth_score], rows[score[rows] < config.birth_score]


def _gates(tracks: _Tracks, r_var: float, config: TrackerConfig) -> np.ndarray:
    """``(K,)`` gate of each track, metres.

    The gate widens with the predicted centre's uncertainty, so that a young track, whose
    velocity is still unknown, can find an object that moved.
    """
    spread = np.sqrt(np.linalg.eigvalsh(tracks.P[:, :2, :2])[:, -1] + r_var)
    return np.maximum.reduce(
        [
            np.full(len(tracks), config.max_match_distance_m),
            config.gate_length_fraction * tracks.size[:, 0],
            config.gate_sigmas * spread,
        ]
    )


def _match_frame(
    tracks: _Tracks,
    gate: np.ndarray,
    stages: tuple[np.ndarray, ...],
    dets: _Detections,
    class_aware: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match one frame's detections to the tracks, stage by stage (``_associate``).

    Returns:
        ``(M,)`` matched track positions, ``(M,)`` their detection rows, and a ``(K,)``
        bool mask of the tracks left unmatched.
    """
    free = np.ones(len(tracks), bool)
    matched_tracks, matched_rows = [], []
    for stage in stages:  # ByteTrack's order: confident detections choose first
        candidates = np.flatnonzero(free)
        ti, di = _associate(
            tracks.x[candidates, :2],
            gate[candidates],
            tracks.track_class[candidates],
            dets.centers[stage],
            dets.det_class[stage],
            class_aware,
        )
        matched_tracks.append(candidates[ti])
        matched_rows.append(stage[di])
        free[candidates[ti]] = False
    return np.concatenate(matched_tracks), np.concatenate(matched_rows), free


def _update_matched(
    tracks: _Tracks,
    mt: np.ndarray,
    mr: np.ndarray,
    dets: _Detections,
    r_var: float,
    alpha: float,
) -> None:
    """Update the tracks ``mt`` in place with their detections ``mr``: Kalman update of the
    centre, exponential smoothing of heading and size."""
    tracks.x[mt], tracks.P[mt] = _kf_update(
        tracks.x[mt], tracks.P[mt], dets.centers[mr], np.full(len(mt), r_var)
    )
    observed = _align_axis(dets.heading[mr], tracks.heading[mt])
    tracks.heading[mt] = wrap_angle(
        tracks.heading[mt] + alpha * wrap_angle(observed - tracks.heading[mt])
    )
    tracks.size[mt] += alpha * (dets.size[mr] - tracks.size[mt])


def _born_tracks(dets: _Detections, born: np.ndarray, r_var: float, first: int) -> _Tracks:
    """New tracks started from the detections ``born``, numbered from ``first``."""
    x0, P0 = _initial_state(dets.centers[born], np.full(len(born), r_var))
    return _Tracks(
        x0,
        P0,
        first + np.arange(len(born)),
        np.zeros(len(born), np.int64),
        dets.det_class[born],
        dets.size[born],
        dets.heading[born],
    )
