"""Waymo range images (rem_core.io.waymo_lidar): a round trip through the synthetic world's
LiDAR with a real top-LiDAR calibration, and the per-pixel pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_lidar import solids_from_boxes

from rem_core.config import LidarConfig
from rem_core.io import (
    beam_inclinations,
    decode_matrix,
    encode_matrix,
    frame_points,
    points_to_range_image,
    range_image_to_points,
    rotation_from_rpy,
)
from rem_core.world import Lidar

WAYMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "waymo" / "frames"

# An odd number of columns puts Waymo's column centres on our LiDAR's azimuths exactly.
CONFIG = LidarConfig(azimuth_step_deg=360 / 2025, dropout=0.0)


def calibration(yaw: float = -2.5849, explicit: bool = True):
    """A top-LiDAR calibration of our sensor: mounted 2 m up, turned by ``yaw``."""
    from waymo_open_dataset import dataset_pb2

    lidar = Lidar(CONFIG)
    c = dataset_pb2.LaserCalibration(name=dataset_pb2.LaserName.TOP)
    if explicit:
        c.beam_inclinations.extend(lidar.elevation.tolist())
    c.beam_inclination_min = float(lidar.elevation[0])
    c.beam_inclination_max = float(lidar.elevation[-1])
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rotation_from_rpy(np.array(0.0), np.array(0.0), np.array(yaw))
    extrinsic[:3, 3] = lidar.origin
    c.extrinsic.transform.extend(extrinsic.ravel().tolist())
    return c


def world_points() -> np.ndarray:
    lidar = Lidar(CONFIG)
    boxes = np.array([[12.0, 3.0, 0.8, 4.5, 1.9, 1.6, 0.3], [-8.0, -6.0, 1.5, 12.0, 2.6, 3.0, 1.2],
                      [30.0, -15.0, 0.9, 4.2, 1.8, 1.5, -0.4]])  # fmt: skip
    sweep = lidar.cast(solids_from_boxes(boxes, [0, 1, 2]), np.random.default_rng(0))
    points, _ = lidar.points(sweep)
    return points


def test_matrix_round_trip():
    a = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(decode_matrix(encode_matrix(a)), a)


@pytest.mark.parametrize("yaw", [0.0, -2.5849, 1.0])
def test_synthetic_sweep_round_trips_through_a_waymo_range_image(yaw: float):
    points = world_points()
    c = calibration(yaw)
    image = points_to_range_image(points, c, CONFIG.n_beams, CONFIG.n_columns)
    assert np.count_nonzero(image[:, :, 0] > 0) == len(points)  # one point per pixel
    back = range_image_to_points(image, c)
    from scipy.spatial import cKDTree

    gap, nearest = cKDTree(points[:, :3]).query(back[:, :3])
    assert len(back) == len(points) and len(set(nearest.tolist())) == len(points)  # one to one
    assert gap.max() < 2e-3  # float32 ranges and angles
    np.testing.assert_array_equal(back[:, 3], points[nearest, 3])


def test_uniform_inclinations_sit_at_cell_centres():
    c = calibration(explicit=False)
    incl = beam_inclinations(c, 4)
    lo, hi = c.beam_inclination_min, c.beam_inclination_max
    np.testing.assert_allclose(incl, lo + (np.array([3.5, 2.5, 1.5, 0.5]) / 4) * (hi - lo))
    with pytest.raises(ValueError, match="64 beam inclinations for a range image of 4 rows"):
        beam_inclinations(calibration(), 4)


def test_pixel_pose_corrects_the_motion_during_the_sweep():
    c = calibration(0.0)
    image = np.zeros((CONFIG.n_beams, CONFIG.n_columns, 4), np.float32)
    image[40, 100, 0], image[40, 1500, 0] = 10.0, 10.0
    frame_pose = np.eye(4)
    frame_pose[:3, :3] = rotation_from_rpy(np.array(0.0), np.array(0.0), np.array(0.5))
    frame_pose[:3, 3] = [100.0, 50.0, 3.0]
    # every pixel captured at the frame's pose: nothing moves
    rpyxyz = np.array([0.0, 0.0, 0.5, 100.0, 50.0, 3.0])
    pixel_pose = np.broadcast_to(rpyxyz, image.shape[:2] + (6,)).copy()
    still = range_image_to_points(image, c)
    np.testing.assert_allclose(range_image_to_points(image, c, pixel_pose, frame_pose), still,
                               atol=1e-4)  # fmt: skip
    # column 1500 captured 1 m further along the world's x: its point moves by R^T (1, 0, 0)
    pixel_pose[:, 1500, 3] += 1.0
    moved = range_image_to_points(image, c, pixel_pose, frame_pose)
    shift = frame_pose[:3, :3].T @ np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(moved[0], still[0], atol=1e-4)
    np.testing.assert_allclose(moved[1, :3] - still[1, :3], shift, atol=1e-4)
    with pytest.raises(ValueError, match="frame_pose: required"):
        range_image_to_points(image, c, pixel_pose)


@pytest.mark.skipif(not WAYMO.is_dir(), reason=f"no Waymo samples at {WAYMO}")
def test_a_real_frame_gets_points_from_a_range_image_laid_out_on_its_own_calibration():
    from rem_core.io import read_frames

    (frame,) = list(read_frames(WAYMO / "pvps_data_one_frame.tfrecord"))
    top = next(c for c in frame.context.laser_calibrations if c.name == 1)
    # The sample's laser entries were stripped: no name, no range image.
    with pytest.raises(ValueError, match="laser 0: no calibration"):
        frame_points(frame)
    laser = frame.lasers[0]
    laser.name = 1  # TOP
    with pytest.raises(ValueError, match="laser 1: no range image"):
        frame_points(frame, lasers=(1,))
    points = world_points()
    image = points_to_range_image(points, top, 64, 2650)
    laser.ri_return1.range_image_compressed = encode_matrix(image)
    back = frame_points(frame, lasers=(1,))
    # The real TOP LiDAR sees -18 to +2.6 degrees on a coarser grid than our sensor: beyond
    # its beams, points go to the outermost rows, and points sharing a pixel keep the nearest.
    assert len(back) > 0.5 * len(points)
    # every decoded point lies on one of the scene's surfaces: near an original point
    from scipy.spatial import cKDTree

    gap, _ = cKDTree(points[:, :3]).query(back[:, :3])
    assert np.quantile(gap, 0.99) < 0.3
