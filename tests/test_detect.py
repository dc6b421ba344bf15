"""BEV detector: input grid, targets and decoding, suppression, ROI pooling, augmentation,
training, learning, persistence and settings.

Models here are tiny (``channels=(8, 16)``, 16 feature channels) on a 64-cell grid
(``range_m=25.6, cell_m=0.8``), so the whole file runs in well under a minute on two cores.
Oracles are hand-worked grids, exact heads built from the training targets, and plain
loops over every cell of the feature map.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rem_core.config import DetectorConfig, RemConfig
from rem_core.dataset import Dataset
from rem_core.detect import (
    N_INPUT,
    STRIDE,
    Z_EDGES,
    BevDetector,
    DetectionSet,
    bev_grid,
    detect,
    load_detector,
    move_frame,
    pool_roi_features,
    save_detector,
    train_detector,
)
from rem_core.detect import batches as batches_module
from rem_core.detect import train as train_module
from rem_core.detect.batches import _prefetch
from rem_core.detect.decode import _suppress
from rem_core.detect.decode import decode_boxes as _decode
from rem_core.detect.model import _train_in_bf16
from rem_core.detect.targets import _loss, _targets
from rem_core.evaluation import evaluate_detections
from rem_core.geometry import count_points_in_boxes, wrap_angle
from rem_core.schema import BOX_COLUMNS, DETECTIONS

N_SLICES = len(Z_EDGES) + 1
COUNT, ZMAX, ZMEAN, IMEAN, IMAX, RANGE, OFFSET_X, OFFSET_Y = range(N_SLICES, N_INPUT)
SEGMENT = "w0-0000"  # the tiny world's one source segment


def small_config(**overrides: object) -> DetectorConfig:
    """A tiny detector on a 64-cell grid of 0.8 m cells (32 output cells of 1.6 m).

    One thread: layers this small gain nothing from more, and on a busy two-core machine
    torch's default of two threads runs them an order of magnitude slower.
    """
    settings: dict[str, object] = dict(
        range_m=25.6,
        cell_m=0.8,
        epochs=1,
        channels=(8, 16),
        feature_channels=16,
        num_threads=1,
        loader="thread",  # the spies below must see the batches being built
        # The plain CenterPoint recipe: tests/test_detect_longtail.py tests what the defaults
        # add for long vehicles (pasting, their weight and dense targets).
        paste_large=0,
        long_weight=1.0,
        dense_long_targets=False,
    )
    return DetectorConfig(**(settings | overrides))


def cell_centre(i: float, j: float, config: DetectorConfig, cell: float | None = None):
    """Centre of input-grid cell ``(i, j)`` (or of a grid with ``cell`` metres cells)."""
    c = config.cell_m if cell is None else cell
    return (i + 0.5) * c - config.range_m, (j + 0.5) * c - config.range_m


def vehicle_boxes(dataset: Dataset, segment: str, frame: int) -> np.ndarray:
    b = dataset.frame_boxes(segment, frame)
    return b.loc[b["class"] == "vehicle", BOX_COLUMNS].to_numpy(np.float64)


# --------------------------------------------------------------------------- input grid


def test_bev_grid_shape_and_cell_convention() -> None:
    config = small_config()
    g = config.grid_size
    assert g == 64
    # Cell (10, 50): x from the 10th cell, y from the 50th (H along x, W along y).
    x, y = cell_centre(10, 50, config)
    grid = bev_grid(np.array([[x, y, 1.2, 0.7]], np.float32), config)
    assert grid.shape == (N_INPUT, g, g)
    assert grid.dtype == torch.float32
    occupied = torch.nonzero(grid[COUNT]).tolist()
    assert occupied == [[10, 50]]
    assert grid[COUNT, 10, 50] == pytest.approx(np.log(2))


def test_bev_grid_cells_are_closed_below_and_open_above() -> None:
    # 0.5 m cells: cell edges are exact in float32, so the boundary itself can be tested.
    config = DetectorConfig(range_m=16.0, cell_m=0.5, channels=(8, 16), feature_channels=16)
    r, c = config.range_m, config.cell_m
    points = np.array(
        [
            [-r + 3 * c, 0.0, 1.0, 0.5],  # on the lower edge of cell i = 3
            [np.nextafter(np.float32(-r + 3 * c), -np.inf), 0.0, 1.0, 0.5],  # just below: 2
            [-r, -r, 1.0, 0.5],  # the grid's corner: cell (0, 0)
            [r - 0.001, 0.0, 1.0, 0.5],  # the last cell
            [r, 0.0, 1.0, 0.5],  # x = R is outside
            [0.0, r, 1.0, 0.5],  # y = R is outside
            [-r - 0.01, 0.0, 1.0, 0.5],
            [0.0, 40.0, 1.0, 0.5],
        ],
        np.float32,
    )
    grid = bev_grid(points, config)
    counts = torch.expm1(grid[COUNT]).round()
    j0 = int(r / c)  # y = 0 is the lower edge of cell 32
    expected = {(3, j0), (2, j0), (0, 0), (config.grid_size - 1, j0)}
    assert {tuple(ij) for ij in torch.nonzero(counts).tolist()} == expected
    assert counts.sum() == 4  # the four points outside the range are dropped


def test_bev_grid_channels_of_a_hand_made_cell() -> None:
    config = small_config()
    r, c = config.range_m, config.cell_m
    i, j = 40, 21
    x0, y0 = -r + i * c, -r + j * c  # the cell's lower corner
    # (fraction of the cell along x, along y, z, intensity)
    cell_points = np.array(
        [
            [0.50, 0.50, 0.00, 0.1],  # ground (z < 0.15)
            [0.20, 0.80, 0.10, 0.2],  # ground
            [0.25, 0.25, 0.30, 0.3],  # slice 1: [0.15, 0.5)
            [0.75, 0.25, 0.70, 0.4],  # slice 2: [0.5, 1.0)
            [0.75, 0.75, 0.90, 0.5],  # slice 2
            [0.40, 0.70, 0.50, 0.5],  # slice 2: slices are closed below
            [0.10, 0.90, 1.20, 0.6],  # slice 3: [1.0, 1.5)
            [0.60, 0.40, 3.50, 0.9],  # slice 7: [3.0, 4.0)
            [0.90, 0.60, 4.50, 0.8],  # slice 8: >= 4.0
        ]
    )
    points = np.column_stack(
        [x0 + cell_points[:, 0] * c, y0 + cell_points[:, 1] * c, cell_points[:, 2:]]
    ).astype(np.float32)
    # A second, ground-only cell next to it.
    other = np.array([[x0 + c * 1.5, y0 + c * 0.5, 0.05, 1.0]], np.float32)
    grid = bev_grid(np.concatenate([points, other]), config).numpy()

    v = grid[:, i, j]
    np.testing.assert_allclose(np.expm1(v[:N_SLICES]), [2, 1, 3, 1, 0, 0, 0, 1, 1], atol=1e-5)
    assert np.expm1(v[COUNT]) == pytest.approx(9, abs=1e-4)
    assert v[ZMAX] == pytest.approx(4.5 / 4)
    assert v[ZMEAN] == pytest.approx(cell_points[:, 2].mean() / 4, abs=1e-6)
    assert v[IMEAN] == pytest.approx(cell_points[:, 3].mean(), abs=1e-6)
    assert v[IMAX] == pytest.approx(0.9)
    xc, yc = cell_centre(i, j, config)
    assert v[RANGE] == pytest.approx(np.hypot(xc, yc) / r, abs=1e-6)
    above = cell_points[:, 2] >= Z_EDGES[0]
    assert v[OFFSET_X] == pytest.approx(cell_points[above, 0].mean() - 0.5, abs=1e-4)
    assert v[OFFSET_Y] == pytest.approx(cell_points[above, 1].mean() - 0.5, abs=1e-4)

    w = grid[:, i + 1, j]  # ground only: no above-ground offsets
    np.testing.assert_allclose(np.expm1(w[:N_SLICES]), [1, 0, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    assert w[IMAX] == pytest.approx(1.0)
    assert w[OFFSET_X] == 0 and w[OFFSET_Y] == 0

    rest = np.delete(grid.reshape(N_INPUT, -1), [i * 64 + j, (i + 1) * 64 + j], axis=1)
    assert not np.delete(rest, RANGE, axis=0).any()  # every other cell is empty


def test_bev_grid_of_no_points_is_zero_but_for_the_range() -> None:
    config = small_config()
    grid = bev_grid(np.zeros((0, 4), np.float32), config).numpy()
    assert grid.shape == (N_INPUT, 64, 64)
    assert np.isfinite(grid).all()
    assert not np.delete(grid, RANGE, axis=0).any()
    xc, yc = cell_centre(np.arange(64)[:, None], np.arange(64)[None, :], config)
    np.testing.assert_allclose(grid[RANGE], np.hypot(xc, yc) / config.range_m, rtol=1e-6)


# --------------------------------------------------------------------------- targets <-> decoding

HAND_BOXES = np.array(
    [
        # x, y, z, length, width, height, heading
        [5.3, -3.1, 0.9, 4.6, 1.9, 1.6, 0.3],
        [-12.7, 8.4, 1.4, 10.0, 2.6, 3.2, -2.5],
        [0.4, 15.2, 0.8, 4.2, 1.8, 1.5, 3.0],
        [-7.9, -17.3, 1.0, 5.1, 2.0, 1.9, -1.2],
        [18.05, 3.3, 1.0, 4.5, 1.9, 1.6, -np.pi],
        [-20.1, -4.4, 1.1, 4.4, 1.8, 1.5, 0.0],
        [12.2, 19.9, 1.2, 6.0, 2.2, 2.5, np.pi / 2 - 1e-3],
        [-1.0, -11.0, 0.7, 3.9, 1.7, 1.4, -np.pi / 2 + 1e-3],
        [22.0, -20.0, 0.9, 4.0, 1.8, 1.5, 2.0],
    ]
)


def perfect_heads(
    boxes: np.ndarray, config: DetectorConfig, peaks: np.ndarray | None = None
) -> torch.Tensor:
    """Head outputs a perfect network would give for ``boxes``: the training targets with a
    confident heatmap at ``peaks`` (default: the cells the target heatmap marks 1)."""
    t = _targets(boxes, np.zeros((0, 7)), config)
    heat = t["heat"] == 1 if peaks is None else peaks
    heads = np.empty((len(t["reg"]) + 1, *t["heat"].shape), np.float32)
    heads[0] = np.where(heat, 8.0, -8.0)
    heads[1:9] = t["reg"][:8]
    heads[9:] = np.where(t["reg"][8:] > 0.5, 6.0, -6.0)  # direction (and long-vehicle) logits
    return torch.from_numpy(heads)


def assert_same_boxes(found: np.ndarray, boxes: np.ndarray) -> None:
    assert found.shape == (len(boxes), 8)
    # Match by nearest centre: equal scores leave the decoding order to topk.
    d = np.hypot(*(found[None, :, :2] - boxes[:, None, :2]).transpose(2, 0, 1))
    found = found[d.argmin(1)]
    np.testing.assert_allclose(found[:, :2], boxes[:, :2], atol=0.02)
    np.testing.assert_allclose(found[:, 2:6], boxes[:, 2:6], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wrap_angle(found[:, 6] - boxes[:, 6]), 0.0, atol=1e-5)
    assert ((found[:, 6] >= -np.pi) & (found[:, 6] < np.pi)).all()


def test_targets_mark_centre_cells_and_their_neighbours() -> None:
    config = small_config()
    t = _targets(HAND_BOXES, np.zeros((0, 7)), config)
    g = config.grid_size // STRIDE
    cell = config.cell_m * STRIDE
    assert t["heat"].shape == t["weight"].shape == t["mask"].shape == (g, g)
    assert t["reg"].shape == (9, g, g)
    ci = np.floor((HAND_BOXES[:, :2] + config.range_m) / cell).astype(int)
    assert {tuple(ij) for ij in np.argwhere(t["heat"] == 1)} == {tuple(ij) for ij in ci}
    for (i, j), box in zip(ci, HAND_BOXES, strict=True):
        near = t["mask"][max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
        assert near.all()  # the 3x3 neighbourhood regresses the box
        np.testing.assert_allclose(t["reg"][3:6, i, j], np.log(box[3:6]), rtol=1e-6)
    assert t["mask"].sum() == 9 * len(HAND_BOXES)  # the neighbourhoods here do not meet
    assert ((t["heat"] >= 0) & (t["heat"] <= 1)).all()


def test_targets_ignore_sparse_boxes() -> None:
    config = small_config()
    learn, ignore = HAND_BOXES[:1], HAND_BOXES[1:2]
    t = _targets(learn, ignore, config)
    cell = config.cell_m * STRIDE
    (li, lj), (ii, ij) = np.floor((HAND_BOXES[:2, :2] + config.range_m) / cell).astype(int)
    assert t["weight"][ii, ij] == 0 and t["heat"][ii, ij] == 0 and t["mask"][ii, ij] == 0
    assert t["weight"][li, lj] == 1 and t["heat"][li, lj] == 1
    assert t["weight"].mean() > 0.95  # only around the ignored box


def test_loss_of_perfect_heads_is_near_zero() -> None:
    config = small_config()
    t = _targets(HAND_BOXES, np.zeros((0, 7)), config)
    batch = {k: torch.from_numpy(v)[None] for k, v in t.items()}
    heads = perfect_heads(HAND_BOXES, config)[None]
    perfect, parts = _loss(heads, batch)
    assert float(perfect) < 0.01 and set(parts) >= {"focal", "reg", "dir"}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BevDetector(config).eval()
    with torch.no_grad():
        untrained, _ = _loss(model(torch.zeros(1, N_INPUT, 64, 64))[0], batch)
    assert float(untrained) > 100 * float(perfect)
    empty = _targets(np.zeros((0, 7)), np.zeros((0, 7)), config)
    loss, _ = _loss(heads, {k: torch.from_numpy(v)[None] for k, v in empty.items()})
    assert torch.isfinite(loss)


def test_perfect_heads_decode_to_the_boxes() -> None:
    config = small_config()
    assert_same_boxes(_decode(perfect_heads(HAND_BOXES, config), config), HAND_BOXES)


def test_random_headings_survive_the_round_trip() -> None:
    rng = np.random.default_rng(3)
    config = small_config()
    # A 5 x 5 lattice of boxes 8 m apart (neighbourhoods never meet), random headings.
    x, y = np.meshgrid(np.arange(-2, 3) * 8.0, np.arange(-2, 3) * 8.0)
    n = x.size
    boxes = np.column_stack(
        [
            x.ravel() + rng.uniform(-0.7, 0.7, n),
            y.ravel() + rng.uniform(-0.7, 0.7, n),
            rng.uniform(0.5, 2.0, n),
            rng.uniform(3.5, 7.0, n),
            rng.uniform(1.6, 2.6, n),
            rng.uniform(1.4, 3.5, n),
            rng.uniform(-np.pi, np.pi, n),
        ]
    )
    assert_same_boxes(_decode(perfect_heads(boxes, config), config), boxes)


def test_a_peak_one_cell_off_decodes_the_same_box() -> None:
    config = small_config()
    box = HAND_BOXES[:1]
    t = _targets(box, np.zeros((0, 7)), config)
    ((i, j),) = np.argwhere(t["heat"] == 1)
    for di, dj in [(-1, -1), (-1, 0), (0, 1), (1, 1), (1, -1)]:
        peaks = np.zeros_like(t["heat"], bool)
        peaks[i + di, j + dj] = True
        assert_same_boxes(_decode(perfect_heads(box, config, peaks), config), box)


@pytest.mark.parametrize(
    "heading", [np.pi / 2, -np.pi / 2, np.pi / 4 + 0.01, -3 * np.pi / 4 + 0.01]
)
def test_headings_across_the_axis_wrap_survive_the_round_trip(heading: float) -> None:
    config = small_config()
    box = np.array([[4.0, -6.0, 1.0, 4.6, 1.9, 1.6, heading]])
    assert_same_boxes(_decode(perfect_heads(box, config), config), box)


def test_decode_keeps_the_best_max_detections() -> None:
    config = small_config(max_detections=3, score_threshold=0.3)
    heads = perfect_heads(HAND_BOXES, config)
    t = _targets(HAND_BOXES, np.zeros((0, 7)), config)
    ranks = np.argwhere(t["heat"] == 1)
    logits = np.linspace(3.0, -3.0, len(ranks))  # sigmoid from 0.95 down to 0.05
    for (i, j), logit in zip(ranks, logits, strict=True):
        heads[0, i, j] = float(logit)
    found = _decode(heads, config)
    assert len(found) == 3
    np.testing.assert_allclose(found[:, 7], 1 / (1 + np.exp(-logits[:3])), rtol=1e-5)


# --------------------------------------------------------------------------- suppression


def scored(boxes: list[list[float]]) -> np.ndarray:
    """``x, y, length, width, heading, score`` rows -> ``(K, 8)`` decoded rows."""
    b = np.array(boxes, np.float64)
    return np.column_stack(
        [b[:, 0], b[:, 1], np.ones(len(b)), b[:, 2], b[:, 3], np.full(len(b), 1.5), b[:, 4:6]]
    )


def test_suppress_drops_a_centre_inside_a_better_box() -> None:
    boxes = scored(
        [
            [0.0, 0.0, 4.5, 2.0, 0.0, 0.9],  # A
            [1.5, 0.3, 4.5, 2.0, 0.2, 0.8],  # inside A: dropped
            [4.5, 0.0, 4.5, 2.0, 0.0, 0.7],  # bumper to bumper with A: kept
            [0.0, 2.0, 4.5, 2.0, 0.0, 0.6],  # side by side with A: kept
            [-4.5, 0.0, 4.5, 2.0, np.pi, 0.5],  # behind A, facing it: kept
            [20.0, 0.0, 4.5, 2.0, np.pi / 2, 0.4],  # E, along y
            [20.0, 1.8, 4.5, 2.0, np.pi / 2, 0.3],  # inside E (E runs along y): dropped
            [21.5, 0.0, 4.5, 2.0, np.pi / 2, 0.2],  # beside E: kept
        ]
    )
    np.testing.assert_array_equal(_suppress(boxes), boxes[[0, 2, 3, 4, 5, 7]])


def test_suppress_is_greedy_in_score_order() -> None:
    boxes = scored(
        [
            [0.0, 0.0, 4.5, 2.0, 0.0, 0.9],  # A
            [2.0, 0.0, 4.5, 2.0, 0.0, 0.8],  # inside A: dropped
            [4.0, 0.0, 4.5, 2.0, 0.0, 0.7],  # inside only the dropped box: kept
        ]
    )
    np.testing.assert_array_equal(_suppress(boxes), boxes[[0, 2]])
    # A lower-scored large box is kept when its centre is outside the better small box.
    small_then_large = scored([[3.0, 0.0, 1.0, 1.0, 0.0, 0.9], [0.0, 0.0, 10.0, 2.5, 0.0, 0.5]])
    np.testing.assert_array_equal(_suppress(small_then_large), small_then_large)
    assert _suppress(boxes[:1]).shape == (1, 8)
    assert _suppress(boxes[:0]).shape == (0, 8)


# --------------------------------------------------------------------------- ROI pooling


def pool_by_loops(features: np.ndarray, boxes: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """The max over every feature-map cell whose centre is inside the rotated box, cell by
    cell; the cell under the centre when none is."""
    c, h, w = features.shape
    cell = config.cell_m * STRIDE
    out = np.empty((len(boxes), c), np.float32)
    for n, box in enumerate(boxes):
        cos, sin = np.cos(box[6]), np.sin(box[6])
        best = np.full(c, -np.inf, np.float32)
        hit = False
        for i in range(h):
            for j in range(w):
                dx = (i + 0.5) * cell - config.range_m - box[0]
                dy = (j + 0.5) * cell - config.range_m - box[1]
                if (
                    abs(cos * dx + sin * dy) <= box[3] / 2
                    and abs(-sin * dx + cos * dy) <= box[4] / 2
                ):
                    best = np.maximum(best, features[:, i, j])
                    hit = True
        if not hit:
            i = int(np.floor((box[0] + config.range_m) / cell))
            j = int(np.floor((box[1] + config.range_m) / cell))
            best = features[:, i, j]
        out[n] = best
    return out


def test_pool_roi_features_equals_a_brute_force_max() -> None:
    config = small_config()
    rng = np.random.default_rng(7)
    h = config.grid_size // STRIDE
    features = rng.normal(size=(5, h, h)).astype(np.float32)
    n = 30
    boxes = np.column_stack(
        [
            rng.uniform(-25, 25, (n, 2)),
            rng.uniform(0, 2, n),
            rng.uniform(0.3, 12, n),
            rng.uniform(0.3, 4, n),
            rng.uniform(1, 3, n),
            rng.uniform(-np.pi, np.pi, n),
        ]
    )
    cell = config.cell_m * STRIDE
    x, y = cell_centre(10, 12, config, cell)
    tiny = [x + 0.3 * cell, y + 0.3 * cell, 1.0, 0.5, 0.4, 1.0, 0.3]  # holds no cell centre
    partly_out = [24.5, -25.0, 1.0, 7.0, 3.0, 2.0, 0.7]
    boxes = np.vstack([boxes, tiny, partly_out])
    expected = pool_by_loops(features, boxes, config)
    got = pool_roi_features(torch.from_numpy(features), boxes, config)
    assert got.shape == (len(boxes), 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    # The tiny box holds no cell centre and takes the cell under its centre, (10, 12).
    np.testing.assert_array_equal(got[-2], features[:, 10, 12])
    assert pool_roi_features(torch.from_numpy(features), np.zeros((0, 7)), config).shape == (0, 5)


def test_pool_roi_features_of_the_model_feature_map() -> None:
    config = small_config()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BevDetector(config).eval()
    grid = torch.from_numpy(np.random.default_rng(0).random((1, N_INPUT, 64, 64), np.float32))
    with torch.no_grad():
        heads, fmap = model(grid)
    assert heads.shape == (1, 10, 32, 32)
    assert fmap.shape == (1, config.feature_channels, 32, 32)
    got = pool_roi_features(fmap[0], HAND_BOXES, config)
    np.testing.assert_array_equal(got, pool_by_loops(fmap[0].numpy(), HAND_BOXES, config))


# --------------------------------------------------------------------------- augmentation


def test_augment_keeps_the_points_inside_their_boxes(tiny_world: Dataset) -> None:
    for frame in (0, 5):
        points = tiny_world.points(SEGMENT, frame)
        boxes = vehicle_boxes(tiny_world, SEGMENT, frame)
        learn, ignore = boxes[::2], boxes[1::2]
        before = count_points_in_boxes(points, boxes)
        assert before.sum() > 1000
        original = points.copy()
        flips = set()
        for seed in range(6):
            rng = np.random.default_rng(seed)
            flips.add(rng.random() < 0.5)  # the first draw decides the flip
            moved, (learn2, ignore2) = move_frame(
                points, [learn, ignore], np.random.default_rng(seed)
            )
            np.testing.assert_array_equal(points, original)  # the input is not modified
            assert moved.dtype == points.dtype and moved.shape == points.shape
            np.testing.assert_array_equal(moved[:, 3], points[:, 3])
            after = count_points_in_boxes(moved, np.vstack([learn2, ignore2]))
            np.testing.assert_array_equal(after, np.concatenate([before[::2], before[1::2]]))
            for b in (learn2, ignore2):
                assert ((b[:, 6] >= -np.pi) & (b[:, 6] < np.pi)).all()
        assert flips == {True, False}


def box_to_frame(local: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N, P, 3)`` points in the frames of ``(N, 7)`` boxes -> ``(N * P, 3)`` in theirs."""
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = boxes[:, None, 0] + cos * local[..., 0] - sin * local[..., 1]
    y = boxes[:, None, 1] + sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y, boxes[:, None, 2] + local[..., 2]], -1).reshape(-1, 3)


