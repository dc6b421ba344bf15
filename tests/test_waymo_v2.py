"""Waymo v2 components (rem_core.io.waymo_v2), on small Parquet files made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_waymo_lidar import CONFIG, calibration, world_points

from rem_core.io import (
    points_to_range_image,
    range_image_to_points,
    read_lidar_box,
    read_lidar_points,
)
from rem_core.schema import DataError

SEG = "10023947602400723454_1120_000_1140_000"


def write(path: Path, rows: list[dict], row_group_size: int | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def box_row(stamp: int, object_id: str, x: float, kind: int = 1) -> dict:
    b = "[LiDARBoxComponent]."
    return {
        "key.segment_context_name": SEG, "key.frame_timestamp_micros": stamp,
        "key.laser_object_id": object_id, b + "box.center.x": x, b + "box.center.y": 2.0,
        b + "box.center.z": 1.0, b + "box.size.x": 4.5, b + "box.size.y": 1.9,
        b + "box.size.z": 1.6, b + "box.heading": 0.3, b + "type": kind,
        b + "num_lidar_points_in_box": 120, b + "speed.x": 3.0, b + "speed.y": 0.0,
    }  # fmt: skip


def test_lidar_box_rows_become_tracked_boxes(tmp_path: Path):
    rows = [box_row(2_000_000, "a", 10.0), box_row(1_000_000, "a", 9.0),
            box_row(1_000_000, "p", 5.0, kind=2), box_row(2_000_000, "s", 7.0, kind=3)]  # fmt: skip
    boxes = read_lidar_box(write(tmp_path / "lidar_box.parquet", rows))
    assert boxes["frame_index"].tolist() == [0, 0, 1, 1]
    a = boxes[boxes["track_id"] == "a"]
    assert a["center_x"].tolist() == [9.0, 10.0] and (a["class"] == "vehicle").all()
    assert set(boxes["class"]) == {"vehicle", "pedestrian", "sign"}
    assert boxes["length"].iloc[0] == 4.5 and boxes["num_points"].iloc[0] == 120
    with pytest.raises(DataError, match=r"missing column '\[LiDARBoxComponent\].box.heading'"):
        read_lidar_box(write(tmp_path / "bad.parquet", [
            {k: v for k, v in rows[0].items() if not k.endswith("heading")}
        ]))  # fmt: skip
    nan = [{**rows[0], "[LiDARBoxComponent].box.center.x": float("nan")}]
    with pytest.raises(DataError, match=r"row 0, column '\[LiDARBoxComponent\].box.center.x'"):
        read_lidar_box(write(tmp_path / "nan.parquet", nan))


def v2_calibration_rows(c) -> list[dict]:
    k = "[LiDARCalibrationComponent]."
    return [{
        "key.segment_context_name": SEG, "key.laser_name": 1,
        k + "extrinsic.transform": list(c.extrinsic.transform),
        k + "beam_inclination.min": c.beam_inclination_min,
        k + "beam_inclination.max": c.beam_inclination_max,
        k + "beam_inclination.values": list(c.beam_inclinations),
    }]  # fmt: skip


def test_lidar_component_decodes_like_v1_a_row_group_at_a_time(tmp_path: Path):
    c = calibration(-1.0)
    image = points_to_range_image(world_points(), c, CONFIG.n_beams, CONFIG.n_columns)
    rows = [
        {"key.segment_context_name": SEG, "key.frame_timestamp_micros": stamp,
         "key.laser_name": 1,
         "[LiDARComponent].range_image_return1.values": image.ravel().tolist(),
         "[LiDARComponent].range_image_return1.shape": list(image.shape)}
        for stamp in (1_000_000, 1_100_000)
    ]  # fmt: skip
    lidar = write(tmp_path / "lidar.parquet", rows, row_group_size=1)
    cal = write(tmp_path / "lidar_calibration.parquet", v2_calibration_rows(c))
    out = list(read_lidar_points(lidar, cal))
    assert [(s, t, n) for s, t, n, _ in out] == [(SEG, 1_000_000, 1), (SEG, 1_100_000, 1)]
    np.testing.assert_array_equal(out[0][3], range_image_to_points(image, c))

    # The top LiDAR's pixel pose with the vehicle pose: here the vehicle did not move.
    pose = np.zeros(image.shape[:2] + (6,))
    pose[..., 3] = 5.0
    ri = "[LiDARPoseComponent].range_image_return1."
    poses = [
        {"key.segment_context_name": SEG, "key.laser_name": 1,
         "key.frame_timestamp_micros": r["key.frame_timestamp_micros"],
         ri + "values": pose.ravel().tolist(), ri + "shape": list(pose.shape)}
        for r in rows
    ]  # fmt: skip
    world = np.eye(4)
    world[0, 3] = 5.0
    vehicle = [{"key.segment_context_name": SEG, "key.frame_timestamp_micros": r[
        "key.frame_timestamp_micros"],
        "[VehiclePoseComponent].world_from_vehicle.transform": world.ravel().tolist()}
        for r in rows]  # fmt: skip
    moved = list(read_lidar_points(
        lidar, cal, write(tmp_path / "lidar_pose.parquet", poses),
        write(tmp_path / "vehicle_pose.parquet", vehicle),
    ))  # fmt: skip
    np.testing.assert_allclose(moved[0][3], out[0][3], atol=1e-3)

    bad = [{**rows[0], "[LiDARComponent].range_image_return1.shape": [2, 2, 4]}]
    with pytest.raises(DataError, match=r"row group 0, row 0: .* values for the shape \(2, 2, 4\)"):
        list(read_lidar_points(write(tmp_path / "bad.parquet", bad), cal))
    with pytest.raises(ValueError, match="give both or neither"):
        list(read_lidar_points(lidar, cal, tmp_path / "lidar_pose.parquet"))


def test_a_v2_folder_imports_as_a_data_set(tmp_path: Path):
    from rem_core.io import import_waymo_v2

    root = tmp_path / "v2"
    for folder in ("lidar_box", "lidar", "lidar_calibration"):
        (root / folder).mkdir(parents=True)
    stamps = (1_000_000, 1_100_000)
    write(root / "lidar_box" / f"{SEG}.parquet",
          [box_row(t, "a", 9.0 + i) for i, t in enumerate(stamps)])  # fmt: skip
    c = calibration(0.5)
    image = points_to_range_image(world_points(), c, CONFIG.n_beams, CONFIG.n_columns)
    write(root / "lidar" / f"{SEG}.parquet", [
        {"key.segment_context_name": SEG, "key.frame_timestamp_micros": t, "key.laser_name": 1,
         "[LiDARComponent].range_image_return1.values": image.ravel().tolist(),
         "[LiDARComponent].range_image_return1.shape": list(image.shape)}
        for t in stamps
    ])  # fmt: skip
    write(root / "lidar_calibration" / f"{SEG}.parquet", v2_calibration_rows(c))
    ds = import_waymo_v2(root, tmp_path / "out")
    assert ds.segments["segment_id"].tolist() == [SEG]
    n = int(np.count_nonzero(image[:, :, 0] > 0))
    assert ds.frames["num_points"].tolist() == [n, n]
    assert len(ds.points(SEG, 1)) == n
    assert ds.tracks["num_boxes"].tolist() == [2]


def test_v2_folders_import_into_one_data_set_and_grow_it(tmp_path: Path):
    from rem_core.io import import_data

    roots = []
    for name in ("segment-a", "segment-b", "segment-c"):
        root = tmp_path / name
        (root / "lidar_box").mkdir(parents=True)
        rows = [{**box_row(t, "a", 9.0), "key.segment_context_name": name}
                for t in (1_000_000, 1_100_000)]  # fmt: skip
        write(root / "lidar_box" / f"{name}.parquet", rows)
        roots.append(root)
    ds = import_data("waymo-v2", [str(tmp_path / "segment-[ab]")], tmp_path / "out")
    assert ds.segments["segment_id"].tolist() == ["segment-a", "segment-b"]
    ds = import_data("waymo-v2", [roots[2]], tmp_path / "out", into=True, source_share=1.0)
    assert dict(zip(ds.segments["segment_id"], ds.segments["split"], strict=True)) == {
        "segment-a": "unlabelled", "segment-b": "unlabelled", "segment-c": "source",
    }  # fmt: skip
    with pytest.raises(DataError, match="segment-a: already imported into"):
        import_data("waymo-v2", [roots[0]], tmp_path / "out", into=True)
