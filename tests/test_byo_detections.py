"""Bring-your-own detections (rem_core.io.detections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.dataset import Dataset
from rem_core.geometry import count_points_in_boxes
from rem_core.io import read_detections
from rem_core.schema import BOX_COLUMNS, DataError, SchemaError


def detections_from(ds: Dataset, n: int = 20) -> pd.DataFrame:
    boxes = ds.boxes[ds.boxes["class"] == "vehicle"].head(n)
    return boxes[["segment_id", "frame_index", *BOX_COLUMNS]].assign(score=0.8)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_detections_are_completed_and_counted(tiny_world: Dataset, tmp_path: Path, suffix: str):
    table = detections_from(tiny_world)
    path = tmp_path / f"dets{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
    feats = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    out, got = read_detections(path, tmp_path / "f.npy", dataset=tiny_world)
    assert len(out) == 20 and (out["class"] == "vehicle").all()
    assert out["detection_id"].tolist() == list(range(20)) and out["track_id"].isna().all()
    np.testing.assert_array_equal(got, feats)
    first = out.iloc[0]
    points = tiny_world.points(first["segment_id"], int(first["frame_index"]))
    expected = count_points_in_boxes(points[:, :3], out.iloc[[0]][BOX_COLUMNS].to_numpy())
    assert first["num_points"] == expected[0] > 0


def test_bad_detections_are_named(tiny_world: Dataset, tmp_path: Path):
    table = detections_from(tiny_world)
    table.drop(columns="score").to_parquet(tmp_path / "a.parquet")
    with pytest.raises(SchemaError, match="a.parquet: detections are missing column 'score'"):
        read_detections(tmp_path / "a.parquet")
    bad = table.copy()
    bad.loc[bad.index[3], "center_y"] = np.nan
    bad.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(SchemaError, match="column 'center_y' has a missing value at row 3"):
        read_detections(tmp_path / "b.parquet")
    bad = table.copy()
    bad.loc[bad.index[2], "width"] = -1.0
    bad.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(SchemaError, match="column 'width' is negative at row 2"):
        read_detections(tmp_path / "c.parquet")
    table.to_parquet(tmp_path / "d.parquet")
    np.save(tmp_path / "f.npy", np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"features of shape \(5, 3\) for 20 detections"):
        read_detections(tmp_path / "d.parquet", tmp_path / "f.npy")
    table.assign(frame_index=999).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(DataError, match="row 0: frame 999 of segment"):
        read_detections(tmp_path / "e.parquet", dataset=tiny_world)
    with pytest.raises(DataError, match="use a .parquet or .csv"):
        read_detections(tmp_path / "f.npy")
