"""Multi-object tracking of detections and offboard auto-labelling of the tracks.

Box convention (as Waymo, see ``rem_core.boxes``): ``center_x, center_y, center_z, length,
width, height, heading`` in metres and radians, geometric centre, ``length`` along the
heading, heading in [-pi, pi) counter-clockwise from +x. Tables keep their boxes in the
vehicle frame of their own frame; tracking and smoothing happen in the segment's fixed
world frame, reached through each frame's vehicle-to-world pose (``FRAMES`` table).

* ``track_detections``: a constant-velocity Kalman filter per track on the BEV centre
  ``(x, y, vx, vy)`` in the world frame, Hungarian matching on the centre distance to the
  predicted position with a gate, two association passes (confident detections first, then
  low-score ones, which may extend tracks but never start them), death after
  ``max_missed`` frames without a match.
* ``tracking_metrics``: ID switches, fragmentations, purity and mostly-tracked ratio against
  ground-truth track ids, on score-first greedy BEV IoU matching
  (``rem_core.evaluate.evaluate_detections``).
* ``auto_label``: offboard refinement that sees each whole track, past and future (after
  Qi et al. 2021, "Offboard 3D object detection from point cloud sequences"): one size per
  object, Rauch-Tung-Striebel smoothed centres, headings resolved modulo pi and aligned
  with the motion, static objects held at one pose, short gaps filled.
* ``simulate_detections``: noisy single-frame detections made from ground-truth boxes, a
  stand-in detector for tests and benchmarks.

``docs/tracking.md`` describes the method, the settings and measured figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import convolve1d
from scipy.optimize import linear_sum_assignment

from rem_core.boxes import wrap_angle
from rem_core.config import AutoLabelConfig, TrackerConfig, _is_number
from rem_core.evaluate import evaluate_detections
from rem_core.schema import BOX_COLUMNS, DETECTIONS, FRAMES, conform

__all__ = [
    "AutoLabelConfig",
    "TrackerConfig",
    "TrackingMetrics",
    "auto_label",
    "simulate_detections",
    "track_detections",
    "tracking_metrics",
]

log = logging.getLogger(__name__)

#: Standard deviation of a new track's unknown velocity, m/s: wide enough for fast traffic.
_INITIAL_SPEED_STD_MPS = 10.0
#: Scores below this are clipped when they scale a detection's measurement noise.
_MIN_NOISE_SCORE = 0.1


# --------------------------------------------------------------------------- poses


@dataclass(frozen=True, eq=False)
class _SegmentFrames:
    """One segment's frames in frame order.

    Attributes:
        frame_index: ``(T,)`` int64 frame numbers, increasing.
        times: ``(T,)`` float64 seconds since the segment's first frame.
        rotation: ``(T, 3, 3)`` vehicle-to-world rotations.
        translation: ``(T, 3)`` vehicle origins in the world frame, metres.
        yaw: ``(T,)`` heading of the vehicle's +x axis in the world frame, radians.
    """

    frame_index: np.ndarray
    times: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    yaw: np.ndarray

    def positions(self, frame_index: np.ndarray, segment_id: str) -> np.ndarray:
        """``(N,)`` positions in this segment's frame order of the given frame numbers."""
        pos = np.searchsorted(self.frame_index, frame_index)
        pos = np.minimum(pos, len(self.frame_index) - 1)
        bad = self.frame_index[pos] != frame_index
        if bad.any():
            raise ValueError(
                f"detections: frame {int(frame_index[np.flatnonzero(bad)[0]])} of segment "
                f"{segment_id!r} is not in the frames table"
            )
        return pos


def _rotations(q: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotation matrices of ``(N, 4)`` quaternions ``w, x, y, z``."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def _segment_frames(frames: pd.DataFrame) -> dict[str, _SegmentFrames]:
    """Poses and times of every segment of a ``FRAMES`` table, by segment id."""
    frames = conform(frames, FRAMES, "frames")
    out = {}
    for segment_id, f in frames.groupby("segment_id", sort=False):
        f = f.sort_values("frame_index", kind="stable")
        index = f["frame_index"].to_numpy(np.int64)
        if (np.diff(index) == 0).any():
            raise ValueError(f"frames: segment {segment_id!r} lists a frame twice")
        micros = f["timestamp_micros"].to_numpy(np.int64)
        if (np.diff(micros) <= 0).any():
            raise ValueError(
                f"frames: timestamp_micros of segment {segment_id!r} must increase with frame_index"
            )
        rotation = _rotations(f[["pose_qw", "pose_qx", "pose_qy", "pose_qz"]].to_numpy())
        out[str(segment_id)] = _SegmentFrames(
            frame_index=index,
            times=(micros - micros[0]) / 1e6,
            rotation=rotation,
            translation=f[["pose_x", "pose_y", "pose_z"]].to_numpy(np.float64),
            yaw=np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0]),
        )
    return out