def test_augment_turns_boxes_with_their_points() -> None:
    """Boxes at any heading (the world's are mostly axis-aligned, where a wrong heading after
    a flip can hide): each point keeps its place in its box's frame, mirrored by a flip and
    scaled by the scaling, so the front of a box stays its front."""
    rng = np.random.default_rng(11)
    n, per_box = 12, 40
    boxes = np.column_stack(
        [
            rng.uniform(-40, 40, (n, 2)),
            rng.uniform(0.5, 1.5, n),
            rng.uniform(3.5, 12, n),
            rng.uniform(1.6, 2.6, n),
            rng.uniform(1.4, 3.5, n),
            rng.uniform(-np.pi, np.pi, n),
        ]
    )
    local = rng.uniform(-0.45, 0.45, (n, per_box, 3)) * boxes[:, None, 3:6]
    points = np.column_stack([box_to_frame(local, boxes), rng.random(n * per_box)])
    points = points.astype(np.float32)
    flips = set()
    for seed in range(8):
        flip = np.random.default_rng(seed).random() < 0.5  # move_frame's first draw
        flips.add(flip)
        moved, (moved_boxes,) = move_frame(points, [boxes], np.random.default_rng(seed))
        scale = moved_boxes[0, 3] / boxes[0, 3]
        assert 0.95 <= scale <= 1.05
        np.testing.assert_allclose(moved_boxes[:, 2:6], boxes[:, 2:6] * scale)
        expected_local = local * scale * np.array([1, -1 if flip else 1, 1])
        np.testing.assert_allclose(
            moved[:, :3], box_to_frame(expected_local, moved_boxes), atol=1e-4
        )
        np.testing.assert_array_equal(count_points_in_boxes(moved, moved_boxes), per_box)
        assert ((moved_boxes[:, 6] >= -np.pi) & (moved_boxes[:, 6] < np.pi)).all()
    assert flips == {True, False}


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def smoke(tiny_world: Dataset) -> dict[str, object]:
    """One epoch of member 0 on the source segment, recording losses, progress and the order
    in which frames were seen."""
    config = small_config(epochs=1, batch_size=4)
    losses: list[float] = []
    seen: list[tuple[int, float]] = []
    steps: list[tuple[int, int]] = []
    with pytest.MonkeyPatch.context() as mp:
        record_loss(mp, losses)
        record_frames(mp, seen)
        model = train_detector(config, tiny_world, progress=lambda d, t: steps.append((d, t)))
    return {"config": config, "model": model, "losses": losses, "seen": seen, "steps": steps}


