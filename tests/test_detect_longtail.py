"""The detector's long-tail tools: ground-truth pasting, length stretch, crops, the weight
and dense targets of long vehicles, the batch worker process and the box-error diagnosis.

Oracles: hand-made frames whose every point is known, pasted objects checked point by point
against their boxes, perfect heads built from the training targets, and the in-thread
batches that the worker process must reproduce exactly.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from test_detect import small_config as plain_small_config

from rem_core.config import DetectorConfig
from rem_core.dataset import Dataset
from rem_core.detect import (
    N_HEAD,
    N_INPUT,
    ObjectDatabase,
    bev_grid,
    box_errors,
    build_object_database,
    crop_window,
    paste_objects,
    summarize_box_errors,
    train_detector,
    train_detectors,
)
from rem_core.detect.batches import _batches, _examples, _prefetch_in_process
from rem_core.detect.decode import decode_boxes as _decode
from rem_core.detect.targets import _loss, _targets
from rem_core.geometry import bev_overlap, count_points_in_boxes, wrap_angle
from rem_core.schema import BOX_COLUMNS


def small_config(**overrides: object) -> DetectorConfig:
    """The plain recipe on a 64-cell grid of tests/test_detect.py, with the default batch
    loader (a worker process): each test turns on what it tests."""
    return plain_small_config(**({"loader": DetectorConfig.loader} | overrides))


def solid_box_points(box: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 4)`` float32 points spread through a box (x, y, z, intensity)."""
    local = rng.uniform(-0.48, 0.48, (n, 3)) * box[3:6]
    cos, sin = np.cos(box[6]), np.sin(box[6])
    x = box[0] + cos * local[:, 0] - sin * local[:, 1]
    y = box[1] + sin * local[:, 0] + cos * local[:, 1]
    return np.column_stack([x, y, box[2] + local[:, 2], rng.random(n)]).astype(np.float32)


def ground(extent: float, step: float) -> np.ndarray:
    """A flat lattice of ground points over ``[-extent, extent)^2``, 5 cm below the boxes'
    bottoms (so that no ground point lies on a box's face)."""
    x, y = np.meshgrid(np.arange(-extent, extent, step), np.arange(-extent, extent, step))
    n = x.size
    return np.column_stack([x.ravel(), y.ravel(), np.full(n, -0.05), np.full(n, 0.2)]).astype(
        np.float32
    )


# A bus (12 m) and a tractor-trailer (17 m) with their points, in a frame of their own.
BUS = np.array([20.0, 5.0, 1.6, 12.0, 2.5, 3.2, 0.4])
TRUCK = np.array([-15.0, -25.0, 2.0, 17.0, 2.6, 4.0, 2.0])


@pytest.fixture(scope="module")
def database() -> ObjectDatabase:
    rng = np.random.default_rng(0)
    car = np.array([5.0, -5.0, 0.8, 4.5, 1.9, 1.6, 0.0])
    points = np.concatenate(
        [solid_box_points(b, 300, rng) for b in (BUS, TRUCK, car)] + [ground(40.0, 1.0)]
    )
    return build_object_database([(points, np.stack([BUS, TRUCK, car]))], 7.0, 5)


# --------------------------------------------------------------------------- database


def test_database_holds_the_long_objects_with_their_points(database: ObjectDatabase) -> None:
    assert len(database) == 2  # the car is too short
    np.testing.assert_array_equal(database.boxes, np.stack([BUS, TRUCK]))
    for k in range(2):
        pts = database.object_points(k)
        assert len(pts) == 300  # its own points, not the ground around it
        assert count_points_in_boxes(pts, database.boxes[k : k + 1])[0] == 300


def test_database_leaves_out_sparse_objects() -> None:
    rng = np.random.default_rng(1)
    points = solid_box_points(BUS, 4, rng)
    assert len(build_object_database([(points, BUS[None])], 7.0, 5)) == 0
    assert len(build_object_database([(points, BUS[None])], 7.0, 4)) == 1
    assert len(build_object_database([], 7.0, 5)) == 0


