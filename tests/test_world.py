from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import open3d as o3d
import pandas as pd
import pytest

from rem_core.config import DEFAULT_VEHICLE_MIX, DomainConfig, WorldConfig
from rem_core.geometry import count_points_in_boxes, size_subset
from rem_core.schema import BOX_COLUMNS, BOXES, FRAMES, conform
from rem_core.world import NOISE_KINDS, plan_segments, simulate_segment, simulate_world
from rem_core.world.scene import _SceneBuilder


@pytest.fixture(scope="module")
def segment(tiny_config):
    return simulate_segment(tiny_config, 1)


def test_same_seed_same_world(tiny_config, segment):
    again = simulate_segment(tiny_config, 1)
    pd.testing.assert_frame_equal(segment.boxes, again.boxes)
    pd.testing.assert_frame_equal(segment.frames, again.frames)
    assert np.array_equal(segment.points, again.points)
    other = simulate_segment(dataclasses.replace(tiny_config, seed=1), 1)
    assert not np.array_equal(segment.points[:1000], other.points[:1000])


def test_a_segment_is_the_same_alone_or_in_the_world(tiny_config, segment):
    in_world = list(simulate_world(tiny_config))[1]
    pd.testing.assert_frame_equal(segment.boxes, in_world.boxes)
    assert np.array_equal(segment.points, in_world.points)


def test_tables_follow_the_schema(segment):
    conform(segment.boxes, BOXES, "boxes")
    conform(segment.frames, FRAMES, "frames")
    assert segment.boxes["heading"].between(-np.pi, np.pi, inclusive="left").all()
    assert not segment.boxes.duplicated(["frame_index", "track_id"]).any()
    assert (segment.frames["num_points"].to_numpy() == np.diff(segment.offsets)).all()


def test_frames_look_like_a_64_beam_sweep(segment):
    per_frame = np.diff(segment.offsets)
    assert 80_000 < per_frame.mean() < 130_000
    pts = segment.frame_points(0)
    assert np.hypot(pts[:, 0], pts[:, 1]).max() <= 75.5
    assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 1


def test_splits_and_domains(tiny_config):
    plan = plan_segments(WorldConfig(n_segments=20, n_val_segments=3, n_ood_segments=2))
    assert Counter(plan["split"]) == {"source": 2, "unlabelled": 18, "validation": 3, "ood": 2}
    assert set(plan.loc[plan["split"] == "ood", "domain"]) == {"rain"}
    assert plan["segment_id"].is_unique


def test_num_points_equals_a_recount(tiny_world):
    """Stored num_points equals recounts by a plain test and by open3d, on stored points."""
    frames = tiny_world.frames.sample(6, random_state=0)
    for seg, f in frames[["segment_id", "frame_index"]].itertuples(index=False):
        pts = tiny_world.points(seg, f)
        boxes = tiny_world.frame_boxes(seg, f)
        arr = boxes[BOX_COLUMNS].to_numpy()
        assert np.array_equal(boxes["num_points"], count_points_in_boxes(pts, arr))
        cloud = o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64))
        for b, n in zip(arr, boxes["num_points"], strict=True):
            obb = o3d.geometry.OrientedBoundingBox(
                b[:3], o3d.geometry.get_rotation_matrix_from_xyz((0, 0, b[6])), b[3:6]
            )
            # open3d's bounds test can differ on points lying exactly on a face.
            assert abs(len(obb.get_point_indices_within_bounding_box(cloud)) - n) <= 1


def test_only_seen_objects_are_labelled(tiny_world):
    clean = tiny_world.boxes[~tiny_world.boxes["label_noise"]]
    assert (clean["num_points"] >= 1).all()
    assert (tiny_world.boxes["distance"] <= 75.0).all()


def test_tracks_move_continuously(tiny_world):
    """A track's boxes keep their size and move by speed x time between appearances."""
    b = tiny_world.boxes.merge(tiny_world.frames, on=["segment_id", "frame_index"])
    b = b[~b["label_noise"]].sort_values(["segment_id", "track_id", "frame_index"])
    yaw = 2 * np.arctan2(b["pose_qz"], b["pose_qw"])
    wx = b["pose_x"] + np.cos(yaw) * b["center_x"] - np.sin(yaw) * b["center_y"]
    wy = b["pose_y"] + np.sin(yaw) * b["center_x"] + np.cos(yaw) * b["center_y"]
    vx = np.cos(yaw) * b["speed_x"] - np.sin(yaw) * b["speed_y"]
    vy = np.sin(yaw) * b["speed_x"] + np.cos(yaw) * b["speed_y"]
    key = b["segment_id"] + "/" + b["track_id"]
    same = (key == key.shift()).to_numpy()
    dt = (b["timestamp_micros"].diff() / 1e6).to_numpy()
    step = np.hypot(wx.diff() - vx * dt, wy.diff() - vy * dt).to_numpy()
    assert same.sum() > 500
    assert np.nanmax(step[same]) < 1e-3
    for col in ("length", "width", "height"):
        assert np.nanmax(np.abs(b[col].diff().to_numpy()[same])) < 1e-9


