"""Poses, heading axes and the constant-velocity Kalman filter of the tracker and auto-labeler."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.geometry import wrap_angle
from rem_core.schema import FRAMES, conform

__all__: list[str] = []

log = logging.getLogger(__name__)

#: Standard deviation of a new track's unknown velocity, m/s: wide enough for fast traffic.
_INITIAL_SPEED_STD_MPS = 10.0
#: Scores below this are clipped when they scale a detection's measurement noise.
_MIN_NOISE_SCORE = 0.1


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
            raise InputError(
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
            raise InputError(f"frames: segment {segment_id!r} lists a frame twice")
        micros = f["timestamp_micros"].to_numpy(np.int64)
        if (np.diff(micros) <= 0).any():
            raise InputError(
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


def _align_axis(angle: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``angle`` or ``angle + pi``, whichever lies within pi/2 of ``reference``, wrapped."""
    flip = np.cos(angle - reference) < 0
    return wrap_angle(angle + np.pi * flip)


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
