"""Figures of frames and data set summaries (rem_core.viz), on small hand-made inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from rem_core.schema import BOXES, conform
from rem_core.viz import (
    DISPLAY_POINTS,
    NOISE_COLOR,
    RARE_VEHICLE_COLOR,
    SUBTYPE_COLORS,
    bev_figure,
    box_edges,
    decimate_points,
    display_columns,
    scene_figure,
    summarize_dataset,
)


def make_boxes(rows: list[dict]) -> pd.DataFrame:
    """A ``BOXES`` table from a few fields per box; the rest take plain defaults."""
    defaults = dict(
        segment_id="s0", frame_index=0, center_z=1.0, length=4.5, width=1.9, height=1.5,
        heading=0.0, speed_x=0.0, speed_y=0.0, num_points=50, label_noise=False, noise_kind="",
        subtype="sedan",
    )  # fmt: skip
    full = []
    for i, row in enumerate(rows):
        box = {"track_id": f"t{i}", "class": "vehicle", **defaults, **row}
        box.setdefault("distance", math.hypot(box["center_x"], box["center_y"]))
        full.append(box)
    return conform(pd.DataFrame(full), BOXES, "test boxes")


def empty_boxes() -> pd.DataFrame:
    return conform(pd.DataFrame({f.name: [] for f in BOXES}), BOXES, "no boxes")


@pytest.fixture
def frame() -> tuple[np.ndarray, pd.DataFrame]:
    """2,000 points and five boxes: two sedans, a bus, a pedestrian, one label-noise sedan."""
    rng = np.random.default_rng(0)
    points = np.column_stack(
        [rng.uniform(-40, 40, 2000), rng.uniform(-15, 15, 2000), rng.uniform(0, 3, 2000),
         rng.uniform(0, 1, 2000)]
    ).astype(np.float32)  # fmt: skip
    boxes = make_boxes(
        [
            dict(center_x=10.0, center_y=3.0),
            dict(center_x=-8.0, center_y=-3.0, heading=-np.pi),
            dict(center_x=25.0, center_y=3.5, subtype="bus", length=12.0, width=2.5, height=3.2),
            dict(center_x=5.0, center_y=8.0, **{"class": "pedestrian"}, subtype="pedestrian",
                 length=0.8, width=0.8, height=1.8),
            dict(center_x=-20.0, center_y=3.0, label_noise=True, noise_kind="partial"),
        ]
    )  # fmt: skip
    return points, boxes


def box_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == "boxes"]


def segments_of(trace: object) -> list[np.ndarray]:
    """The polylines of a None-separated line trace, as ``(K, D)`` arrays."""
    coords = [trace.x, trace.y] + ([trace.z] if hasattr(trace, "z") else [])
    out, current = [], []
    for vertex in zip(*coords, strict=True):
        if vertex[0] is None:
            out.append(np.array(current, dtype=float))
            current = []
        else:
            current.append(vertex)
    assert not current, "a trace must end with a None separator"
    return out


# --- decimation ------------------------------------------------------------------------------


def test_decimate_caps_points_and_is_deterministic() -> None:
    points = np.arange(50_000 * 4, dtype=np.float32).reshape(-1, 4)
    a = decimate_points(points, 1_000)
    b = decimate_points(points, 1_000)
    assert a.shape == (1_000, 4)
    np.testing.assert_array_equal(a, b)
    # rows of the input, in their order, none twice
    rows = (a[:, 0] / 4).astype(int)
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(points[rows], a)
    assert not np.array_equal(decimate_points(points, 1_000, seed=1), a)


def test_decimate_keeps_small_inputs_whole() -> None:
    points = np.ones((10, 4), np.float32)
    assert decimate_points(points, 10) is points
    assert decimate_points(points, 0).shape == (0, 4)
    with pytest.raises(ValueError, match="max_points"):
        decimate_points(points, -1)


def test_scene_figure_draws_at_most_max_points(frame: tuple[np.ndarray, pd.DataFrame]) -> None:
    points, boxes = frame
    fig = scene_figure(points, boxes, max_points=500)
    cloud = fig.data[0]
    assert len(cloud.x) == 500
    again = scene_figure(points, boxes, max_points=500).data[0]
    np.testing.assert_array_equal(np.asarray(cloud.x), np.asarray(again.x))
    assert len(scene_figure(points, boxes, max_points=10_000).data[0].x) == len(points)


def test_display_columns_are_contiguous_float32() -> None:
    points = np.arange(20, dtype=np.float64).reshape(5, 4)
    x, y, z = display_columns(points)
    for column, expected in zip((x, y, z), points[:, :3].T, strict=True):
        assert column.dtype == np.float32 and column.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(column, expected)


def test_scene_points_go_to_the_browser_as_float32_binary() -> None:
    """Decimated to a bounded count, sent as base64 float32 typed arrays, not JSON lists."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-30, 30, (4 * DISPLAY_POINTS, 4))  # float64 in
    fig = scene_figure(points, None)
    cloud = fig.data[0]
    assert len(cloud.x) == DISPLAY_POINTS  # the default cap
    assert all(np.asarray(v).dtype == np.float32 for v in (cloud.x, cloud.y, cloud.z))
    assert np.asarray(cloud.marker.color).dtype == np.float32
    assert cloud.marker.symbol == "square"  # draws in half the time of circles
    sent = json.loads(fig.to_json())["data"][0]
    for axis in ("x", "y", "z"):
        assert sent[axis]["dtype"] == "f4" and isinstance(sent[axis]["bdata"], str)
    assert sent["marker"]["color"]["dtype"] == "f4"
    # about 4 bytes a coordinate (base64), where JSON text would take some 18
    assert len(fig.to_json()) < 4 * 4 * DISPLAY_POINTS * 4 / 3 + 50_000
    intensity = scene_figure(points, None, point_color="intensity").data[0]
    assert np.asarray(intensity.marker.color).dtype == np.float32