def record_loss(mp: pytest.MonkeyPatch, losses: list[float]) -> None:
    loss_fn = _loss

    def spy(heads, targets):
        loss, parts = loss_fn(heads, targets)
        losses.append(float(loss.detach()))
        return loss, parts

    mp.setattr(train_module, "_loss", spy)  # where train_detectors looks it up


def record_frames(mp: pytest.MonkeyPatch, seen: list[tuple[int, float]]) -> None:
    grid_fn = batches_module.bev_grid

    def spy(points, config, window=None):
        seen.append((len(points), float(np.asarray(points, np.float64)[:, :3].sum())))
        return grid_fn(points, config, window)

    mp.setattr(batches_module, "bev_grid", spy)  # where the batches look it up


def test_train_detector_runs(smoke: dict[str, object]) -> None:
    model, losses = smoke["model"], smoke["losses"]
    assert isinstance(model, BevDetector)
    assert not model.training
    assert all(not m.training for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert len(losses) == 2  # 8 frames in batches of 4
    assert np.isfinite(losses).all() and min(losses) > 0
    assert smoke["steps"] == [(1, 2), (2, 2)]
    assert len(smoke["seen"]) == 8


def test_train_detector_needs_source_segments(tiny_world: Dataset) -> None:
    with pytest.raises(ValueError, match="segments"):
        train_detector(small_config(), tiny_world, segments=[])


def test_training_is_deterministic_and_members_differ_by_init(
    smoke: dict[str, object], tiny_world: Dataset
) -> None:
    config = smoke["config"]
    runs = {}
    for member in (0, 1):
        seen: list[tuple[int, float]] = []
        with pytest.MonkeyPatch.context() as mp:
            record_frames(mp, seen)
            runs[member] = (train_detector(config, tiny_world, member=member), seen)
    first, again = smoke["model"].state_dict(), runs[0][0].state_dict()
    assert first.keys() == again.keys()
    for key in first:
        assert torch.equal(first[key], again[key]), key
    other = runs[1][0].state_dict()
    assert not torch.equal(first["head.weight"], other["head.weight"])
    # Members see the same frames, augmented the same way, in the same order.
    assert runs[0][1] == smoke["seen"]
    assert runs[1][1] == smoke["seen"]


def test_weight_averaging_returns_the_mean_of_the_steps(
    smoke: dict[str, object], tiny_world: Dataset
) -> None:
    config = smoke["config"]  # 2 steps: the average is (w1 + w2) / 2 at decay 0.5
    snapshots: list[dict[str, torch.Tensor]] = []
    step_fn = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        out = step_fn(self, *args, **kwargs)
        snapshots.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.AdamW, "step", spy)
        averaged = train_detector(config, tiny_world, ema_decay=0.5)
    last = smoke["model"]
    # the same training (same seed, same batches), averaged over its two steps
    for p, w1, w2, q in zip(
        averaged.parameters(), snapshots[0], snapshots[1], last.parameters(), strict=True
    ):
        torch.testing.assert_close(p, (w1 + w2) / 2)
        torch.testing.assert_close(q, w2)
    with pytest.raises(ValueError, match="ema_decay"):
        train_detector(config, tiny_world, ema_decay=1.0)


