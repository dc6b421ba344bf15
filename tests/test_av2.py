"""Argoverse 2 logs (rem_core.io.av2), on the real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.geometry import count_points_in_boxes
from rem_core.io import read_annotations, read_sweep
from rem_core.schema import BOX_COLUMNS, DataError

LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "av2" / "adcf7d18"
needs_av2 = pytest.mark.skipif(not LOG.is_dir(), reason=f"no Argoverse 2 sample at {LOG}")


@needs_av2
def test_every_cuboid_of_the_sweep_holds_its_interior_points():
    boxes = read_annotations(LOG / "annotations.feather")
    assert len(boxes) == 12_078 and boxes["track_id"].nunique() == 146
    assert boxes["frame_index"].nunique() == 156
    sweep = LOG / "sensors" / "lidar" / "315973157959879000.feather"
    points = read_sweep(sweep)
    assert points.shape == (100_660, 4) and 0 <= points[:, 3].min() <= points[:, 3].max() <= 1
    these = boxes[boxes["timestamp_ns"] == int(sweep.stem)]
    assert len(these) == 47 and (these["frame_index"] == 0).all()
    counts = count_points_in_boxes(points[:, :3].astype(np.float64), these[BOX_COLUMNS].to_numpy())
    np.testing.assert_array_equal(counts, these["num_points"].to_numpy())


@needs_av2
def test_categories_map_to_classes_and_subtypes():
    boxes = read_annotations(LOG / "annotations.feather")
    by = boxes.groupby("subtype")["class"].first().to_dict()
    assert by["regular_vehicle"] == by["bus"] == by["box_truck"] == by["truck"] == "vehicle"
    assert by["large_vehicle"] == "vehicle" and by["pedestrian"] == "pedestrian"
    assert by["bollard"] == by["bicycle"] == "other"
    assert boxes["segment_id"].unique().tolist() == ["adcf7d18"]


def test_bad_annotations_are_named(tmp_path: Path):
    row = dict(timestamp_ns=1, track_uuid="a", category="BUS", length_m=10.0, width_m=2.5,
               height_m=3.0, qw=1.0, qx=0.0, qy=0.0, qz=0.0, tx_m=5.0, ty_m=0.0, tz_m=1.5,
               num_interior_pts=10)  # fmt: skip
    pd.DataFrame([row]).drop(columns="qz").to_feather(tmp_path / "a.feather")
    with pytest.raises(DataError, match="a.feather: missing column 'qz'"):
        read_annotations(tmp_path / "a.feather")
    pd.DataFrame([{**row, "tx_m": np.nan}]).to_feather(tmp_path / "b.feather")
    with pytest.raises(DataError, match="b.feather: row 0, column 'tx_m' is not finite"):
        read_annotations(tmp_path / "b.feather")
    (tmp_path / "c.feather").write_bytes(b"not feather")
    with pytest.raises(DataError, match="c.feather: not a readable Feather file"):
        read_sweep(tmp_path / "c.feather")
    # A yaw of 90 degrees: qw = qz = sqrt(1/2).
    s = np.sqrt(0.5)
    pd.DataFrame([{**row, "qw": s, "qz": s}]).to_feather(tmp_path / "d.feather")
    assert read_annotations(tmp_path / "d.feather")["heading"].iloc[0] == pytest.approx(np.pi / 2)
