from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from rem_core.geometry import (
    bev_corners,
    bev_overlap,
    box_corners,
    count_points_in_boxes,
    points_in_box,
    size_subset,
    wrap_angle,
)


def test_wrap_angle_range():
    a = wrap_angle(np.array([-np.pi, np.pi, 3 * np.pi, -7.0, 0.5]))
    assert np.all(a >= -np.pi) and np.all(a < np.pi)
    assert a[0] == pytest.approx(-np.pi) and a[1] == pytest.approx(-np.pi)
    assert a[4] == pytest.approx(0.5)


def test_box_corners_hand_case():
    # A 4 x 2 x 1 box turned by 90 degrees: length now runs along y.
    c = box_corners(np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.0, np.pi / 2]]))[0]
    assert c[:, 0].min() == pytest.approx(0.0) and c[:, 0].max() == pytest.approx(2.0)
    assert c[:, 1].min() == pytest.approx(0.0) and c[:, 1].max() == pytest.approx(4.0)
    assert c[:, 2].min() == pytest.approx(0.0) and c[:, 2].max() == pytest.approx(1.0)


def test_points_in_box_hand_case():
    box = np.array([0.0, 0.0, 1.0, 4.0, 2.0, 2.0, np.pi / 4])
    pts = np.array([[0, 0, 1], [1.4, 1.4, 1], [1.4, -1.4, 1], [0, 0, 2.5], [-1.0, -1.0, 0.1]])
    assert points_in_box(pts, box).tolist() == [True, True, False, False, True]
    assert count_points_in_boxes(pts, box[None]).tolist() == [3]


def test_size_subset_thresholds():
    out = size_subset(np.array([2.9, 3.0, 6.99, 7.0, 1.0]), np.ones(5), np.array([1, 1, 1, 1, 8]))
    assert out.tolist() == ["small", "regular", "regular", "large", "large"]


rect = st.tuples(
    st.floats(-5, 5),
    st.floats(-5, 5),
    st.floats(0.2, 6),
    st.floats(0.2, 3),
    st.floats(-np.pi, np.pi),
)


@settings(max_examples=300, deadline=None)
@given(rect, rect)
def test_bev_overlap_matches_shapely(a, b):
    a, b = np.array([a]), np.array([b])
    pa, pb = Polygon(bev_corners(a)[0]), Polygon(bev_corners(b)[0])
    inter = pa.intersection(pb).area
    if inter > 1e-6:
        assert bev_overlap(a, b)[0]
    elif pa.distance(pb) > 1e-6:
        assert not bev_overlap(a, b)[0]


def test_point_grid_counts_equal_the_plain_count():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-60, 60, (50_000, 3)).astype(np.float32)
    pts[:, 2] = rng.uniform(-1, 4, len(pts))
    boxes = np.column_stack(
        [
            rng.uniform(-70, 70, 200),
            rng.uniform(-70, 70, 200),
            rng.uniform(0, 2, 200),
            rng.uniform(0.3, 15, 200),
            rng.uniform(0.3, 4, 200),
            rng.uniform(0.5, 4, 200),
            rng.uniform(-np.pi, np.pi, 200),
        ]
    )
    from rem_core.geometry import PointGrid

    fast = PointGrid(pts).count_in_boxes(boxes)
    assert np.array_equal(fast, count_points_in_boxes(pts, boxes))
    assert fast.sum() > 1000
    assert PointGrid(pts[:0]).count_in_boxes(boxes).sum() == 0
