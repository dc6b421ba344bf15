"""Waymo v1 LiDAR range images: decoded to point clouds in the vehicle frame, and encoded.

A laser's first return (``Laser.ri_return1.range_image_compressed``) is a zlib-compressed
``MatrixFloat`` of shape ``(H, W, 4)``: range (metres; 0 or less for no return), intensity,
elongation and the no-label-zone flag. Pixel ``(i, j)`` looks along

- inclination ``incl[i]``: the calibration's ``beam_inclinations`` (ascending, lowest beam
  first) if given, else ``H`` values spread uniformly over ``[beam_inclination_min,
  beam_inclination_max]`` at cell centres; row 0 is the *highest* beam;
- azimuth ``az[j] = (2 (W - j - 0.5) / W - 1) pi - yaw``, in the sensor frame, with ``yaw``
  the extrinsic's (``atan2(R[1, 0], R[0, 0])``), so that columns are fixed in the vehicle
  frame;

so the point is ``r (cos az cos incl, sin az cos incl, sin incl)`` in the sensor frame and
``R p + t`` in the vehicle frame (``extrinsic``, sensor to vehicle). The top LiDAR also has
a per-pixel pose (``range_image_pose_compressed``, ``(H, W, 6)``: roll, pitch, yaw, x, y, z
of the vehicle in the world when that pixel was captured): its points go to the world with
the pixel's pose and back with the frame's, correcting the motion during the sweep. All of
it is vectorised over pixels; this follows ``waymo_open_dataset.utils.range_image_utils``.
"""

from __future__ import annotations

import zlib

import numpy as np

from rem_core.errors import InputError

__all__ = [
    "beam_inclinations",
    "decode_matrix",
    "encode_matrix",
    "frame_points",
    "points_to_range_image",
    "range_image_to_points",
    "rotation_from_rpy",
]


def decode_matrix(compressed: bytes) -> np.ndarray:
    """A zlib-compressed ``MatrixFloat`` as a float32 array of its shape."""
    from waymo_open_dataset import dataset_pb2

    matrix = dataset_pb2.MatrixFloat.FromString(zlib.decompress(compressed))
    return np.asarray(matrix.data, dtype=np.float32).reshape(tuple(matrix.shape.dims))


def encode_matrix(array: np.ndarray) -> bytes:
    """A float array as a zlib-compressed ``MatrixFloat``."""
    from waymo_open_dataset import dataset_pb2

    matrix = dataset_pb2.MatrixFloat()
    matrix.data.extend(np.asarray(array, dtype=np.float32).ravel().tolist())
    matrix.shape.dims.extend(array.shape)
    return zlib.compress(matrix.SerializeToString())


def beam_inclinations(calibration, height: int) -> np.ndarray:
    """``(H,)`` inclination of each range-image row, row 0 the highest, radians."""
    explicit = np.asarray(calibration.beam_inclinations, dtype=np.float64)
    if explicit.size:
        if explicit.size != height:
            raise InputError(
                f"laser {calibration.name}: {explicit.size} beam inclinations for a range "
                f"image of {height} rows"
            )
        ascending = explicit
    else:
        lo, hi = calibration.beam_inclination_min, calibration.beam_inclination_max
        ascending = lo + (0.5 + np.arange(height)) / height * (hi - lo)
    return ascending[::-1]


def _extrinsic(calibration) -> np.ndarray:
    return np.asarray(calibration.extrinsic.transform, dtype=np.float64).reshape(4, 4)