# --------------------------------------------------------------------------- pasting


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frame of flat ground with three parked cars and their points."""
    cars = np.array(
        [
            [8.0, 3.0, 0.8, 4.5, 1.9, 1.6, 0.0],
            [-6.0, 12.0, 0.8, 4.6, 1.9, 1.6, 1.5],
            [0.0, -30.0, 0.8, 4.4, 1.8, 1.5, 0.3],
        ]
    )
    points = np.concatenate([ground(70.0, 0.5)] + [solid_box_points(c, 200, rng) for c in cars])
    return points, cars


def test_pasted_objects_keep_their_points_and_boxes(database: ObjectDatabase) -> None:
    rng = np.random.default_rng(2)
    points, cars = scene(rng)
    for seed in range(10):
        out, boxes = paste_objects(
            points, cars, cars[:0], database, 3, (1.0, 1.0), 70.0, np.random.default_rng(seed)
        )
        pasted = boxes[len(cars) :]
        assert len(pasted) >= 1
        np.testing.assert_array_equal(boxes[: len(cars)], cars)
        for box in pasted:
            # Which database object: the one of the same size at the same range.
            k = int(np.argmin(np.abs(database.boxes[:, 3] - box[3])))
            source = database.boxes[k]
            np.testing.assert_allclose(box[[2, 4, 5]], source[[2, 4, 5]])
            assert np.hypot(*box[:2]) == pytest.approx(np.hypot(*source[:2]))  # same range
            assert count_points_in_boxes(out, box[None])[0] == len(database.object_points(k))
        # The cars keep their points.
        np.testing.assert_array_equal(count_points_in_boxes(out, cars), [200, 200, 200])
        assert out.dtype == points.dtype


def test_pasted_objects_never_overlap_another_box(database: ObjectDatabase) -> None:
    rng = np.random.default_rng(3)
    points, cars = scene(rng)
    ignored = np.array([[-20.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0]])
    for seed in range(20):
        _, boxes = paste_objects(
            points, cars, ignored, database, 4, (0.8, 1.4), 70.0, np.random.default_rng(seed)
        )
        every = np.concatenate([boxes, ignored])
        rect = every[:, [0, 1, 3, 4, 6]]
        a, b = np.triu_indices(len(every), k=1)
        assert not bev_overlap(rect[a], rect[b]).any()
        reach = np.hypot(boxes[:, 0], boxes[:, 1]) + np.hypot(boxes[:, 3], boxes[:, 4]) / 2
        assert (reach <= 70.0).all()


def test_pasting_removes_the_scene_points_under_the_footprint(database: ObjectDatabase) -> None:
    rng = np.random.default_rng(4)
    points, cars = scene(rng)
    out, boxes = paste_objects(
        points, cars, cars[:0], database, 2, (1.0, 1.0), 70.0, np.random.default_rng(0)
    )
    for box in boxes[len(cars) :]:
        # Ground points on the lattice under the footprint are gone: the only points left
        # under it (in BEV, at any height) are the object's own, all inside its box.
        footprint = box.copy()
        footprint[2], footprint[5] = 0.0, 100.0  # any height
        under = count_points_in_boxes(out, footprint[None])[0]
        assert under == count_points_in_boxes(out, box[None])[0]
        assert count_points_in_boxes(points, footprint[None])[0] > 0  # there was ground


def test_pasting_finds_no_place_on_a_wall(database: ObjectDatabase) -> None:
    """A frame that is all wall (points up to 3 m everywhere) has no free ground."""
    wall = ground(70.0, 0.5)
    wall = np.concatenate([wall, wall + np.array([0, 0, 1.5, 0], np.float32)])
    out, boxes = paste_objects(
        wall, np.zeros((0, 7)), np.zeros((0, 7)), database, 4, (1.0, 1.0), 70.0,
        np.random.default_rng(0),
    )  # fmt: skip
    assert len(boxes) == 0 and out is wall


def test_stretch_scales_the_length_and_the_points_along_it(database: ObjectDatabase) -> None:
    rng = np.random.default_rng(5)
    points, cars = scene(rng)
    lengths = []
    for seed in range(12):
        out, boxes = paste_objects(
            points, cars, cars[:0], database, 1, (0.8, 1.4), 70.0, np.random.default_rng(seed)
        )
        if len(boxes) == len(cars):
            continue
        box = boxes[-1]
        k = int(np.argmin(np.abs(database.boxes[:, 4] - box[4])))  # widths differ
        ratio = box[3] / database.boxes[k, 3]
        assert 0.8 <= ratio <= 1.4
        lengths.append(ratio)
        # Every point of the object is still inside its (stretched) box.
        assert count_points_in_boxes(out, box[None])[0] == len(database.object_points(k))
    assert len(lengths) >= 6 and np.ptp(lengths) > 0.1


def test_nothing_to_paste_returns_the_frame_unchanged(database: ObjectDatabase) -> None:
    points, cars = scene(np.random.default_rng(6))
    empty = build_object_database([], 7.0, 5)
    for db, count in ((empty, 3), (database, 0)):
        out, boxes = paste_objects(
            points, cars, cars[:0], db, count, (1.0, 1.0), 70.0, np.random.default_rng(0)
        )
        assert out is points and boxes is cars


# --------------------------------------------------------------------------- crops


def test_a_window_of_the_grid_equals_the_slice_of_the_whole() -> None:
    config = small_config()
    rng = np.random.default_rng(7)
    points = np.column_stack(
        [rng.uniform(-30, 30, (5000, 2)), rng.uniform(-0.5, 5, 5000), rng.random(5000)]
    ).astype(np.float32)
    whole = bev_grid(points, config)
    for i0, j0, n in [(0, 0, 32), (8, 24, 32), (32, 32, 32), (4, 12, 16), (0, 0, 64)]:
        window = bev_grid(points, config, window=(i0, j0, n))
        assert window.shape == (N_INPUT, n, n)
        torch.testing.assert_close(window, whole[:, i0 : i0 + n, j0 : j0 + n], rtol=0, atol=0)


def test_crop_windows_are_aligned_inside_the_grid_and_near_a_box() -> None:
    rng = np.random.default_rng(8)
    boxes = np.array([[10.0, -20.0, 1.0, 4.5, 1.9, 1.6, 0.0]])
    for _ in range(200):
        i0, j0 = crop_window(boxes, 192, 96, 0.8, rng, align=4)
        assert i0 % 4 == 0 and j0 % 4 == 0
        assert 0 <= i0 <= 96 and 0 <= j0 <= 96
        # The box's centre lies in the crop's middle half (plus the alignment).
        ci, cj = (boxes[0, :2] + 76.8) / 0.8
        assert i0 + 24 - 4 <= ci <= i0 + 72 + 4 and j0 + 24 - 4 <= cj <= j0 + 72 + 4
    i0, j0 = crop_window(boxes[:0], 192, 96, 0.8, rng)  # no box: anywhere in the grid
    assert 0 <= i0 <= 96 and 0 <= j0 <= 96


def test_crops_carry_the_targets_of_their_window(tiny_world: Dataset) -> None:
    """A crop's targets are the whole frame's targets cut at the same window: a box whose
    centre is in the crop is a peak of the crop's heatmap, at its own place."""
    config = small_config(crop_m=25.6, augment=False)
    seg = tiny_world.segments["segment_id"].iloc[0]
    pts, offsets = tiny_world.segment_points(seg)
    boxes = tiny_world.frame_boxes(seg, 0)
    learn = boxes.loc[boxes["class"] == "vehicle", BOX_COLUMNS].to_numpy()
    samples = [(pts[offsets[0] : offsets[1]], learn, np.zeros((0, 7)))]
    whole = _targets(learn, np.zeros((0, 7)), config)
    full_grid = bev_grid(samples[0][0], config)
    seen = 0
    for grid, target in itertools.islice(_examples(samples, config, np.random.default_rng(0)), 6):
        assert grid.shape == (N_INPUT, 32, 32) and target["heat"].shape == (16, 16)
        # Find the window by matching the grid, then compare the targets.
        matches = [
            (i0, j0)
            for i0 in range(0, 33, 4)
            for j0 in range(0, 33, 4)
            if torch.equal(full_grid[:, i0 : i0 + 32, j0 : j0 + 32], grid)
        ]
        assert matches
        i0, j0 = matches[0]
        for key, value in target.items():
            np.testing.assert_array_equal(
                value, whole[key][..., i0 // 2 : i0 // 2 + 16, j0 // 2 : j0 // 2 + 16]
            )
        seen += int((target["heat"] == 1).sum())
    assert seen > 0


# --------------------------------------------------------------------------- the head


LONG_BOXES = np.array(
    [
        [5.3, -3.1, 0.9, 4.6, 1.9, 1.6, 0.3],
        [-10.7, 8.4, 1.6, 12.0, 2.6, 3.2, -2.5],
        [8.0, 14.0, 2.0, 17.5, 2.6, 4.0, 1.3],
        [-8.0, -14.0, 1.0, 7.4, 2.2, 2.6, 0.0],
    ]
)


def perfect_heads(boxes: np.ndarray, config: DetectorConfig, peaks=None) -> torch.Tensor:
    t = _targets(boxes, np.zeros((0, 7)), config)
    heat = t["heat"] == 1 if peaks is None else peaks
    heads = np.empty((N_HEAD, *t["heat"].shape), np.float32)
    heads[0] = np.where(heat, 8.0, -8.0)
    heads[1:9] = t["reg"][:8]
    heads[9:] = np.where(t["reg"][8:] > 0.5, 6.0, -6.0)
    return torch.from_numpy(heads)


def assert_same_boxes(found: np.ndarray, boxes: np.ndarray) -> None:
    assert len(found) == len(boxes)
    d = np.hypot(*(found[None, :, :2] - boxes[:, None, :2]).transpose(2, 0, 1))
    found = found[d.argmin(1)]
    np.testing.assert_allclose(found[:, :6], boxes[:, :6], atol=1e-4)
    np.testing.assert_allclose(wrap_angle(found[:, 6] - boxes[:, 6]), 0.0, atol=1e-5)


def test_dense_targets_let_any_cell_of_a_long_box_decode_it() -> None:
    config = small_config(dense_long_targets=True)
    box = LONG_BOXES[2:3]  # 17.5 m long
    t = _targets(box, np.zeros((0, 7)), config)
    plain = _targets(box, np.zeros((0, 7)), small_config())
    assert t["mask"].sum() >= 2 * plain["mask"].sum()  # 22 cells against 9
    cells = np.argwhere(t["mask"] > 0)
    for i, j in cells[:: max(1, len(cells) // 12)]:
        peaks = np.zeros_like(t["heat"], bool)
        peaks[i, j] = True
        assert_same_boxes(_decode(perfect_heads(box, config, peaks), config), box)
    # A car keeps its 3 x 3 neighbourhood only.
    car = LONG_BOXES[:1]
    assert _targets(car, np.zeros((0, 7)), config)["mask"].sum() == 9


def test_long_weight_weighs_the_regression_of_long_boxes() -> None:
    config = small_config(long_weight=3.0)
    t = _targets(LONG_BOXES, np.zeros((0, 7)), config)
    assert set(np.unique(t["mask"])) == {0.0, 1.0, 3.0}
    assert (t["mask"] == 3.0).sum() == 27 and (t["mask"] == 1.0).sum() == 9
    batch = {k: torch.from_numpy(v)[None] for k, v in t.items()}
    heads = perfect_heads(LONG_BOXES, config)[None]
    heads[:, 4] += 0.1  # every log length off by 0.1
    _, parts = _loss(heads, batch)
    # The mean over 36 cells of the weighted error (8 channels): (27 * 3 + 9) * 0.1 / 36 / 8
    assert parts["reg"] == pytest.approx((27 * 3 + 9) * 0.1 / 36 / 8, rel=1e-4)


# --------------------------------------------------------------------------- the worker


def test_the_worker_process_builds_the_same_batches(tiny_world: Dataset) -> None:
    config = small_config(crop_m=25.6, batch_size=3)
    seg = tiny_world.segments["segment_id"].iloc[0]
    pts, offsets = tiny_world.segment_points(seg)
    samples = []
    for f in range(3):
        b = tiny_world.frame_boxes(seg, f)
        learn = b.loc[b["class"] == "vehicle", BOX_COLUMNS].to_numpy()
        samples.append((pts[offsets[f] : offsets[f + 1]], learn, np.zeros((0, 7))))

    def make():
        return itertools.islice(_batches(samples, config, np.random.default_rng(5)), 5)

    here = list(make())
    there = list(_prefetch_in_process(make))
    assert len(there) == 5
    for (g1, t1), (g2, t2) in zip(here, there, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=0)
        for key in t1:
            torch.testing.assert_close(t1[key], t2[key], rtol=0, atol=0)


def test_an_error_in_the_worker_is_raised_with_its_traceback() -> None:
    def make():
        def batches():
            yield torch.zeros(1, 2), {"a": torch.zeros(1)}
            raise ValueError("frame 7 is broken")

        return batches()

    got = []
    with pytest.raises(RuntimeError, match="frame 7 is broken"):
        for item in _prefetch_in_process(make):
            got.append(item)
    assert len(got) == 1


def test_leaving_early_stops_the_worker() -> None:
    def make():
        return ((torch.full((2,), float(k)), {"k": torch.zeros(1)}) for k in itertools.count())

    stream = _prefetch_in_process(make)
    first = [next(stream)[0][0].item() for _ in range(3)]
    assert first == [0.0, 1.0, 2.0]
    stream.close()  # runs the generator's cleanup: the worker is stopped and joined


def test_training_with_the_worker_matches_training_in_a_thread(tiny_world: Dataset) -> None:
    config = small_config(
        crop_m=25.6, paste_large=1, long_weight=3.0, dense_long_targets=True, batch_size=2
    )
    a = train_detector(dataclasses.replace(config, loader="thread"), tiny_world, steps=3)
    b = train_detector(dataclasses.replace(config, loader="process"), tiny_world, steps=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)


def test_members_trained_together_equal_members_trained_alone(tiny_world: Dataset) -> None:
    config = small_config(crop_m=25.6, paste_large=1, batch_size=2, loader="thread")
    together = train_detectors(config, tiny_world, [0, 2], steps=3)
    for member, model in zip([0, 2], together, strict=True):
        alone = train_detector(config, tiny_world, member=member, steps=3)
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    a, b = (m.state_dict()["head.weight"] for m in together)
    assert not torch.equal(a, b)  # different initialisations
    assert train_detectors(config, tiny_world, []) == []


# --------------------------------------------------------------------------- diagnosis


def test_box_errors_measure_each_match() -> None:
    gt = pd.DataFrame(
        {
            "segment_id": "s",
            "frame_index": 0,
            "class": "vehicle",
            "subtype": ["bus", "sedan", "box_truck"],
            "num_points": [100, 50, 3],  # the truck is below LEVEL_1
            "center_x": [0.0, 0.0, 30.0],
            "center_y": [0.0, 10.0, 0.0],
            "center_z": [1.6, 0.8, 1.5],
            "length": [12.0, 4.5, 8.0],
            "width": [2.5, 1.9, 2.4],
            "height": [3.2, 1.6, 3.0],
            "heading": [0.0, 0.0, 0.0],
        }
    )
    det = pd.DataFrame(
        {
            "segment_id": "s",
            "frame_index": 0,
            "class": "vehicle",
            "center_x": [-3.0, 3.5, 0.0],
            "center_y": [0.0, 0.0, 10.0],
            "center_z": [1.2, 1.0, 0.8],
            "length": [6.0, 4.0, 4.5],
            "width": [2.5, 2.0, 1.9],
            "height": [1.6, 1.6, 1.6],
            # The bus's box is turned a half turn and 3 degrees: 3 degrees of axis error.
            "heading": [np.pi - np.radians(3), 0.0, 0.0],
            "score": [0.9, 0.8, 0.7],
        }
    )
    errors = box_errors(det, gt)
    assert len(errors) == 2  # LEVEL_1 only
    bus = errors[errors["subtype"] == "bus"].iloc[0]
    assert bus["matched"] and bus["subset"] == "large"
    assert bus["length_ratio"] == pytest.approx(0.5)
    assert bus["height_ratio"] == pytest.approx(0.5)
    assert bus["z_error"] == pytest.approx(-0.4)
    assert bus["heading_error_deg"] == pytest.approx(3.0)
    assert bus["fragments"] == 1  # the second box's centre is inside the bus
    car = errors[errors["subtype"] == "sedan"].iloc[0]
    assert car["length_ratio"] == pytest.approx(1.0) and car["fragments"] == 0
    summary = summarize_box_errors(errors)
    assert summary["n_boxes"] == 1 and summary["length_ratio"] == pytest.approx(0.5)
    assert summary["fragments_per_box"] == 1.0
    assert summary["by_subtype"]["bus"]["found"] == 1.0
    missed = box_errors(det.iloc[:0], gt)
    assert not missed["matched"].any() and missed["length_ratio"].isna().all()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"crop_m": 10.0}, "detector.crop_m"),
        ({"crop_m": -3.2}, "detector.crop_m"),
        ({"paste_large": -1}, "detector.paste_large"),
        ({"paste_large": 1.5}, "detector.paste_large"),
        ({"paste_stretch": (1.3, 0.9)}, "detector.paste_stretch"),
        ({"paste_stretch": (0.2, 1.0)}, "detector.paste_stretch"),
        ({"long_weight": 0.0}, "detector.long_weight"),
        ({"loader": "gpu"}, "detector.loader"),
    ],
)
def test_bad_long_tail_settings_name_their_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        small_config(**overrides)