# --- boxes -----------------------------------------------------------------------------------


def test_box_edges_join_corners_along_one_axis() -> None:
    box = np.array([[1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 0.0]])
    edges = box_edges(box)
    assert edges.shape == (1, 12, 2, 3)
    lengths = np.sort(np.linalg.norm(edges[0, :, 1] - edges[0, :, 0], axis=-1))
    np.testing.assert_allclose(lengths, [1.0] * 4 + [2.0] * 4 + [4.0] * 4)


@pytest.mark.parametrize("color_by", ["class", "subtype"])
def test_scene_figure_draws_twelve_segments_per_box(
    frame: tuple[np.ndarray, pd.DataFrame], color_by: str
) -> None:
    points, boxes = frame
    traces = box_traces(scene_figure(points, boxes, color_by=color_by))
    assert sum(t.meta["boxes"] for t in traces) == len(boxes)
    for trace in traces:
        segments = segments_of(trace)
        assert len(segments) == 12 * trace.meta["boxes"]
        assert all(s.shape == (2, 3) for s in segments)
        assert len(trace.text) == len(trace.x)  # a hover label on every vertex
    # one trace per colour group, not one per box
    assert len(traces) < len(boxes)


def test_label_noise_boxes_get_their_own_dashed_trace(
    frame: tuple[np.ndarray, pd.DataFrame],
) -> None:
    points, boxes = frame
    for fig in (scene_figure(points, boxes), bev_figure(points, boxes)):
        noise = [t for t in box_traces(fig) if t.meta["group"] == "label noise"]
        assert len(noise) == 1
        assert noise[0].meta["boxes"] == int(boxes["label_noise"].sum()) == 1
        assert noise[0].line.color == NOISE_COLOR
        assert noise[0].line.dash == "dash"
        assert "label noise: partial" in noise[0].text[0]
        others = [t for t in box_traces(fig) if t.meta["group"] != "label noise"]
        assert sum(t.meta["boxes"] for t in others) == len(boxes) - 1