def test_training_precision_is_what_the_config_asks() -> None:
    cpu = torch.device("cpu")
    assert DetectorConfig().precision == "fp32"  # bf16 costs Large AP: never by default
    assert _train_in_bf16(small_config(precision="bf16"), cpu)
    assert not _train_in_bf16(small_config(precision="fp32"), cpu)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert _train_in_bf16(small_config(precision="auto"), cpu) == native


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_training_runs_the_network_in_its_precision(
    precision: str, smoke: dict[str, object], tiny_world: Dataset
) -> None:
    config = dataclasses.replace(smoke["config"], precision=precision)
    kinds: list[torch.dtype] = []
    with pytest.MonkeyPatch.context() as mp:
        forward = BevDetector.forward

        def spy(self, grid):
            heads, features = forward(self, grid)
            kinds.append(heads.dtype)
            return heads, features

        mp.setattr(BevDetector, "forward", spy)
        model = train_detector(config, tiny_world)
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert kinds == [want, want]  # two steps
    # Weights stay fp32 (autocast computes in bf16, the optimiser updates fp32 masters), and
    # the model comes back in the default memory layout whatever training used.
    for name, p in model.state_dict().items():
        assert p.dtype in (torch.float32, torch.int64), name
        assert p.is_contiguous(), name