def _to_world(boxes: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Vehicle-frame boxes to the world frame, row by row.

    Args:
        boxes: ``(N, 7)`` boxes, each in the vehicle frame of its own frame.
        rotation: ``(N, 3, 3)`` vehicle-to-world rotation of each box's frame.
        translation: ``(N, 3)`` vehicle origin of each box's frame, world frame, metres.

    Returns:
        ``(N, 7)`` world-frame boxes. Headings add the pose's yaw: roll and pitch are
        taken as small, as for a vehicle on a road.
    """
    out = boxes.copy()
    out[:, :3] = np.einsum("nij,nj->ni", rotation, boxes[:, :3]) + translation
    out[:, 6] = wrap_angle(boxes[:, 6] + np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0]))
    return out


def _to_vehicle(boxes: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The inverse of ``_to_world``: ``(N, 7)`` world boxes to their frames' vehicle frame."""
    out = boxes.copy()
    out[:, :3] = np.einsum("nji,nj->ni", rotation, boxes[:, :3] - translation)
    out[:, 6] = wrap_angle(boxes[:, 6] - np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0]))
    return out


# --------------------------------------------------------------------------- Kalman filter


def _cv_model(dt: float, accel_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition ``F`` and process noise ``Q`` (both ``(4, 4)``) of the state ``x, y, vx, vy``.

    ``Q`` is the discretised white-acceleration model: per axis
    ``accel_std**2 * [[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]``.
    """
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    q = accel_std**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    Q = np.zeros((4, 4))
    Q[np.ix_([0, 2], [0, 2])] = q
    Q[np.ix_([1, 3], [1, 3])] = q
    return F, Q


def _kf_predict(
    x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predict ``(K, 4)`` states and ``(K, 4, 4)`` covariances one step ahead."""
    return x @ F.T, F @ P @ F.T + Q


def _kf_update(
    x: np.ndarray, P: np.ndarray, z: np.ndarray, r_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Update ``(K, 4)`` states and ``(K, 4, 4)`` covariances with ``(K, 2)`` centres.

    Args:
        x: states ``x, y, vx, vy`` (metres, m/s).
        P: their covariances.
        z: measured BEV centres, metres.
        r_var: ``(K,)`` measurement variance per centre coordinate, m^2.
    """
    S = P[:, :2, :2] + r_var[:, None, None] * np.eye(2)
    gain = P[:, :, :2] @ np.linalg.inv(S)  # (K, 4, 2)
    x = x + np.einsum("kij,kj->ki", gain, z - x[:, :2])
    P = P - gain @ P[:, :2, :]
    return x, (P + P.transpose(0, 2, 1)) / 2


def _initial_state(z: np.ndarray, r_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States at rest at ``(K, 2)`` centres, with an unknown velocity."""
    x = np.zeros((len(z), 4))
    x[:, :2] = z
    P = np.zeros((len(z), 4, 4))
    P[:, 0, 0] = P[:, 1, 1] = r_var
    P[:, 2, 2] = P[:, 3, 3] = _INITIAL_SPEED_STD_MPS**2
    return x, P


# --------------------------------------------------------------------------- tracker


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
    detections: pd.DataFrame, frames: pd.DataFrame, config: TrackerConfig
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
    for segment_id, rows in det.groupby("segment_id", sort=False).indices.items():
        if segment_id not in poses:
            raise ValueError(f"detections: segment {segment_id!r} is not in the frames table")
        seg = poses[segment_id]
        sub = det.iloc[rows]
        t = seg.positions(sub["frame_index"].to_numpy(np.int64), segment_id)
        world = _to_world(
            sub[BOX_COLUMNS].to_numpy(np.float64), seg.rotation[t], seg.translation[t]
        )
        numbers = _track_segment(
            seg.times, t, world, sub["score"].to_numpy(np.float64), class_code[rows], config
        )
        ok = numbers >= 0
        track_id[rows[ok]] = [f"t{k:04d}" for k in numbers[ok]]
        n_frames += len(seg.times)
        log.debug("segment %s: %d detections, %d tracks", segment_id, len(rows), numbers.max() + 1)
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


# --------------------------------------------------------------------------- metrics


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
    (``rem_core.evaluate.evaluate_detections``); then, along each ground-truth track in
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
        raise ValueError("tracked: no track_id column; run track_detections first")
    if "track_id" not in ground_truth.columns:
        raise ValueError("ground_truth: no track_id column; tracking needs true track ids")
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


# --------------------------------------------------------------------------- auto-labeller


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


def auto_label(
    tracked: pd.DataFrame, frames: pd.DataFrame, config: AutoLabelConfig
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
    parts = []
    for segment_id, rows in det.groupby("segment_id", sort=False):
        if segment_id not in poses:
            raise ValueError(f"tracked: segment {segment_id!r} is not in the frames table")
        parts.append(_label_segment(rows, poses[segment_id], str(segment_id), config))
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


# --------------------------------------------------------------------------- stand-in detector


def simulate_detections(
    boxes: pd.DataFrame,
    *,
    seed: int = 0,
    center_noise_m: float = 0.4,
    size_noise: float = 0.15,
    heading_noise_rad: float = 0.1,
    flip_probability: float = 0.05,
    miss_probability: float = 0.15,
    false_positives_per_frame: float = 2.0,
) -> pd.DataFrame:
    """Noisy single-frame detections made from ground-truth boxes: a stand-in detector.

    Each box is missed with ``miss_probability``; the others get BEV centre noise of
    standard deviation ``center_noise_m * (0.75 + 0.5 * exp(-num_points / 50))`` (sparse
    objects are located worse), 0.1 m vertical noise, log-normal size noise of standard
    deviation ``size_noise`` that shrinks sparse objects (median scale
    ``exp(-0.1 * exp(-num_points / 50))``, as partial views do), heading noise, and a
    heading flipped by pi with ``flip_probability``. Scores grow with the points on the
    object: ``sigmoid(1.5 * (log10(num_points + 1) - 1) + N(0, 0.5))``. Each frame that has
    a box also gets ``Poisson(false_positives_per_frame)`` false positives: copies of random
    boxes of the table placed 5-60 m away at random, scoring ``0.4 * Beta(1, 3)``.

    Args:
        boxes: ground truth in the ``BOXES`` schema (vehicle frame).
        seed: seed of the generator.
        center_noise_m: BEV centre noise scale, metres.
        size_noise: standard deviation of the log size scale.
        heading_noise_rad: standard deviation of the heading noise, radians.
        flip_probability: chance that a heading is off by pi.
        miss_probability: chance that a box is not detected.
        false_positives_per_frame: mean false positives per frame.

    Returns:
        A table in the ``DETECTIONS`` schema (``track_id`` null), ordered by segment and
        frame, ``detection_id`` 0, 1, ...
    """
    for name, value, hi in [
        ("center_noise_m", center_noise_m, 10.0),
        ("size_noise", size_noise, 2.0),
        ("heading_noise_rad", heading_noise_rad, np.pi),
        ("flip_probability", flip_probability, 1.0),
        ("miss_probability", miss_probability, 1.0),
        ("false_positives_per_frame", false_positives_per_frame, 1000.0),
    ]:
        if not (_is_number(value) and 0 <= value <= hi):
            raise ValueError(f"{name}: must be in [0, {hi}], got {value}")
    rng = np.random.default_rng(seed)
    gt = boxes[rng.random(len(boxes)) >= miss_probability].reset_index(drop=True)
    n = len(gt)
    pts = gt["num_points"].to_numpy(np.float64)
    sparse = np.exp(-pts / 50)
    b = gt[BOX_COLUMNS].to_numpy(np.float64).copy()
    b[:, :2] += rng.normal(0, 1, (n, 2)) * (center_noise_m * (0.75 + 0.5 * sparse))[:, None]
    b[:, 2] += rng.normal(0, 0.1, n)
    b[:, 3:6] *= np.exp(rng.normal(-0.1 * sparse[:, None], size_noise, (n, 3)))
    b[:, 6] += rng.normal(0, heading_noise_rad, n) + np.pi * (rng.random(n) < flip_probability)
    logit = 1.5 * (np.log10(pts + 1) - 1) + rng.normal(0, 0.5, n)
    true = pd.DataFrame(
        {
            "segment_id": gt["segment_id"].to_numpy(),
            "frame_index": gt["frame_index"].to_numpy(),
            "class": gt["class"].to_numpy(),
            **{c: b[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": 1 / (1 + np.exp(-logit)),
            "num_points": gt["num_points"].to_numpy(),
        }
    )

    frames = boxes[["segment_id", "frame_index"]].drop_duplicates().reset_index(drop=True)
    n_fp = rng.poisson(false_positives_per_frame, len(frames)) if len(boxes) else np.zeros(0, int)
    src = boxes.iloc[rng.integers(0, max(len(boxes), 1), n_fp.sum())]
    fb = src[BOX_COLUMNS].to_numpy(np.float64).copy()
    r, a = rng.uniform(5, 60, len(fb)), rng.uniform(-np.pi, np.pi, len(fb))
    fb[:, 0], fb[:, 1], fb[:, 6] = r * np.cos(a), r * np.sin(a), rng.uniform(-np.pi, np.pi, len(fb))
    fake = pd.DataFrame(
        {
            "segment_id": np.repeat(frames["segment_id"].to_numpy(), n_fp),
            "frame_index": np.repeat(frames["frame_index"].to_numpy(), n_fp),
            "class": src["class"].to_numpy(),
            **{c: fb[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": 0.4 * rng.beta(1, 3, len(fb)),
            "num_points": rng.integers(1, 6, len(fb)),
        }
    )
    out = pd.concat([true, fake], ignore_index=True)
    segment_order = {s: i for i, s in enumerate(pd.unique(boxes["segment_id"]))}
    out = out.iloc[
        np.lexsort((out["frame_index"].to_numpy(), out["segment_id"].map(segment_order)))
    ].reset_index(drop=True)
    out["heading"] = wrap_angle(out["heading"].to_numpy())
    out["detection_id"] = np.arange(len(out), dtype=np.int64)
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    out["track_id"] = None
    return conform(out, DETECTIONS, "simulated detections")