def test_rare_vehicles_stand_out(frame: tuple[np.ndarray, pd.DataFrame]) -> None:
    points, boxes = frame
    by_class = {t.meta["group"]: t for t in box_traces(scene_figure(points, boxes))}
    assert by_class["large/irregular vehicle"].line.color == RARE_VEHICLE_COLOR
    assert by_class["large/irregular vehicle"].line.width > by_class["vehicle"].line.width
    by_subtype = {
        t.meta["group"]: t for t in box_traces(scene_figure(points, boxes, color_by="subtype"))
    }
    assert by_subtype["bus"].line.color == SUBTYPE_COLORS["bus"]
    assert by_subtype["bus"].line.width > by_subtype["sedan"].line.width


def test_highlighted_track_is_drawn_on_top(frame: tuple[np.ndarray, pd.DataFrame]) -> None:
    points, boxes = frame
    fig = scene_figure(points, boxes, highlight_track="t2")
    last = box_traces(fig)[-1]
    assert last.meta == {"kind": "boxes", "group": "track t2", "boxes": 1}
    assert "track t2" in last.text[0]
    assert sum(t.meta["boxes"] for t in box_traces(fig)) == len(boxes)


def test_hover_names_track_class_subtype_points_and_distance(
    frame: tuple[np.ndarray, pd.DataFrame],
) -> None:
    points, boxes = frame
    bus = next(t for t in box_traces(scene_figure(points, boxes)) if t.meta["boxes"] == 1
               and "bus" in t.text[0])  # fmt: skip
    text = bus.text[0]
    assert "t2" in text and "vehicle / bus" in text and "50 points" in text
    assert f"{math.hypot(25.0, 3.5):.1f} m" in text


# --- empty inputs and bad arguments ----------------------------------------------------------


@pytest.mark.parametrize("points", [None, np.zeros((0, 4), np.float32)])
@pytest.mark.parametrize("boxes", [None, "empty"])
def test_figures_build_without_points_or_boxes(points: object, boxes: object) -> None:
    boxes = empty_boxes() if boxes == "empty" else None
    for fig in (
        scene_figure(points, boxes),
        scene_figure(points, boxes, point_color="intensity"),
        bev_figure(points, boxes),
    ):
        assert isinstance(fig, go.Figure)
        assert box_traces(fig) == []
        fig.to_json()  # serialisable, as streamlit sends it


def test_figures_build_with_boxes_but_no_points(frame: tuple[np.ndarray, pd.DataFrame]) -> None:
    _, boxes = frame
    assert sum(t.meta["boxes"] for t in box_traces(scene_figure(None, boxes))) == len(boxes)
    assert sum(t.meta["boxes"] for t in box_traces(bev_figure(None, boxes))) == len(boxes)


def test_figures_accept_three_column_points_and_bare_boxes() -> None:
    points = np.zeros((5, 3))
    bare = pd.DataFrame([[0.0, 0.0, 1.0, 4.0, 2.0, 1.5, 0.0]], columns=BOXES.names[5:12])
    assert len(box_traces(scene_figure(points, bare))) == 1
    assert len(box_traces(bev_figure(points, bare))) == 1
    with pytest.raises(ValueError, match="intensity"):
        scene_figure(points, bare, point_color="intensity")


def test_bad_arguments_are_named(frame: tuple[np.ndarray, pd.DataFrame]) -> None:
    points, boxes = frame
    with pytest.raises(ValueError, match="color_by"):
        scene_figure(points, boxes, color_by="colour")
    with pytest.raises(ValueError, match="point_color"):
        scene_figure(points, boxes, point_color="range")
    with pytest.raises(ValueError, match="points"):
        scene_figure(np.zeros((4, 2)), boxes)
    with pytest.raises(ValueError, match="center_x"):
        bev_figure(points, boxes.drop(columns="center_x"))
    with pytest.raises(ValueError, match="extent_m"):
        bev_figure(points, boxes, extent_m=0)


# --- bird's-eye view -------------------------------------------------------------------------