def test_prefetch_keeps_the_order_and_raises_the_producers_error() -> None:
    assert list(_prefetch(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise KeyError("frame 7")

    got = []
    with pytest.raises(KeyError, match="frame 7"):
        for item in _prefetch(broken()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_producer_when_the_loop_ends_early() -> None:
    import threading

    produced: list[int] = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    items = _prefetch(endless(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert not any(t.name == "rem-batches" for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1  # taken, queued, and the one waiting to be queued


def test_detect_returns_a_detection_set(smoke: dict[str, object], tiny_world: Dataset) -> None:
    model, config = smoke["model"], smoke["config"]
    done: list[tuple[int, int]] = []
    result = detect(
        model,
        tiny_world,
        segments=[SEGMENT],
        gt_classes=("vehicle",),
        progress=lambda d, t: done.append((d, t)),
    )
    assert isinstance(result, DetectionSet)
    table = result.detections
    assert list(table.columns) == [f.name for f in DETECTIONS]
    assert len(table) > 0
    assert table["detection_id"].is_unique
    assert (table["segment_id"] == SEGMENT).all()
    assert set(table["frame_index"]) <= set(range(8))
    assert (table["class"] == "vehicle").all()
    assert table["score"].between(config.score_threshold, 1).all()
    assert (table.groupby("frame_index").size() <= config.max_detections).all()
    assert ((table["heading"] >= -np.pi) & (table["heading"] < np.pi)).all()
    np.testing.assert_allclose(
        table["distance"], np.hypot(table["center_x"], table["center_y"]), rtol=1e-5
    )
    assert result.features.shape == (len(table), config.feature_channels)
    assert result.features.dtype == np.float32
    assert np.isfinite(result.features).all()
    assert done[-1] == (8, 8)
    assert result.seconds > 0

    gt_all = tiny_world.boxes
    expected = gt_all[(gt_all["segment_id"] == SEGMENT) & (gt_all["class"] == "vehicle")]
    assert len(result.gt) == len(expected)
    assert (result.gt["class"] == "vehicle").all()
    key = ["segment_id", "frame_index", "track_id"]
    pd.testing.assert_frame_equal(
        result.gt[key].sort_values(key).reset_index(drop=True),
        expected[key].sort_values(key).reset_index(drop=True),
    )
    assert result.gt_features.shape == (len(expected), config.feature_channels)
    assert result.gt_features.dtype == np.float32

    # Rows of the features follow rows of the tables: recompute one frame by hand.
    points = tiny_world.points(SEGMENT, 3)
    with torch.no_grad():
        _, fmap = model(bev_grid(points, config)[None])
    mine = (table["frame_index"] == 3).to_numpy()
    boxes = table.loc[mine, BOX_COLUMNS].to_numpy(np.float64)
    np.testing.assert_array_equal(result.features[mine], pool_roi_features(fmap[0], boxes, config))
    np.testing.assert_array_equal(
        table.loc[mine, "num_points"], count_points_in_boxes(points, boxes)
    )
    theirs = (result.gt["frame_index"] == 3).to_numpy()
    gt_boxes = result.gt.loc[theirs, BOX_COLUMNS].to_numpy(np.float64)
    np.testing.assert_allclose(
        result.gt_features[theirs], pool_roi_features(fmap[0], gt_boxes, config), rtol=1e-6
    )

    bare = detect(model, tiny_world, segments=[SEGMENT], with_features=False)
    pd.testing.assert_frame_equal(bare.detections, table)
    assert bare.gt.empty and bare.gt_features.shape == (0, config.feature_channels)


# --------------------------------------------------------------------------- learning


def match_vehicles(model: BevDetector, dataset: Dataset) -> pd.DataFrame:
    """Matches at BEV IoU 0.3 of the vehicles the detector was taught (well inside its grid,
    with enough points and a right label): one row per such vehicle, with ``matched`` and the
    heading error of its match (NaN if none)."""
    config = model.config
    found = detect(model, dataset, segments=[SEGMENT], with_features=False).detections
    gt = dataset.boxes
    margin = config.range_m - 2.0
    gt = gt[
        (gt["segment_id"] == SEGMENT)
        & (gt["class"] == "vehicle")
        & (gt["center_x"].abs() < margin)
        & (gt["center_y"].abs() < margin)
        & (gt["num_points"] >= config.min_train_points)
        & ~gt["label_noise"]
    ]
    assert len(gt) >= 20
    result = evaluate_detections(found, gt, iou="bev", iou_threshold=0.3).gt
    truth = gt["heading"].to_numpy()[result["gt_index"]]
    pred = found["heading"].to_numpy()[result["pred_index"]]
    result["heading_error"] = np.where(result["matched"], np.abs(wrap_angle(pred - truth)), np.nan)
    return result


@pytest.fixture(scope="module")
def overfit(tiny_world: Dataset) -> BevDetector:
    """60 steps on the 8 frames of the source segment, without augmentation."""
    config = small_config(epochs=30, batch_size=4, augment=False)
    return train_detector(config, tiny_world, segments=[SEGMENT])


def test_detector_learns_the_frames_it_was_trained_on(
    overfit: BevDetector, tiny_world: Dataset
) -> None:
    untrained = train_detector(dataclasses.replace(overfit.config, epochs=0), tiny_world)
    before = match_vehicles(untrained, tiny_world)["matched"].mean()
    after = match_vehicles(overfit, tiny_world)
    recall = after["matched"].mean()
    assert before < 0.1  # 1 m cubes at init: no BEV IoU of 0.3 with a car
    assert recall > 0.8, f"recall {recall:.2f} after overfitting (untrained: {before:.2f})"
    error = after["heading_error"].dropna().to_numpy()
    axis_error = np.minimum(error, np.pi - error)
    assert np.median(axis_error) < 0.1  # radians
    assert (error < np.pi / 2).mean() > 0.8  # front and back told apart


# --------------------------------------------------------------------------- persistence


class Payload:
    """Pickles to a call of ``os.mkdir``: proof of whether a file was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_save_load_round_trip(
    overfit: BevDetector, tiny_world: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "det"
    save_detector(overfit, folder, meta={"member": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.pt"]
    info = json.loads((folder / "model.json").read_text())
    assert info["member"] == 3 and info["config"]["cell_m"] == overfit.config.cell_m

    calls: list[dict[str, object]] = []
    torch_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return torch_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = load_detector(folder)
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert loaded.config == overfit.config
    assert not loaded.training
    grid = bev_grid(tiny_world.points(SEGMENT, 3), overfit.config)[None]
    with torch.no_grad():
        for a, b in zip(overfit(grid), loaded(grid), strict=True):
            assert torch.equal(a, b)


def test_load_detector_rejects_a_corrupt_model_json(overfit: BevDetector, tmp_path: Path) -> None:
    folder = tmp_path / "det"
    save_detector(overfit, folder)
    for text in ["{not json", "[]", '{"other": 1}', '{"config": {"cell_m": 0.8, "colour": 1}}']:
        (folder / "model.json").write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(folder))):
            load_detector(folder)
    config = json.loads(json.dumps(dataclasses.asdict(overfit.config)))
    config["cell_m"] = 5.0  # out of range
    (folder / "model.json").write_text(json.dumps({"config": config}))
    with pytest.raises(ValueError, match=re.escape(str(folder))):
        load_detector(folder)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "missing"))):
        load_detector(tmp_path / "missing")


def test_load_detector_unpickles_nothing(overfit: BevDetector, tmp_path: Path) -> None:
    folder = tmp_path / "det"
    save_detector(overfit, folder)
    sentinel = tmp_path / "unpickled"
    torch.save({"head.weight": Payload(sentinel)}, folder / "model.pt")
    with pytest.raises((pickle.UnpicklingError, ValueError)):
        load_detector(folder)
    assert not sentinel.exists()
    # The control: a full unpickle of the same file runs the payload.
    torch.load(folder / "model.pt", weights_only=False)
    assert sentinel.exists()


# --------------------------------------------------------------------------- settings


def test_tiny_preset_is_small() -> None:
    config = RemConfig.tiny().detector
    assert config.channels == (8, 16) and config.feature_channels == 16
    assert config.grid_size % 4 == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("range_m", 5.0),
        ("range_m", 500.0),
        ("cell_m", 0.05),
        ("cell_m", 3.0),
        ("cell_m", 0.7),  # 2 * 76.8 / 0.7 is not a whole number of cells
        ("cell_m", 1.024),  # 150 cells: not a multiple of 4
        ("channels", (8,)),
        ("channels", (8, 16, 32, 64)),
        ("channels", (2, 16)),
        ("feature_channels", 2),
        ("epochs", -1),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("weight_decay", -0.1),
        ("weight_decay", 1.0),
        ("min_train_points", -1),
        ("score_threshold", -0.1),
        ("score_threshold", 1.0),
        ("max_detections", 0),
        ("ensemble_size", 0),
        ("ensemble_size", 21),
        ("match_iou", 0.0),
        ("match_iou", 1.0),
        ("device", "tpu"),
        ("num_threads", -1),
        ("precision", "fp16"),
    ],
)
def test_detector_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"detector\.{field}"):
        DetectorConfig(**{field: value})


def test_detector_config_is_frozen_and_keyword_only() -> None:
    config = DetectorConfig()
    assert config.grid_size == 192
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cell_m = 0.4  # type: ignore[misc]
    with pytest.raises(TypeError):
        DetectorConfig(76.8)  # type: ignore[misc]


def test_feature_map_is_what_roi_pooling_reads(tiny_world) -> None:
    from rem_core.detect import feature_map

    config = small_config()
    model = BevDetector(config).eval()
    segment = tiny_world.segments["segment_id"][0]
    points = tiny_world.points(segment, 0)
    fmap = feature_map(model, points)
    g = config.grid_size // 2
    assert fmap.shape == (config.feature_channels, g, g)
    with torch.no_grad():
        _, direct = model(bev_grid(points, config)[None])
    assert torch.equal(fmap, direct[0])


def test_detect_ensemble_equals_one_detect_per_model(
    smoke: dict[str, object], overfit: BevDetector, tiny_world: Dataset
) -> None:
    from rem_core.detect import detect, detect_ensemble

    models = [smoke["model"], overfit]
    segments = tiny_world.segments["segment_id"].tolist()[:2]
    together = detect_ensemble(models, tiny_world, segments)
    for model, run in zip(models, together, strict=True):
        alone = detect(model, tiny_world, segments, with_features=False)
        pd.testing.assert_frame_equal(run.detections, alone.detections)
        assert run.n_frames == alone.n_frames
    assert detect_ensemble([], tiny_world, segments) == []
    # Without counting points: the same boxes and scores, num_points -1 (not counted).
    uncounted = detect_ensemble(models, tiny_world, segments, count_points=False)
    for run, counted in zip(uncounted, together, strict=True):
        assert (run.detections["num_points"] == -1).all()
        assert (counted.detections["num_points"] >= 0).all()
        pd.testing.assert_frame_equal(
            run.detections.drop(columns="num_points"), counted.detections.drop(columns="num_points")
        )
