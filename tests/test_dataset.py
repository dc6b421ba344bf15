from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from rem_core.dataset import Dataset, DatasetWriter
from rem_core.schema import BOXES, DataError, SchemaError, conform, read_table
from rem_core.world import simulate_segment


def test_round_trip(tiny_world, tiny_config):
    seg = simulate_segment(tiny_config, 2)
    stored = tiny_world.boxes[tiny_world.boxes["segment_id"] == seg.segment_id]
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), seg.boxes)
    assert np.array_equal(tiny_world.points(seg.segment_id, 3), seg.frame_points(3))
    assert tiny_world.manifest["counts"]["boxes"] == len(tiny_world.boxes)
    assert len(tiny_world.segments) == tiny_config.n_total_segments


def test_missing_frame_is_a_key_error(tiny_world):
    with pytest.raises(KeyError, match="no frame 99"):
        tiny_world.points(tiny_world.segments["segment_id"][0], 99)


def test_truncated_parquet_gives_a_clear_error(tiny_world, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(tiny_world.root, copy)
    path = copy / "boxes.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"boxes\.parquet.*truncated or corrupt"):
        _ = Dataset.open(copy).boxes


def test_not_a_data_set(tmp_path):
    with pytest.raises(DataError, match="not a REM data set"):
        Dataset.open(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="format is 'other'"):
        Dataset.open(tmp_path)


def test_schema_errors_name_the_column(tiny_world):
    boxes = tiny_world.boxes.head(20).copy()
    with pytest.raises(SchemaError, match="missing column.*heading"):
        conform(boxes.drop(columns="heading"), BOXES, "mine.parquet")
    bad = boxes.copy()
    bad.loc[bad.index[5], "center_x"] = np.nan
    with pytest.raises(SchemaError, match=r"mine\.parquet: column 'center_x'.*row 5"):
        conform(bad, BOXES, "mine.parquet")
    bad = boxes.copy()
    bad["num_points"] = "many"
    with pytest.raises(SchemaError, match="'num_points' cannot be read as int32"):
        conform(bad, BOXES, "mine.parquet")


def test_read_table_names_the_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.parquet: no such file"):
        read_table(tmp_path / "nope.parquet", BOXES)


def test_failed_write_leaves_nothing(tiny_world, tmp_path):
    out = tmp_path / "new"
    seg = tiny_world.segments.head(1)
    with pytest.raises(SchemaError):
        with DatasetWriter(out, {}) as w:
            w.add_segment(
                seg,
                tiny_world.frames.head(1),
                tiny_world.boxes.drop(columns="class"),
                [np.zeros((3, 4), np.float32)],
            )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_data_set_is_kept_without_overwrite(tiny_world, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        DatasetWriter(out, {})
    assert (out / "keep.txt").read_text() == "mine"
    with DatasetWriter(out, {"source": "test"}, overwrite=True):
        pass
    assert not (out / "keep.txt").exists()
    assert Dataset.open(out).segments.empty


def test_split_ids_keep_the_table_order(tiny_world):
    segments = tiny_world.segments
    for split in segments["split"].unique():
        assert (
            tiny_world.split_ids(split)
            == segments.loc[segments["split"] == split, "segment_id"].tolist()
        )
    both = tiny_world.split_ids("source", "unlabelled")
    assert both == [s for s in segments["segment_id"] if s in set(both)]
    assert tiny_world.split_ids() == []
    with pytest.raises(ValueError, match="split: must be one of source, unlabelled"):
        tiny_world.split_ids("train")