def test_subtype_mix_follows_the_configuration():
    config = WorldConfig.demo()
    counts: Counter[str] = Counter()
    for i in range(60):
        scene = _SceneBuilder(config, DomainConfig(), np.random.default_rng([7, i, 0]))
        scene.build_parked()
        scene.build_traffic()
        counts.update(a.subtype for a in scene.agents if a.cls == "vehicle")
    n = sum(counts.values())
    assert n > 5000
    for subtype, p in DEFAULT_VEHICLE_MIX:
        tolerance = 4 * np.sqrt(p * (1 - p) / n) + 0.002
        assert abs(counts[subtype] / n - p) < tolerance, subtype


def test_vehicle_sizes_follow_the_long_tail(tiny_world):
    t = tiny_world.tracks
    v = t[t["class"] == "vehicle"]
    subset = size_subset(v["length"], v["width"], v["height"])
    fam = (
        v["subtype"]
        .map(
            {
                "bus": "large",
                "box_truck": "large",
                "tractor_trailer": "large",
                "car_carrier": "large",
            }
        )
        .fillna("other")
    )
    assert (subset[fam.to_numpy() == "large"] == "large").all()
    regular = v["subtype"].isin(["sedan", "hatchback", "suv", "pickup", "van"]).to_numpy()
    assert (subset[regular] == "regular").all()
    assert (subset == "regular").mean() > 0.9


def test_label_noise_is_flagged_and_wrong(tiny_config):
    noisy = simulate_segment(dataclasses.replace(tiny_config, label_noise_fraction=0.3), 0)
    clean = simulate_segment(dataclasses.replace(tiny_config, label_noise_fraction=0.0), 0)
    assert not clean.boxes["label_noise"].any()
    vehicles = noisy.boxes["class"] == "vehicle"
    share = noisy.boxes.loc[vehicles, "label_noise"].mean()
    assert 0.2 < share < 0.4
    assert not noisy.boxes.loc[~vehicles, "label_noise"].any()
    kinds = set(noisy.boxes.loc[noisy.boxes["label_noise"], "noise_kind"])
    assert kinds <= set(NOISE_KINDS) and len(kinds) >= 4, kinds
    merged = noisy.boxes.merge(clean.boxes, on=["frame_index", "track_id"], suffixes=("", "_t"))
    wrong = merged[merged["label_noise"]]
    size = ["length", "width", "height"]
    resized = (
        np.abs(wrong[size].to_numpy() - wrong[[c + "_t" for c in size]].to_numpy()) > 1e-6
    ).any(1)
    moved = np.hypot(
        wrong["center_x"] - wrong["center_x_t"], wrong["center_y"] - wrong["center_y_t"]
    ).to_numpy()
    turned = np.abs(np.sin(wrong["heading"] - wrong["heading_t"])).to_numpy()
    kind = wrong["noise_kind"].to_numpy()
    assert resized[np.isin(kind, ["partial", "wrong_size", "merged"])].all()
    # the kinds that keep a plausible size keep the box's size exactly
    assert not resized[np.isin(kind, ["shifted", "heading_90"])].any()
    assert (moved[kind == "shifted"] > 0.5).all()
    assert (turned[kind == "heading_90"] > 0.99).all()
    # a box merged over two cars swallows the second car's box in that frame
    n_merged = int((noisy.boxes["noise_kind"] == "merged").sum())
    assert len(noisy.boxes) == len(clean.boxes) - n_merged
    # Label noise does not change the scene or the sensor.
    assert np.array_equal(noisy.points, clean.points)


