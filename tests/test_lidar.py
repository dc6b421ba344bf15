from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from rem_core.config import DomainConfig, LidarConfig
from rem_core.geometry import box_corners, count_points_in_boxes
from rem_core.world import HIT_GROUND, HIT_NONE, Lidar, Solids

EXACT = LidarConfig(range_noise_m=0.0, dropout=0.0)


def solids_from_boxes(boxes: np.ndarray, owner: list[int]) -> Solids:
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    rot = np.zeros((len(boxes), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    return Solids(
        center=boxes[:, :3],
        half=boxes[:, 3:6] / 2,
        rotation=rot,
        owner=np.array(owner),
        reflectivity=np.full(len(boxes), 0.3),
    )


def test_empty_scene_returns_only_ground_below_the_horizon():
    lidar = Lidar(EXACT)
    sweep = lidar.cast(solids_from_boxes(np.zeros((0, 7)), []), np.random.default_rng(0))
    pts, _ = lidar.points(sweep)
    assert np.allclose(pts[:, 2], 0.0, atol=1e-4)
    expected = EXACT.sensor_height_m / np.sin(-lidar.elevation)
    visible = (lidar.elevation < 0) & (expected <= EXACT.max_range_m)
    assert np.all(sweep.owner[visible] == HIT_GROUND)
    assert np.all(sweep.owner[~visible] == HIT_NONE)
    assert np.allclose(sweep.range[visible], expected[visible, None], rtol=1e-5)


def test_wall_ahead_is_hit_at_its_face():
    lidar = Lidar(EXACT)
    wall = np.array([[20.0, 0.0, 3.0, 2.0, 30.0, 6.0, 0.0]])  # front face at x = 19
    sweep = lidar.cast(solids_from_boxes(wall, [7]), np.random.default_rng(0))
    pts, ray = lidar.points(sweep)
    owner = sweep.owner.reshape(-1)[ray]
    on_wall = pts[owner == 7]
    assert len(on_wall) > 1000
    assert np.allclose(on_wall[:, 0], 19.0, atol=1e-3)
    # Straight ahead, every beam that reaches the wall before the ground stops there.
    ahead = sweep.owner[:, 0]
    hits_ground_first = EXACT.sensor_height_m / np.sin(-lidar.elevation.clip(max=-1e-9)) < 19
    assert np.all(ahead[~hits_ground_first] == 7)


def test_occluded_box_gets_no_points():
    lidar = Lidar(EXACT)
    boxes = np.array(
        [
            [10.0, 0.0, 2.0, 1.0, 8.0, 4.0, 0.0],  # a tall wall in front
            [20.0, 0.0, 0.75, 4.0, 1.8, 1.5, 0.0],  # a car behind it
        ]
    )
    sweep = lidar.cast(solids_from_boxes(boxes, [0, 1]), np.random.default_rng(0))
    assert (sweep.owner == 0).sum() > 0
    assert (sweep.owner == 1).sum() == 0
    alone = lidar.cast(solids_from_boxes(boxes[1:], [1]), np.random.default_rng(0))
    assert (alone.owner == 1).sum() > 100


def test_point_density_falls_with_distance():
    lidar = Lidar(EXACT)
    counts = []
    for x in (10.0, 20.0, 40.0):
        car = np.array([[x, 0.0, 0.75, 4.5, 1.8, 1.5, 0.3]])
        sweep = lidar.cast(solids_from_boxes(car, [0]), np.random.default_rng(0))
        counts.append(int((sweep.owner == 0).sum()))
    assert counts[0] > 2 * counts[1] > 4 * counts[2] > 0


def test_ray_windows_are_conservative():
    """Every ray that hits a box (brute force over all rays) lies in the box's window."""
    lidar = Lidar(LidarConfig(azimuth_step_deg=1.0, dropout=0.0, range_noise_m=0.0))
    rng = np.random.default_rng(3)
    boxes = np.column_stack(
        [
            rng.uniform(-30, 30, 40),
            rng.uniform(-30, 30, 40),
            rng.uniform(0.5, 3, 40),
            rng.uniform(0.5, 12, 40),
            rng.uniform(0.5, 3, 40),
            rng.uniform(0.5, 4, 40),
            rng.uniform(-np.pi, np.pi, 40),
        ]
    )
    boxes = boxes[np.hypot(boxes[:, 0], boxes[:, 1]) > 4]
    solids = solids_from_boxes(boxes, list(range(len(boxes))))
    n_beams, n_cols = lidar.shape
    box, beam, column = lidar.ray_windows(solids.corners())
    window = set(zip(box.tolist(), (beam * n_cols + column).tolist(), strict=True))
    every = np.arange(n_beams * n_cols)
    for i in range(len(boxes)):
        t, hit = lidar._slab(solids, np.full(len(every), i), every)
        for r in np.flatnonzero(hit):
            assert (i, int(r)) in window


def test_rain_adds_dropout_and_clutter():
    lidar = Lidar(LidarConfig())
    scene = solids_from_boxes(np.array([[15.0, 0.0, 0.75, 4.5, 1.8, 1.5, 0.0]]), [0])
    clear = lidar.points(lidar.cast(scene, np.random.default_rng(0)))[0]
    rain = lidar.points(lidar.cast(scene, np.random.default_rng(0), DomainConfig.rain()))[0]
    assert len(rain) < 0.85 * len(clear)
    near = lambda p: (np.hypot(p[:, 0], p[:, 1]) < 8) & (p[:, 2] > 0.5)  # noqa: E731
    assert near(rain).sum() > 10 * max(near(clear).sum(), 1)


@pytest.mark.parametrize("x", [10.0, 40.0])
def test_rain_dims_returns_by_wet_surfaces_and_two_way_extinction(x: float):
    lidar = Lidar(LidarConfig(dropout=0.0, range_noise_m=0.0))
    scene = solids_from_boxes(np.array([[x, 0.0, 1.5, 1.0, 20.0, 3.0, 0.0]]), [0])
    wet = DomainConfig(name="wet", surface_reflectivity=0.6, extinction_per_m=0.01)
    clear = lidar.cast(scene, np.random.default_rng(0))
    rain = lidar.cast(scene, np.random.default_rng(0), wet)
    on_wall = (clear.owner == 0) & (rain.owner == 0)
    assert on_wall.sum() > 50
    ratio = np.median(rain.intensity[on_wall]) / np.median(clear.intensity[on_wall])
    expected = 0.6 * np.exp(-2 * 0.01 * np.median(clear.range[on_wall]))
    assert ratio == pytest.approx(expected, rel=0.05)


def test_count_in_boxes_matches_brute_force_and_open3d():
    lidar = Lidar(LidarConfig())
    rng = np.random.default_rng(5)
    boxes = np.column_stack(
        [
            rng.uniform(-40, 40, 30),
            rng.uniform(-40, 40, 30),
            rng.uniform(0.5, 1.5, 30),
            rng.uniform(1, 10, 30),
            rng.uniform(1, 3, 30),
            rng.uniform(1, 3, 30),
            rng.uniform(-np.pi, np.pi, 30),
        ]
    )
    sweep = lidar.cast(solids_from_boxes(boxes, list(range(30))), rng)
    pts, ray = lidar.points(sweep)
    # Count in slightly grown boxes, so points lie strictly inside or outside.
    grown = boxes.copy()
    grown[:, 3:6] += 0.1
    fast = lidar.count_in_boxes(pts, ray, grown)
    assert np.array_equal(fast, count_points_in_boxes(pts, grown))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
    o3d_counts = []
    for b in grown:
        obb = o3d.geometry.OrientedBoundingBox(
            b[:3], o3d.geometry.get_rotation_matrix_from_xyz((0, 0, b[6])), b[3:6]
        )
        o3d_counts.append(len(obb.get_point_indices_within_bounding_box(cloud.points)))
    assert np.array_equal(fast, o3d_counts)
    assert fast.sum() > 500


@pytest.mark.parametrize("step", [0.2, 0.5])
def test_sweep_size_matches_the_configuration(step):
    lidar = Lidar(LidarConfig(azimuth_step_deg=step))
    assert lidar.shape == (64, round(360 / step))
    assert box_corners(np.zeros((1, 7))).shape == (1, 8, 3)


def test_terrain_flat_matches_the_plane_and_a_hill_rises_the_ground():
    lidar = Lidar(LidarConfig())
    empty = Solids(
        center=np.zeros((0, 3)),
        half=np.zeros((0, 3)),
        rotation=np.zeros((0, 3, 3)),
        owner=np.zeros(0, np.int64),
        reflectivity=np.zeros(0),
    )
    plane = lidar.cast(empty, np.random.default_rng(0), DomainConfig())
    flat = lidar.cast(
        empty, np.random.default_rng(0), DomainConfig(), terrain=lambda x, y: np.zeros_like(x)
    )
    both = np.isfinite(plane.range) & np.isfinite(flat.range)
    assert (np.isfinite(plane.range) == np.isfinite(flat.range)).mean() > 0.999
    np.testing.assert_allclose(flat.range[both], plane.range[both], atol=0.1)

    def slope(x, y):
        return 0.1 * x  # 10% uphill ahead, downhill behind

    hill = lidar.cast(empty, np.random.default_rng(0), DomainConfig(), terrain=slope)
    points = lidar.points(hill)[0]
    ground = points[np.abs(points[:, 1]) < 2]
    # every ground return lies on the slope, and the slope ahead is seen nearer than flat
    np.testing.assert_allclose(ground[:, 2], 0.1 * ground[:, 0], atol=0.12)
    ahead = lidar.azimuth < 0.01
    assert np.nanmax(np.where(np.isfinite(hill.range[:, ahead]), hill.range[:, ahead], np.nan)) < (
        np.nanmax(np.where(np.isfinite(plane.range[:, ahead]), plane.range[:, ahead], np.nan))
    )