def test_bev_puts_x_up_and_y_left() -> None:
    points = np.array([[10.0, 5.0, 2.0, 0.5], [10.1, 5.1, 1.0, 0.5]], np.float32)
    fig = bev_figure(points, None, extent_m=20.0, cell_m=1.0)
    image = fig.data[0]
    z = np.asarray(image.z, dtype=float)
    row, col = np.argwhere(~np.isnan(z))[0]
    assert np.count_nonzero(~np.isnan(z)) == 1
    # rows run along plot y = vehicle x, columns along plot x = vehicle y
    assert image.y[row] == pytest.approx(10.5) and image.x[col] == pytest.approx(5.5)
    assert z[row, col] == pytest.approx(2.0)  # the highest point of the cell
    # y (left) grows to the left: a reversed horizontal axis; equal scales
    assert fig.layout.xaxis.range[0] > fig.layout.xaxis.range[1]
    assert tuple(fig.layout.yaxis.range) == (-20.0, 20.0)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


def test_bev_sends_only_the_columns_in_view_as_float32() -> None:
    # a narrow road: points within 12 m across, so the view is 20 m to either side
    rng = np.random.default_rng(0)
    points = np.column_stack(
        [rng.uniform(-70, 70, 5000), rng.uniform(-12, 12, 5000), rng.uniform(0, 2, 5000)]
    ).astype(np.float32)
    fig = bev_figure(points, None, extent_m=75.0, cell_m=0.5)
    image = fig.data[0]
    z, across = np.asarray(image.z), np.asarray(image.x)
    assert z.dtype == np.float32 and across.dtype == np.float32
    assert z.shape == (300, len(across)) and len(across) < 300 / 2
    assert abs(across).max() <= 20.0 + 0.5 and tuple(fig.layout.xaxis.range) == (20.0, -20.0)
    assert np.count_nonzero(~np.isnan(z)) > 1000  # every point is still binned


def test_bev_outlines_each_box_with_a_heading_tick() -> None:
    boxes = make_boxes([dict(center_x=10.0, center_y=0.0, length=4.0, width=2.0)])
    (trace,) = box_traces(bev_figure(None, boxes))
    outline, tick = segments_of(trace)
    # plot coordinates are (vehicle y, vehicle x)
    assert outline.shape == (5, 2) and np.array_equal(outline[0], outline[-1])
    assert sorted(map(tuple, outline[:4])) == [(-1.0, 8.0), (-1.0, 12.0), (1.0, 8.0), (1.0, 12.0)]
    np.testing.assert_allclose(tick, [[0.0, 10.0], [0.0, 12.0]])


# --- summary ---------------------------------------------------------------------------------


def test_summarize_dataset_by_hand() -> None:
    segments = pd.DataFrame(
        {
            "segment_id": ["a", "b", "c"],
            "split": ["validation", "source", "source"],
            "domain": ["clear", "clear", "rain"],
        }
    )
    frames = pd.DataFrame({"segment_id": ["a", "a", "b", "c", "c", "c"]})
    tracks = pd.DataFrame(
        {
            "track_id": ["v1", "v2", "v3", "v4", "p1"],
            "class": ["vehicle"] * 4 + ["pedestrian"],
            "length": [4.5, 12.0, 6.9, 5.0, 0.8],
            "width": [1.9, 2.5, 2.0, 2.0, 0.8],
            "height": [1.5, 3.2, 1.8, 7.0, 1.8],  # v4 is tall: large by its height
            "num_boxes": [10, 5, 3, 2, 7],
            "label_noise_boxes": [1, 0, 0, 0, 0],
        }
    )
    s = summarize_dataset(segments, frames, tracks)
    assert s.segments_by_split.to_dict("list") == {
        "split": ["source", "validation"],
        "segments": [2, 1],
        "frames": [4, 2],
        "domains": ["clear, rain", "clear"],
    }
    assert s.tracks_by_class.to_dict("list") == {
        "class": ["vehicle", "pedestrian"],
        "tracks": [4, 1],
        "boxes": [20, 7],
        "label_noise_boxes": [1, 0],
    }
    assert (s.n_segments, s.n_frames, s.n_boxes, s.n_tracks) == (3, 6, 27, 5)
    assert (s.n_vehicle_tracks, s.n_large_vehicle_tracks) == (4, 2)
    assert s.large_vehicle_share == pytest.approx(0.5)