def test_rare_subtypes_of_regular_size(tiny_config):
    config = dataclasses.replace(
        tiny_config,
        vehicle_mix=(("sedan", 0.4), ("tow_truck", 0.2), ("open_door", 0.2), ("roof_box", 0.2)),
    )
    boxes = pd.concat([simulate_segment(config, i).boxes for i in range(2)])
    v = boxes[(boxes["class"] == "vehicle") & ~boxes["label_noise"]]
    towed, trucks = v[v["subtype"] == "towed_car"], v[v["subtype"] == "tow_truck"]
    assert len(towed) and len(trucks)
    # a towed car rides on its truck's bed: a regular car's box, a metre above the road
    assert (size_subset(towed["length"], towed["width"], towed["height"]) == "regular").all()
    assert (towed["center_z"] - towed["height"] / 2 > 0.9).all()
    assert (trucks["center_z"] - trucks["height"] / 2 < 0.1).all()
    # cars with open doors are only parked; the others drive too
    assert (
        np.hypot(
            v.loc[v["subtype"] == "open_door", "speed_x"],
            v.loc[v["subtype"] == "open_door", "speed_y"],
        )
        < 0.1
    ).all()
    roof = v[v["subtype"] == "roof_box"]
    assert (
        len(roof)
        and (size_subset(roof["length"], roof["width"], roof["height"]) == "regular").all()
    )


def test_rain_region_has_spray_and_a_wet_road(tiny_config):
    from rem_core.config import DomainConfig
    from rem_core.world import HIT_CLUTTER, Lidar, Solids

    lidar = Lidar(tiny_config.lidar)
    car = Solids(
        center=np.array([[12.0, 0.0, 0.8]]),
        half=np.array([[2.3, 0.9, 0.75]]),
        rotation=np.eye(3)[None],
        owner=np.array([0]),
        reflectivity=np.array([0.3]),
    )
    cloud = Solids(
        center=np.array([[8.5, 0.0, 0.65]]),
        half=np.array([[1.5, 1.1, 0.65]]),
        rotation=np.eye(3)[None],
        owner=np.array([0]),
        reflectivity=np.array([0.02]),
    )
    rain, clear = DomainConfig.rain(), DomainConfig()
    wet = lidar.cast(car, np.random.default_rng(0), rain, cloud)
    dry = lidar.cast(car, np.random.default_rng(0), clear, cloud)
    in_cloud = np.isfinite(wet.range) & (wet.range > 6.5) & (wet.range < 10.5)
    assert (wet.owner[in_cloud] == HIT_CLUTTER).sum() > 20  # spray returns in front of the car
    assert not (dry.owner == HIT_CLUTTER).any()  # no spray without rain
    ground_wet = (wet.owner == -2).sum()
    ground_dry = (dry.owner == -2).sum()
    assert ground_wet < 0.6 * ground_dry


def test_rain_domain_is_out_of_distribution(tiny_world):
    f = tiny_world.frames.merge(tiny_world.segments, on="segment_id")
    per_domain = f.groupby("domain")["num_points"].mean()
    assert per_domain["rain"] < 0.85 * per_domain["clear"]


def test_worlds_written_by_several_processes_are_identical(tiny_config, tmp_path):
    from rem_core.world import write_world

    one = write_world(tiny_config, tmp_path / "one", workers=1)
    two = write_world(tiny_config, tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(one.boxes, two.boxes)
    pd.testing.assert_frame_equal(one.frames, two.frames)
    for seg in one.segments["segment_id"]:
        np.testing.assert_array_equal(one.segment_points(seg)[0], two.segment_points(seg)[0])


def test_other_region_is_hilly_and_objects_stand_on_its_ground(tiny_config):
    plan = plan_segments(tiny_config)
    ood = simulate_segment(tiny_config, int(plan.index[plan["split"] == "ood"][0]))
    clear = simulate_segment(tiny_config, 0)
    on_ground = lambda b: (b["center_z"] - b["height"] / 2).to_numpy()  # noqa: E731
    flat = clear.boxes[clear.boxes["subtype"] != "towed_car"]
    assert np.allclose(on_ground(flat), 0.05, atol=1e-3)
    hilly = on_ground(ood.boxes[ood.boxes["subtype"] != "towed_car"])
    assert hilly.std() > 0.3  # the ground rises and falls around the ego
    assert (ood.boxes["num_points"] >= tiny_config.min_label_points).all()


def test_a_mix_of_parked_only_subtypes_is_refused(tiny_config):
    config = dataclasses.replace(tiny_config, vehicle_mix=(("open_door", 1.0),))
    with pytest.raises(ValueError, match="vehicle_mix: only subtypes seen parked"):
        simulate_segment(config, 0)
