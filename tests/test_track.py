"""Tracker, tracking metrics and auto-labeller: hand-worked cases and a synthetic benchmark.

Hand cases build a segment whose ego drives and turns (so the world/vehicle conversion
matters) and detections written in the world frame, then converted to each frame's
vehicle frame as a detector would report them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rem_core.config import AutoLabelConfig, TrackerConfig, WorldConfig
from rem_core.evaluation import evaluate_detections
from rem_core.schema import DETECTIONS, SchemaError, conform
from rem_core.track import (
    TrackingMetrics,
    auto_label,
    simulate_detections,
    track_detections,
    tracking_metrics,
)
from rem_core.track.motion import _rotations, _to_vehicle, _to_world
from rem_core.track.smoothing import _grouped_weighted_quantile
from rem_core.world import simulate_segment

DT = 0.1


# --------------------------------------------------------------------------- helpers


def make_frames(n: int, segment: str = "s0", yaw0: float = 0.4, yaw_rate: float = 0.1):
    """Frames of an ego driving at 5 m/s and turning at ``yaw_rate`` rad/s."""
    t = np.arange(n) * DT
    yaw = yaw0 + yaw_rate * t
    return pd.DataFrame(
        {
            "segment_id": segment,
            "frame_index": np.arange(n),
            "timestamp_micros": 1_600_000_000_000_000 + np.round(t * 1e6).astype(np.int64),
            "pose_x": 100 + 5 * t * np.cos(yaw0),
            "pose_y": -50 + 5 * t * np.sin(yaw0),
            "pose_z": 0.3,
            "pose_qw": np.cos(yaw / 2),
            "pose_qx": 0.0,
            "pose_qy": 0.0,
            "pose_qz": np.sin(yaw / 2),
            "num_points": 1000,
        }
    )


def _pose(frames: pd.DataFrame, segment: str, frame_index: np.ndarray):
    f = frames[frames["segment_id"] == segment].set_index("frame_index").loc[frame_index]
    yaw = 2 * np.arctan2(f["pose_qz"].to_numpy(), f["pose_qw"].to_numpy())
    return f[["pose_x", "pose_y", "pose_z"]].to_numpy(), yaw


def world_to_vehicle(frames, segment, frame_index, boxes):
    """``(N, 7)`` world boxes to the vehicle frame, by plain yaw rotation (an oracle)."""
    t, yaw = _pose(frames, segment, np.asarray(frame_index))
    d = boxes[:, :3] - t
    c, s = np.cos(yaw), np.sin(yaw)
    out = boxes.copy()
    out[:, 0], out[:, 1], out[:, 2] = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]
    out[:, 6] = (boxes[:, 6] - yaw + np.pi) % (2 * np.pi) - np.pi
    return out


def vehicle_to_world(frames, segment, frame_index, boxes):
    t, yaw = _pose(frames, segment, np.asarray(frame_index))
    c, s = np.cos(yaw), np.sin(yaw)
    out = boxes.copy()
    out[:, 0] = c * boxes[:, 0] - s * boxes[:, 1] + t[:, 0]
    out[:, 1] = s * boxes[:, 0] + c * boxes[:, 1] + t[:, 1]
    out[:, 2] = boxes[:, 2] + t[:, 2]
    out[:, 6] = (boxes[:, 6] + yaw + np.pi) % (2 * np.pi) - np.pi
    return out


def make_detections(frames, rows, segment="s0"):
    """A DETECTIONS table from rows of ``(frame, world box (7,), class, score)``."""
    frame = np.array([r[0] for r in rows])
    world = np.array([r[1] for r in rows], dtype=np.float64)
    boxes = world_to_vehicle(frames, segment, frame, world)
    df = pd.DataFrame(
        {
            "segment_id": segment,
            "frame_index": frame,
            "detection_id": np.arange(len(rows)),
            "class": [r[2] for r in rows],
            "center_x": boxes[:, 0],
            "center_y": boxes[:, 1],
            "center_z": boxes[:, 2],
            "length": boxes[:, 3],
            "width": boxes[:, 4],
            "height": boxes[:, 5],
            "heading": boxes[:, 6],
            "score": [r[3] for r in rows],
            "num_points": 50,
            "distance": np.hypot(boxes[:, 0], boxes[:, 1]),
            "track_id": None,
        }
    )
    return conform(df, DETECTIONS, "test detections")


def car(x, y, heading, size=(4.5, 2.0, 1.6)):
    return [x, y, size[2] / 2, *size, heading]


def ids_of(tracked, frame_indices):
    """Track ids of the tracked rows, in the given order of rows."""
    return tracked["track_id"].to_numpy()[frame_indices]


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: TrackerConfig(max_match_distance_m=0), "tracker.max_match_distance_m"),
        (lambda: TrackerConfig(gate_length_fraction=-1), "tracker.gate_length_fraction"),
        (lambda: TrackerConfig(gate_sigmas=float("nan")), "tracker.gate_sigmas"),
        (lambda: TrackerConfig(birth_score=1.5), "tracker.birth_score"),
        (lambda: TrackerConfig(min_score=0.6, birth_score=0.5), "tracker.min_score"),
        (lambda: TrackerConfig(max_missed=-1), "tracker.max_missed"),
        (lambda: TrackerConfig(max_missed=2.5), "tracker.max_missed"),
        (lambda: TrackerConfig(accel_noise_mps2=0), "tracker.accel_noise_mps2"),
        (lambda: TrackerConfig(measurement_noise_m=-0.1), "tracker.measurement_noise_m"),
        (lambda: TrackerConfig(attribute_smoothing=0), "tracker.attribute_smoothing"),
        (lambda: TrackerConfig(class_aware="yes"), "tracker.class_aware"),
        (lambda: AutoLabelConfig(min_track_length=0), "auto_label.min_track_length"),
        (lambda: AutoLabelConfig(min_track_score=2), "auto_label.min_track_score"),
        (lambda: AutoLabelConfig(max_gap=-1), "auto_label.max_gap"),
        (lambda: AutoLabelConfig(size_quantile=1.1), "auto_label.size_quantile"),
        (lambda: AutoLabelConfig(accel_noise_mps2=0), "auto_label.accel_noise_mps2"),
        (lambda: AutoLabelConfig(measurement_noise_m=0), "auto_label.measurement_noise_m"),
        (
            lambda: AutoLabelConfig(static_max_displacement_m=-1),
            "auto_label.static_max_displacement_m",
        ),
        (lambda: AutoLabelConfig(moving_min_speed_mps=-1), "auto_label.moving_min_speed_mps"),
        (lambda: AutoLabelConfig(smoothing_sigma_frames=0), "auto_label.smoothing_sigma_frames"),
        (lambda: AutoLabelConfig(score_blend=True), "auto_label.score_blend"),
    ],
)
def test_bad_settings_name_their_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_configs_are_frozen_and_keyword_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrackerConfig().max_missed = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        AutoLabelConfig(3)  # type: ignore[misc]


# --------------------------------------------------------------------------- frames


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-np.pi, np.pi), min_size=1, max_size=5),
    st.floats(-0.2, 0.2),
)
def test_world_round_trip_and_yaw(yaws, tilt):
    yaw = np.array(yaws)
    # a small roll keeps the heading conversion approximate but the round trip exact
    q = np.column_stack(
        [np.cos(yaw / 2), np.full_like(yaw, tilt / 10), np.zeros_like(yaw), np.sin(yaw / 2)]
    )
    rot = _rotations(q)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    rng = np.random.default_rng(len(yaws))
    boxes = np.column_stack(
        [rng.normal(0, 20, (len(yaw), 3)), np.ones((len(yaw), 3)), rng.uniform(-3, 3, len(yaw))]
    )
    trans = rng.normal(0, 100, (len(yaw), 3))
    back = _to_vehicle(_to_world(boxes, rot, trans), rot, trans)
    assert np.allclose(back[:, :6], boxes[:, :6], atol=1e-9)
    assert np.allclose(np.cos(back[:, 6] - boxes[:, 6]), 1.0)
    if tilt == 0:
        world = _to_world(boxes, rot, trans)
        assert np.allclose(np.cos(world[:, 6] - boxes[:, 6] - yaw), 1.0)


def test_weighted_quantile_matches_a_plain_reference():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 7, 300)
    groups[:7] = np.arange(7)
    values, weights = rng.normal(size=300), rng.uniform(0, 1, 300)
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        fast = _grouped_weighted_quantile(values, weights, groups, 7, q)
        for g in range(7):
            v, w = values[groups == g], weights[groups == g]
            o = np.argsort(v)
            cw = np.cumsum(w[o])
            expected = v[o][np.searchsorted(cw, q * cw[-1] * (1 - 1e-12))]
            assert fast[g] == pytest.approx(expected)


# --------------------------------------------------------------------------- tracker


def test_two_objects_crossing_paths_keep_their_ids():
    # Two cyclists cross at the origin 0.1 s apart, seen with a little noise.
    frames = make_frames(21)
    rng = np.random.default_rng(0)
    rows, who = [], []
    for f in range(21):
        t = f * DT
        a = [0.0, -5.0 + 5 * t]
        b = [-5.5 + 5 * t, 0.0]
        for name, xy, heading in (("a", a, np.pi / 2), ("b", b, 0.0)):
            xy = np.array(xy) + rng.normal(0, 0.1, 2)
            rows.append((f, [*xy, 0.9, 1.8, 0.6, 1.7, heading], "cyclist", 0.9))
            who.append(name)
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig())
    who = np.array(who)
    ids_a, ids_b = set(tracked["track_id"][who == "a"]), set(tracked["track_id"][who == "b"])
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_a_missed_frame_is_bridged_and_rows_keep_their_order():
    frames = make_frames(10)
    rows = [(f, car(30 + 8 * f * DT, 10, 0.0), "vehicle", 0.8) for f in range(10) if f != 4]
    rows += [(f, car(-20, -15, 1.0), "vehicle", 0.8) for f in range(10)]
    det = make_detections(frames, rows).sample(frac=1.0, random_state=0)
    det.index = det.index + 100  # an index that is not 0..n-1
    tracked = track_detections(det, frames, TrackerConfig(max_missed=1))
    assert tracked.index.equals(det.index)
    assert tracked.drop(columns="track_id").equals(det.drop(columns="track_id"))
    moving = tracked["detection_id"].to_numpy() < 9  # the first 9 rows made
    assert tracked["track_id"][moving].nunique() == 1
    assert tracked["track_id"][~moving].nunique() == 1
    assert tracked["track_id"].nunique() == 2


def test_low_score_detections_extend_tracks_but_do_not_start_them():
    frames = make_frames(6)
    scores = [0.3, 0.9, 0.3, 0.3, 0.3, 0.05]
    rows = [(f, car(20 + 5 * f * DT, 3, 0.0), "vehicle", s) for f, s in enumerate(scores)]
    rows.append((2, car(-30, 30, 0.0), "vehicle", 0.3))  # a lone low-score detection
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig())
    ids = tracked["track_id"].tolist()
    assert pd.isna(ids[0])  # low score, no track yet
    assert len(set(ids[1:5])) == 1 and not pd.isna(ids[1])
    assert pd.isna(ids[5])  # below min_score
    assert pd.isna(ids[6])


def test_class_aware_matching():
    frames = make_frames(4)
    rows = [(f, car(20, 3, 0.0), "vehicle" if f % 2 else "pedestrian", 0.9) for f in range(4)]
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig())
    assert tracked["track_id"].nunique() == 2
    blind = track_detections(
        make_detections(frames, rows), frames, TrackerConfig(class_aware=False)
    )
    assert blind["track_id"].nunique() == 1


def test_tracker_errors_name_the_problem():
    frames = make_frames(3)
    det = make_detections(frames, [(2, car(10, 0, 0), "vehicle", 0.9)])
    with pytest.raises(ValueError, match="frame 2 of segment 's0'"):
        track_detections(det, frames.iloc[:2], TrackerConfig())
    with pytest.raises(ValueError, match="segment 'other'"):
        track_detections(det.assign(segment_id="other"), frames, TrackerConfig())
    with pytest.raises(SchemaError, match="score"):
        track_detections(det.drop(columns="score"), frames, TrackerConfig())


def test_tracking_is_deterministic_and_independent_of_row_order():
    segment = simulate_segment(WorldConfig.tiny(frames_per_segment=12), 1)
    det = simulate_detections(segment.boxes, seed=3)
    config = TrackerConfig()
    a = track_detections(det, segment.frames, config)
    b = track_detections(det, segment.frames, config)
    pd.testing.assert_frame_equal(a, b)
    shuffled = track_detections(det.sample(frac=1.0, random_state=1), segment.frames, config)
    by_id = shuffled.set_index("detection_id")["track_id"].reindex(a["detection_id"])
    assert (by_id.fillna("-").to_numpy() == a["track_id"].fillna("-").to_numpy()).all()
    labels = auto_label(a, segment.frames, AutoLabelConfig())
    pd.testing.assert_frame_equal(labels, auto_label(b, segment.frames, AutoLabelConfig()))
    pd.testing.assert_frame_equal(det, simulate_detections(segment.boxes, seed=3))


# --------------------------------------------------------------------------- metrics


def _box_row(segment, frame, track, x, score=0.9):
    return {
        "segment_id": segment,
        "frame_index": frame,
        "track_id": track,
        "class": "vehicle",
        "center_x": x,
        "center_y": 0.0,
        "center_z": 1.0,
        "length": 4.0,
        "width": 2.0,
        "height": 2.0,
        "heading": 0.0,
        "score": score,
        "num_points": 10,
    }


def test_tracking_metrics_hand_case():
    # GT "A" at x=0 and "B" at x=20, frames 0..5. Predicted: A by "x" in frames 0, 1 and 3
    # (frame 2 missed: one fragmentation), then by "y" in 4, 5 (one ID switch); B by "z"
    # throughout; "w" is a false positive at x=-40.
    gt = pd.DataFrame(
        [_box_row("s", f, "A", 0.0) for f in range(6)]
        + [_box_row("s", f, "B", 20.0) for f in range(6)]
    )
    pred = pd.DataFrame(
        [_box_row("s", f, "x", 0.1) for f in (0, 1, 3)]
        + [_box_row("s", f, "y", 0.1) for f in (4, 5)]
        + [_box_row("s", f, "z", 19.9) for f in range(6)]
        + [_box_row("s", 0, "w", -40.0, score=0.2)]
    )
    m = tracking_metrics(pred, gt)
    assert m == TrackingMetrics(
        id_switches=1,
        fragmentations=1,
        purity=1.0,
        mostly_tracked=1.0,  # A is matched in 5 of 6 frames
        mota=pytest.approx(1 - (1 + 1 + 1) / 12),
        recall=pytest.approx(11 / 12),
        precision=pytest.approx(11 / 12),
        num_gt_tracks=2,
        num_tracks=4,
    )


def test_tracking_metrics_purity_catches_a_merge():
    # One predicted track follows A for 4 frames, then jumps to B for 2: no GT track sees
    # a switch, but the track is only 4/6 pure; both GT tracks are under 80% tracked.
    gt = pd.DataFrame(
        [_box_row("s", f, "A", 0.0) for f in range(6)]
        + [_box_row("s", f, "B", 20.0) for f in range(6)]
    )
    pred = pd.DataFrame(
        [_box_row("s", f, "p", 0.0) for f in range(4)]
        + [_box_row("s", f, "p", 20.0) for f in (4, 5)]
    )
    m = tracking_metrics(pred, gt)
    assert (m.id_switches, m.fragmentations) == (0, 0)
    assert m.purity == pytest.approx(4 / 6)
    assert m.mostly_tracked == 0.0
    # Untracked detections are not part of the tracker's output.
    m2 = tracking_metrics(pd.concat([pred, pred.assign(track_id=None)]), gt)
    assert m2.purity == pytest.approx(4 / 6) and m2.precision == 1.0


# --------------------------------------------------------------------------- auto-labeller


def _world_labels(labels, frames):
    world = vehicle_to_world(
        frames,
        "s0",
        labels["frame_index"].to_numpy(),
        labels[
            ["center_x", "center_y", "center_z", "length", "width", "height", "heading"]
        ].to_numpy(),
    )
    return world


def test_a_static_object_stays_still_with_one_size_and_heading():
    frames = make_frames(20)
    rng = np.random.default_rng(2)
    truth = np.array(car(25, 8, 0.3))
    rows = []
    for f in range(20):
        box = truth.copy()
        box[:2] += rng.normal(0, 0.3, 2)
        box[3:6] *= np.exp(rng.normal(-0.05, 0.1, 3))
        box[6] += rng.normal(0, 0.05) + (np.pi if f in (3, 11) else 0.0)
        rows.append((f, box, "vehicle", 0.7))
    det = make_detections(frames, rows)
    tracked = track_detections(det, frames, TrackerConfig())
    assert tracked["track_id"].nunique() == 1
    labels = auto_label(tracked, frames, AutoLabelConfig())
    assert len(labels) == 20 and not labels["interpolated"].any()
    world = _world_labels(labels, frames)
    assert np.ptp(world, axis=0)[:6].max() < 1e-6  # one pose and one size in the world
    assert np.ptp(np.cos(world[:, 6])) < 1e-9
    assert np.hypot(*(world[0, :2] - truth[:2])) < 0.3
    assert abs(np.sin((world[0, 6] - truth[6]) / 2)) < 0.05  # flips resolved, not averaged
    # sizes of the inputs scatter; the label has one, from their upper part
    assert np.quantile(det["length"], 0.5) < world[0, 3] < det["length"].max()


def test_a_gap_of_two_frames_is_filled_and_a_longer_one_is_not():
    frames = make_frames(30)
    missing = {5, 6, 15, 16, 17, 18, 19}
    rows = [
        (f, car(10 + 8 * f * DT, -4, 0.0), "vehicle", 0.8) for f in range(30) if f not in missing
    ]
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig(max_missed=6))
    assert tracked["track_id"].nunique() == 1
    labels = auto_label(tracked, frames, AutoLabelConfig(max_gap=3))
    filled = labels[labels["interpolated"]]
    assert filled["frame_index"].tolist() == [5, 6]
    assert set(labels["frame_index"]) == set(range(30)) - {15, 16, 17, 18, 19}
    world = _world_labels(filled, frames)
    truth = 10 + 8 * filled["frame_index"].to_numpy() * DT
    assert np.allclose(world[:, 0], truth, atol=0.02)
    assert np.allclose(world[:, 1], -4, atol=0.02)
    assert filled["num_points"].eq(0).all()
    assert filled["detection_id"].min() > tracked["detection_id"].max()
    assert labels["detection_id"].is_unique
    assert filled["score"].between(0.7, 0.9).all()


def test_heading_flips_of_a_moving_object_are_resolved():
    frames = make_frames(20)
    rng = np.random.default_rng(4)
    heading = 2.5
    rows = []
    for f in range(20):
        xy = np.array([5.0, 5.0]) + 9 * f * DT * np.array([np.cos(heading), np.sin(heading)])
        h = heading + rng.normal(0, 0.05) + (np.pi if f % 3 == 1 else 0.0)
        rows.append((f, car(*(xy + rng.normal(0, 0.2, 2)), h), "vehicle", 0.8))
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig())
    labels = auto_label(tracked, frames, AutoLabelConfig())
    world = _world_labels(labels, frames)
    assert np.abs(np.sin((world[:, 6] - heading) / 2)).max() < 0.05
    assert labels["heading"].between(-np.pi, np.pi, inclusive="left").all()


def test_short_low_score_tracks_are_dropped():
    frames = make_frames(5)
    rows = [(0, car(20, 0, 0), "vehicle", 0.55), (1, car(20, 0, 0), "vehicle", 0.3)]
    rows += [(0, car(-20, 0, 0), "vehicle", 0.9), (1, car(-20, 0, 0), "vehicle", 0.8)]
    rows += [(f, car(0, 20, 0), "vehicle", 0.6) for f in range(4)]
    tracked = track_detections(make_detections(frames, rows), frames, TrackerConfig())
    labels = auto_label(tracked, frames, AutoLabelConfig(min_track_length=3))
    kept = labels.groupby("track_id").size().sort_values().tolist()
    assert kept == [2, 4]  # the 2-frame track scoring 0.425 on average is gone
    assert list(labels.columns) == [*DETECTIONS.names, "interpolated"]
    empty = auto_label(tracked.iloc[:0], frames, AutoLabelConfig())
    assert list(empty.columns) == [*DETECTIONS.names, "interpolated"] and empty.empty


# --------------------------------------------------------------------------- synthetic world


@pytest.fixture(scope="module")
def synthetic():
    """Two unlabelled tiny-world segments of 30 frames, GT and noisy detections."""
    config = WorldConfig.tiny(frames_per_segment=30)
    segments = [simulate_segment(config, i) for i in (1, 2)]
    assert all(s.split == "unlabelled" for s in segments)
    gt = pd.concat([s.boxes for s in segments], ignore_index=True)
    frames = pd.concat([s.frames for s in segments], ignore_index=True)
    return gt, frames, simulate_detections(gt, seed=0)


def test_tracking_recovers_ids_on_synthetic_detections(synthetic):
    gt, frames, det = synthetic
    tracked = track_detections(det, frames, TrackerConfig())
    # IoU 0.1 measures association; the raw boxes' localisation is judged by AP below.
    m = tracking_metrics(tracked, gt, iou_threshold=0.1)
    assert m.id_switches <= 0.1 * m.num_gt_tracks
    assert m.purity > 0.99
    assert abs(m.num_tracks - m.num_gt_tracks) <= 0.15 * m.num_gt_tracks


def test_auto_labels_beat_single_frame_detections(synthetic):
    gt, frames, det = synthetic
    tracked = track_detections(det, frames, TrackerConfig())
    labels = auto_label(tracked, frames, AutoLabelConfig())
    classes = sorted(gt["class"].unique())
    for iou in ("bev", "3d"):
        raw = evaluate_detections(det, gt, 0.5, iou=iou, classes=classes)
        refined = evaluate_detections(labels, gt, 0.5, iou=iou, classes=classes)
        assert refined.ap() > raw.ap() + 0.15, iou
        assert refined.ap(class_name="vehicle") > raw.ap(class_name="vehicle") + 0.2, iou
    after = tracking_metrics(labels, gt, iou_threshold=0.5)
    before = tracking_metrics(tracked, gt, iou_threshold=0.5)
    assert after.fragmentations < before.fragmentations / 5  # gaps filled
    assert after.mostly_tracked > before.mostly_tracked
