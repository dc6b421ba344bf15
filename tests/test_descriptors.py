"""Geometric descriptors (rem_core.geometry.descriptors): hand cases and a brute-force check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rem_core.dataset import Dataset
from rem_core.geometry import DESCRIPTOR_NAMES, box_descriptors, points_in_box
from rem_core.schema import BOX_COLUMNS


def one_box(length: float, width: float, height: float, heading: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        [dict(segment_id="s", frame_index=0, center_x=10.0, center_y=0.0, center_z=1.0,
              length=length, width=width, height=height, heading=heading)]
    )  # fmt: skip


def test_shape_descriptors_hand_case():
    d = box_descriptors(one_box(12.0, 3.0, 4.0))[0]
    names = dict(zip(DESCRIPTOR_NAMES, d, strict=True))
    assert names["log_length"] == pytest.approx(np.log(12))
    assert names["log_aspect"] == pytest.approx(np.log(4))
    assert names["log_tallness"] == pytest.approx(np.log(4 / 12))
    assert names["log_volume"] == pytest.approx(np.log(144), rel=1e-6)
    assert d[6:].tolist() == [0.0] * 9  # no points asked for


def test_point_statistics_in_the_box_frame():
    box = one_box(4.0, 2.0, 2.0, heading=np.pi / 2)  # length along the vehicle's y
    # 4 points: two at the front end of the length, high; two at the centre, low
    pts = np.array([[10.0, 1.5, 1.8], [10.0, 1.5, 1.6], [10.0, 0.0, 0.2], [10.0, 0.0, 0.4],
                    [30.0, 0.0, 1.0]], np.float32)  # fmt: skip
    d = dict(zip(DESCRIPTOR_NAMES, box_descriptors(box, lambda s, f: pts)[0], strict=True))
    assert d["log_points"] == pytest.approx(np.log(5))
    assert d["log_density"] == pytest.approx(np.log1p(4 / 16))
    assert d["mean_u"] == pytest.approx(1.5 / 4 / 2)  # half at u = 0.375, half at 0
    assert d["mean_v"] == pytest.approx(0.0, abs=1e-6)
    assert d["upper_share"] == 0.5
    assert d["std_u"] == pytest.approx(0.1875)


def test_matches_a_brute_force_count_on_a_world_frame(tiny_world: Dataset):
    seg = tiny_world.segments["segment_id"].iloc[0]
    boxes = tiny_world.frame_boxes(seg, 2)
    pts = tiny_world.points(seg, 2)
    d = box_descriptors(boxes, lambda s, f: tiny_world.points(s, f))
    counts = [points_in_box(pts, b).sum() for b in boxes[BOX_COLUMNS].to_numpy()]
    np.testing.assert_allclose(d[:, 6], np.log1p(counts), rtol=1e-6)
    assert d.shape == (len(boxes), 15) and d.dtype == np.float32 and np.isfinite(d).all()
    # degenerate boxes stay finite
    assert np.isfinite(box_descriptors(one_box(0.0, 0.0, 0.0))).all()