def _azimuths(width: int, extrinsic: np.ndarray) -> np.ndarray:
    yaw = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    ratios = (np.arange(width, 0, -1) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - yaw


def rotation_from_rpy(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotations ``Rz(yaw) Ry(pitch) Rx(roll)``."""
    cr, sr, cp, sp = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.stack(
        [
            np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], -1),
            np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], -1),
            np.stack([-sp, cp * sr, cp * cr], -1),
        ],
        -2,
    )


def range_image_to_points(
    range_image: np.ndarray,
    calibration,
    pixel_pose: np.ndarray | None = None,
    frame_pose: np.ndarray | None = None,
) -> np.ndarray:
    """The returns of one range image as points in the vehicle frame.

    Args:
        range_image: ``(H, W, >=2)`` float: range and intensity per pixel.
        calibration: the laser's ``dataset_pb2.LaserCalibration``.
        pixel_pose: ``(H, W, 6)`` per-pixel vehicle pose (top LiDAR), or ``None``.
        frame_pose: ``(4, 4)`` the frame's vehicle pose; required with ``pixel_pose``.

    Returns:
        ``(N, 4)`` float32 ``x, y, z, intensity`` of the pixels with a positive range, in row
        then column order.
    """
    image = np.asarray(range_image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] < 2:
        raise InputError(f"range_image: expected (H, W, >=2), got shape {image.shape}")
    h, w = image.shape[:2]
    extrinsic = _extrinsic(calibration)
    incl = beam_inclinations(calibration, h)
    az = _azimuths(w, extrinsic)
    rows, cols = np.nonzero(image[:, :, 0] > 0)
    r = image[rows, cols, 0]
    cos_incl = np.cos(incl[rows])
    sensor = np.column_stack(
        [r * np.cos(az[cols]) * cos_incl, r * np.sin(az[cols]) * cos_incl, r * np.sin(incl[rows])]
    )
    points = sensor @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    if pixel_pose is not None:
        if frame_pose is None:
            raise InputError("frame_pose: required with a pixel_pose")
        pose = np.asarray(pixel_pose, dtype=np.float64)[rows, cols]
        rot = rotation_from_rpy(pose[:, 0], pose[:, 1], pose[:, 2])
        world = np.einsum("nij,nj->ni", rot, points) + pose[:, 3:6]
        inverse = np.linalg.inv(np.asarray(frame_pose, dtype=np.float64))
        points = world @ inverse[:3, :3].T + inverse[:3, 3]
    return np.column_stack([points, image[rows, cols, 1]]).astype(np.float32)


def points_to_range_image(points: np.ndarray, calibration, height: int, width: int) -> np.ndarray:
    """Lay points (vehicle frame) out as a laser's range image, as Waymo does.

    Each point goes to the pixel of the nearest inclination and azimuth; where several share
    a pixel the nearest one is kept. Points further than half a beam spacing above the
    highest beam or below the lowest are outside the laser's view and left out.

    Returns:
        ``(H, W, 4)`` float32: range, intensity (the points' 4th column, or 0), elongation 0,
        no-label-zone 0; pixels without a point have range 0.
    """
    if height < 2 or width < 1:
        raise InputError(f"range image: needs at least 2 rows and 1 column, got {height} x {width}")
    pts = np.asarray(points, dtype=np.float64)
    extrinsic = _extrinsic(calibration)
    sensor = (pts[:, :3] - extrinsic[:3, 3]) @ extrinsic[:3, :3]
    r = np.linalg.norm(sensor, axis=1)
    incl = np.arcsin(np.clip(sensor[:, 2] / np.maximum(r, 1e-12), -1, 1))
    rows_incl = beam_inclinations(calibration, height)  # descending
    ascending = rows_incl[::-1]
    k = np.clip(np.searchsorted(ascending, incl), 1, height - 1)
    k -= (incl - ascending[k - 1]) < (ascending[k] - incl)
    spacing = np.abs(np.diff(ascending)).max() if height > 1 else np.inf
    seen = np.abs(incl - ascending[k]) <= spacing / 2
    sensor, r, incl, k, pts = sensor[seen], r[seen], incl[seen], k[seen], pts[seen]
    row = height - 1 - k
    yaw = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    az = np.arctan2(sensor[:, 1], sensor[:, 0])
    ratio = ((az + yaw) / np.pi + 1.0) / 2.0  # inverse of the azimuth formula
    col = np.mod(np.rint(width - 0.5 - ratio * width).astype(np.int64), width)
    image = np.zeros((height, width, 4), np.float32)
    order = np.argsort(-r)  # nearest last, so it wins
    image[row[order], col[order], 0] = r[order]
    if pts.shape[1] > 3:
        image[row[order], col[order], 1] = pts[order, 3]
    return image


def frame_points(frame, lasers: tuple[int, ...] | None = None) -> np.ndarray:
    """The first returns of a ``Frame``'s lasers as ``(N, 4)`` float32 points (vehicle frame).

    Args:
        frame: a ``dataset_pb2.Frame``.
        lasers: ``LaserName`` values to decode (default: all the frame has).

    Raises:
        ValueError: naming the laser, when it has no calibration or no range image.
    """
    calibrations = {c.name: c for c in frame.context.laser_calibrations}
    frame_pose = np.asarray(frame.pose.transform, dtype=np.float64).reshape(4, 4)
    chunks = [np.zeros((0, 4), np.float32)]
    for laser in frame.lasers:
        if lasers is not None and laser.name not in lasers:
            continue
        if laser.name not in calibrations:
            raise InputError(f"laser {laser.name}: no calibration in the frame's context")
        compressed = laser.ri_return1.range_image_compressed
        if not compressed:
            raise InputError(f"laser {laser.name}: no range image (first return)")
        image = decode_matrix(compressed)
        pose = laser.ri_return1.range_image_pose_compressed
        pixel_pose = decode_matrix(pose) if pose else None
        chunks.append(
            range_image_to_points(
                image,
                calibrations[laser.name],
                pixel_pose,
                frame_pose if pixel_pose is not None else None,
            )
        )
    return np.concatenate(chunks)