def test_summarize_empty_dataset() -> None:
    segments = pd.DataFrame({"segment_id": [], "split": [], "domain": []})
    tracks = pd.DataFrame(
        {c: [] for c in ["track_id", "class", "length", "width", "height", "num_boxes",
                         "label_noise_boxes"]}
    )  # fmt: skip
    s = summarize_dataset(segments, pd.DataFrame({"segment_id": []}), tracks)
    assert (s.n_segments, s.n_tracks, s.n_vehicle_tracks) == (0, 0, 0)
    assert math.isnan(s.large_vehicle_share)


# --- rareness figures --------------------------------------------------------------------------


def make_groups() -> pd.DataFrame:
    """A ``log_prob_groups`` table: rare sets sit lower in log p than validation."""
    rng = np.random.default_rng(0)
    parts = []
    for name, cls, size, split, n, mean in [
        ("validation", "vehicle", "regular", "validation", 200, 0.0),
        ("large", "vehicle", "large", "validation", 20, -6.0),
        ("other region", "vehicle", "regular", "ood", 40, -2.0),
        ("pedestrian", "pedestrian", "", "validation", 30, -9.0),
        ("", "vehicle", "regular", "source", 100, 0.5),
    ]:
        parts.append(
            pd.DataFrame(
                {
                    "class": cls,
                    "size": size,
                    "split": split,
                    "set": name,
                    "log_prob": rng.normal(mean, 1.0, n),
                }
            )  # fmt: skip
        )
    return pd.concat(parts, ignore_index=True)


def test_log_prob_histogram_by_set_labels_aurocs():
    from rem_core.analysis import ood_aurocs
    from rem_core.viz import log_prob_histogram

    groups = make_groups()
    fig = log_prob_histogram(groups, "set")
    names = [t.name for t in fig.data]
    assert [n.split(" (")[0] for n in names] == [
        "validation",
        "large",
        "other region",
        "pedestrian",
    ]
    aurocs = ood_aurocs(groups)
    assert f"AUROC {aurocs['large']:.3f}" in names[1] and "AUROC" not in names[0]
    assert all(t.histnorm == "probability density" for t in fig.data)
    assert len(fig.data[0].x) == 200


def test_log_prob_histogram_by_size_and_split_and_empty_groups():
    from rem_core.viz import log_prob_histogram

    groups = make_groups()
    by_size = log_prob_histogram(groups, "size")
    # vehicles of every split: 200 + 40 + 100 regular, 20 large; pedestrians left out
    assert [len(t.x) for t in by_size.data] == [340, 20]
    by_split = log_prob_histogram(groups, "split")
    assert [len(t.x) for t in by_split.data] == [100, 220]
    no_large = groups[groups["size"] != "large"]
    assert len(log_prob_histogram(no_large, "size").data) == 1
    with pytest.raises(ValueError, match="by: must be one of"):
        log_prob_histogram(groups, "colour")
    with pytest.raises(ValueError, match="'log_prob'"):
        log_prob_histogram(groups.drop(columns="log_prob"), "set")


def test_recall_figure_one_line_per_detector():
    from rem_core.analysis import recall_by_rareness
    from rem_core.viz import recall_figure

    rng = np.random.default_rng(1)
    rareness = rng.normal(size=500)
    found = rng.random(500) > (rareness > 1.0) * 0.8
    curve = recall_by_rareness(found, rareness, bin_width=10)
    fig = recall_figure({"main": curve, "other": curve})
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == sorted(fig.data[0].x) and len(fig.data[0].x) == 10
    assert "Spearman" in fig.data[0].name and fig.data[0].y[-1] < fig.data[0].y[0]


# --- rare vs hard ------------------------------------------------------------------------------


def difficulty_table(n_regular: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    subsets = ["regular"] * n_regular + ["large"] * 30 + ["false positive"] * 20
    n = len(subsets)
    return pd.DataFrame(
        {"rareness": rng.normal(20, 3, n), "subset": subsets,
         "num_points": rng.integers(0, 2000, n), "distance": rng.uniform(0, 75, n),
         "variance": rng.uniform(0, 0.2, n)}
    )  # fmt: skip


def test_rare_vs_hard_one_webgl_trace_per_subset_and_the_filter():
    from rem_core.viz import rare_vs_hard_figure

    fig = rare_vs_hard_figure(difficulty_table(), "num_points", min_points=200)
    assert [t.name.split(" (")[0] for t in fig.data] == ["regular", "large", "false positive"]
    assert all(t.type == "scattergl" for t in fig.data)
    assert fig.layout.xaxis.type == "log"
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].x0 == pytest.approx(np.log10(200))
    fig = rare_vs_hard_figure(difficulty_table(), "distance", max_distance_m=40)
    assert [s.x0 for s in fig.layout.shapes if s.type == "line"] == [40]
    assert not rare_vs_hard_figure(difficulty_table(), "variance").layout.shapes


def test_rare_vs_hard_decimates_regular_detections_only():
    from rem_core.viz import rare_vs_hard_figure

    fig = rare_vs_hard_figure(difficulty_table(5000), "distance", max_points=1000)
    counts = {t.name.split(" (")[0]: len(t.x) for t in fig.data}
    assert counts == {"regular": 950, "large": 30, "false positive": 20}
    assert fig.data[0].name == "regular (5,000)"  # the legend counts them all
    with pytest.raises(ValueError, match="x: must be one of"):
        rare_vs_hard_figure(difficulty_table(), "speed")
    with pytest.raises(ValueError, match="'subset'"):
        rare_vs_hard_figure(difficulty_table().drop(columns="subset"))


# --- track figures -------------------------------------------------------------------------------


def test_crop_around_keeps_points_within_the_radius():
    from rem_core.viz import crop_around

    pts = np.array([[0, 0, 0, 0], [3, 4, 1, 0], [6, 0, 0, 0], [10, 10, 0, 0]], np.float32)
    kept = crop_around(pts, np.array([0.0, 0.0]), 5.0)
    assert kept[:, 0].tolist() == [0, 3]
    with pytest.raises(ValueError, match="points: expected"):
        crop_around(np.zeros(4), np.zeros(2), 1.0)


def test_track_figure_centres_the_object_and_dims_the_others():
    from rem_core.viz import track_figure

    boxes = make_boxes(
        [dict(center_x=30.0, center_y=5.0), dict(center_x=34.0, center_y=8.0, subtype="bus"),
         dict(center_x=-40.0, center_y=0.0),
         dict(center_x=27.0, center_y=2.0, label_noise=True, noise_kind="partial")]
    )  # fmt: skip
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-75, 75, (50_000, 2)), rng.uniform(0, 3, (50_000, 2))])
    fig = track_figure(pts.astype(np.float32), boxes, "t0", radius_m=10, max_points=2_000)
    names = [t.name for t in fig.data]
    assert "ego" not in names and "track t0 (1)" in names
    points = fig.data[0]
    assert len(points.x) <= 2_000 and np.max(np.hypot(points.x, points.y)) <= 10 + 1e-3
    highlight = next(t for t in fig.data if t.name == "track t0 (1)")
    assert highlight.opacity is None  # the object stays bright
    others = [t for t in fig.data if (t.meta or {}).get("kind") == "boxes" and t != highlight]
    assert others and all(t.opacity == 0.35 for t in others)
    drawn = sum((t.meta or {}).get("boxes", 0) for t in fig.data)
    assert drawn == 3  # the box 70 m away is not in the view
    assert any(t.line.dash == "dash" for t in others)  # label noise
    with pytest.raises(ValueError, match="no box of this frame belongs to track 'nope'"):
        track_figure(pts, boxes, "nope")


def test_track_thumbnail_shows_the_box_in_its_own_frame():
    from rem_core.viz import track_thumbnail

    box = make_boxes([dict(center_x=10.0, center_y=10.0, heading=np.pi / 2, length=6.0)]).iloc[0]
    # points along the box's length, which runs along y in the vehicle frame
    pts = np.column_stack(
        [np.full(100, 10.0), np.linspace(7.5, 12.5, 100), np.ones(100), np.zeros(100)]
    ).astype(np.float32)
    fig = track_thumbnail(pts, box, title="#1 bus")
    local = fig.data[0]
    assert np.ptp(local.x) > 4.5 and np.ptp(local.y) < 0.1  # now along x
    assert fig.data[1].line.dash == "solid"
    noisy = box.copy()
    noisy["label_noise"] = True
    assert track_thumbnail(pts, noisy).data[1].line.dash == "dash"
    assert len(track_thumbnail(np.zeros((0, 4), np.float32), box).data[0].x) == 0


def test_track_gallery_is_one_figure_of_small_panels():
    from rem_core.viz import track_gallery

    boxes = make_boxes(
        [dict(center_x=10.0, center_y=10.0, heading=np.pi / 2, length=6.0),
         dict(center_x=-5.0, center_y=2.0, label_noise=True, noise_kind="partial"),
         dict(center_x=20.0, center_y=-4.0)]
    )  # fmt: skip
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-25, 25, (40_000, 2)), rng.uniform(0, 2, (40_000, 2))])
    shots = [(pts, box, f"#{i + 1}") for i, (_, box) in enumerate(boxes.iterrows())]
    fig = track_gallery(shots, columns=2, max_points=300)
    assert len(fig.data) == 2 * len(shots)  # points and outline per panel, one figure
    assert [a.text for a in fig.layout.annotations] == ["#1", "#2", "#3"]
    clouds, outlines = fig.data[::2], fig.data[1::2]
    assert all(0 < len(c.x) <= 300 and np.asarray(c.x).dtype == np.float32 for c in clouds)
    assert [o.line.dash for o in outlines] == ["solid", "dash", "solid"]
    # the first box runs along y: in its panel the object lies along x
    assert np.ptp(outlines[0].x) == pytest.approx(6.0) and np.ptp(outlines[0].y) < 6.0
    # panels on axes of their own, at equal scale; two rows of two
    assert {c.xaxis for c in clouds} == {"x", "x2", "x3"}
    assert fig.layout.yaxis3.scaleanchor == "x3" and fig.layout.height == 2 * 200
    assert track_gallery([]).data == ()
    with pytest.raises(ValueError, match="columns"):
        track_gallery(shots, columns=0)


def test_experiment_figure_and_pooled_recall():
    from rem_core.viz import experiment_ap_figure, mean_recall_curve

    table = pd.DataFrame(
        {
            "label": ["Partial-supervised", "Random", "MD-REM++"],
            "group": ["reference", "baseline", "ours"],
            "seeds": [2, 2, 1],
            "human_labels": ["10%", "10%;3%", "10%;3%"],
            "ap_large": [0.1, 0.2, 0.3],
            "ap_large_std": [0.01, 0.02, np.nan],
            "paper_ap_large": [0.378, np.nan, 0.571],
        }
    )
    fig = experiment_ap_figure(table)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["reference", "baseline", "ours"]
    assert list(bars[2].error_y.array) == [0.0]  # one seed: no spread
    paper = [t for t in fig.data if t.name == "paper"][0]
    assert list(paper.x) == ["Partial-supervised", "MD-REM++"]
    assert list(fig.layout.xaxis.categoryarray) == table["label"].tolist()

    # with the bootstrap's intervals (rem_core.experiment.stats), whiskers span them
    ranged = table.assign(ap_large_low=[0.05, 0.15, np.nan], ap_large_high=[0.2, 0.22, np.nan])
    bars = [t for t in experiment_ap_figure(ranged).data if t.type == "bar"]
    np.testing.assert_allclose(bars[0].error_y.array, [0.1])
    np.testing.assert_allclose(bars[0].error_y.arrayminus, [0.05])
    assert not bars[0].error_y.symmetric and list(bars[2].error_y.array) == [0.0]
    assert "95% interval" in bars[1].hovertemplate and bars[1].customdata[0][1] == "0.150 to 0.220"

    a = pd.DataFrame({"lower": [0, 50], "upper": [50, 100], "n_gt": [4, 2], "n_detected": [4, 0]})
    b = pd.DataFrame({"lower": [0, 50], "upper": [50, 100], "n_gt": [4, 2], "n_detected": [2, 1]})
    curve = mean_recall_curve({0: a, 1: b})
    assert curve.bins["recall"].tolist() == [0.75, 0.25]
    assert curve.bin_width == 50
