"""Waymo Open Dataset v2: the ``lidar_box`` and ``lidar`` components (Parquet).

v2 stores one Parquet file per segment and component, with ``key.*`` columns
(``key.segment_context_name``, ``key.frame_timestamp_micros``, ``key.laser_name``,
``key.laser_object_id``) and component columns named ``[Component].field.subfield``:

- ``lidar_box``: ``[LiDARBoxComponent].box.center.{x,y,z}``, ``.box.size.{x,y,z}`` (length,
  width, height), ``.box.heading``, ``.type``, ``.num_lidar_points_in_box``,
  ``.speed.{x,y}``; the object id is the track id.
- ``lidar``: ``[LiDARComponent].range_image_return1.values`` (a flat list of floats) and
  ``.shape`` (``H, W, 4``), decoded with ``rem_core.io.waymo_lidar`` and the
  ``lidar_calibration`` component (``[LiDARCalibrationComponent].extrinsic.transform``,
  ``.beam_inclination.{min,max,values}``); the top LiDAR's per-pixel pose is the
  ``lidar_pose`` component (``[LiDARPoseComponent].range_image_return1``) with the frame's
  ``vehicle_pose`` (``[VehiclePoseComponent].world_from_vehicle.transform``).

The ``lidar`` files are large: they are read a row group at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from rem_core.errors import InputError
from rem_core.io.waymo import WAYMO_TYPES
from rem_core.io.waymo_lidar import range_image_to_points
from rem_core.schema import BOXES, DataError, conform

__all__ = ["read_lidar_box", "read_lidar_points"]

_SEGMENT, _TIME = "key.segment_context_name", "key.frame_timestamp_micros"
_BOX = "[LiDARBoxComponent]."
_BOX_COLUMNS = {
    "center_x": _BOX + "box.center.x",
    "center_y": _BOX + "box.center.y",
    "center_z": _BOX + "box.center.z",
    "length": _BOX + "box.size.x",
    "width": _BOX + "box.size.y",
    "height": _BOX + "box.size.z",
    "heading": _BOX + "box.heading",
}
_CAL = "[LiDARCalibrationComponent]."
_RI = "[LiDARComponent].range_image_return1."
_POSE_RI = "[LiDARPoseComponent].range_image_return1."
_VEHICLE_POSE = "[VehiclePoseComponent].world_from_vehicle.transform"


def _table(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}")
    return pq.read_table(path, columns=columns).to_pandas()


def read_lidar_box(path: str | Path) -> pd.DataFrame:
    """A ``lidar_box`` component as ``BOXES`` rows.

    Frames are numbered by timestamp within each segment; the class comes from the type
    (vehicle, pedestrian, sign, cyclist; others ``unknown``) and the subtype repeats it.

    Raises:
        DataError: naming the file and column, for a missing column or a non-finite box.
    """
    path = Path(path)
    extra = [_BOX + "type", _BOX + "num_lidar_points_in_box"]
    table = _table(path, [_SEGMENT, _TIME, "key.laser_object_id", *_BOX_COLUMNS.values(), *extra])
    values = table[list(_BOX_COLUMNS.values())].to_numpy(np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{path}: row {row}, column {list(_BOX_COLUMNS.values())[col]!r}")
    frame = table.groupby(_SEGMENT)[_TIME].rank(method="dense").astype(np.int32) - 1
    classes = {v: k for k, v in WAYMO_TYPES.items()}
    cls = table[_BOX + "type"].map(classes).fillna("unknown")
    speed = {
        axis: table[_BOX + f"speed.{axis}"] if _BOX + f"speed.{axis}" in table else np.nan
        for axis in ("x", "y")
    }
    out = pd.DataFrame(
        {
            "segment_id": table[_SEGMENT].astype(str),
            "frame_index": frame,
            "track_id": table["key.laser_object_id"].astype(str),
            "class": cls,
            "subtype": cls,
            **{ours: table[theirs].astype(np.float64) for ours, theirs in _BOX_COLUMNS.items()},
            "speed_x": speed["x"],
            "speed_y": speed["y"],
            "num_points": table[_BOX + "num_lidar_points_in_box"].astype(np.int32),
            "label_noise": False,
            "noise_kind": "",
        }
    )
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    out = out.sort_values(["segment_id", "frame_index"], kind="stable").reset_index(drop=True)
    return conform(out, BOXES, path)


def _calibration(row: pd.Series):
    """A v2 ``lidar_calibration`` row as the v1 ``dataset_pb2.LaserCalibration``."""
    from waymo_open_dataset import dataset_pb2

    c = dataset_pb2.LaserCalibration(
        name=int(row["key.laser_name"]),
        beam_inclination_min=float(row[_CAL + "beam_inclination.min"]),
        beam_inclination_max=float(row[_CAL + "beam_inclination.max"]),
    )
    values = row[_CAL + "beam_inclination.values"]
    if values is not None:
        c.beam_inclinations.extend(float(v) for v in values)
    c.extrinsic.transform.extend(float(v) for v in row[_CAL + "extrinsic.transform"])
    return c


def read_lidar_points(
    lidar_path: str | Path,
    calibration_path: str | Path,
    lidar_pose_path: str | Path | None = None,
    vehicle_pose_path: str | Path | None = None,
) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """Decode a ``lidar`` component, a row group at a time.

    Args:
        lidar_path: the ``lidar`` component.
        calibration_path: the segment's ``lidar_calibration`` component.
        lidar_pose_path, vehicle_pose_path: the ``lidar_pose`` and ``vehicle_pose``
            components, for the top LiDAR's per-pixel pose (both or neither).

    Yields:
        ``(segment_id, timestamp_micros, laser_name, points)``, points ``(N, 4)`` float32
        ``x, y, z, intensity`` in the vehicle frame, one per row of the file.
    """
    lidar_path = Path(lidar_path)
    calibration_path = Path(calibration_path)
    cal_columns = [
        "key.laser_name",
        _CAL + "extrinsic.transform",
        _CAL + "beam_inclination.min",
        _CAL + "beam_inclination.max",
        _CAL + "beam_inclination.values",
    ]
    calibrations = {
        int(row["key.laser_name"]): _calibration(row)
        for _, row in _table(calibration_path, cal_columns).iterrows()
    }
    pixel_poses, vehicle_poses = {}, {}
    if (lidar_pose_path is None) != (vehicle_pose_path is None):
        raise InputError("lidar_pose_path and vehicle_pose_path: give both or neither")
    if lidar_pose_path is not None:
        poses = _table(
            Path(lidar_pose_path), [_SEGMENT, _TIME, _POSE_RI + "values", _POSE_RI + "shape"]
        )
        for _, row in poses.iterrows():
            pixel_poses[(row[_SEGMENT], int(row[_TIME]))] = np.asarray(
                row[_POSE_RI + "values"], np.float64
            ).reshape(tuple(row[_POSE_RI + "shape"]))
        vehicle = _table(Path(vehicle_pose_path), [_SEGMENT, _TIME, _VEHICLE_POSE])
        for _, row in vehicle.iterrows():
            vehicle_poses[(row[_SEGMENT], int(row[_TIME]))] = np.asarray(
                row[_VEHICLE_POSE], np.float64
            ).reshape(4, 4)
    columns = [_SEGMENT, _TIME, "key.laser_name", _RI + "values", _RI + "shape"]
    try:
        reader = pq.ParquetFile(lidar_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{lidar_path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in columns if c not in reader.schema_arrow.names]
    if missing:
        raise DataError(f"{lidar_path}: missing column {missing[0]!r}")
    for group in range(reader.num_row_groups):
        batch = reader.read_row_group(group, columns=columns).to_pydict()
        for i in range(len(batch[_SEGMENT])):
            segment, stamp = batch[_SEGMENT][i], int(batch[_TIME][i])
            laser = int(batch["key.laser_name"][i])
            if laser not in calibrations:
                raise DataError(f"{lidar_path}: laser {laser} has no row in {calibration_path}")
            shape = tuple(batch[_RI + "shape"][i])
            values = np.asarray(batch[_RI + "values"][i], np.float32)
            if values.size != int(np.prod(shape)):
                raise DataError(
                    f"{lidar_path}: row group {group}, row {i}: {values.size} values for the "
                    f"shape {shape}"
                )
            key = (segment, stamp)
            pixel_pose = pixel_poses.get(key) if laser == 1 else None
            frame_pose = vehicle_poses.get(key) if pixel_pose is not None else None
            if pixel_pose is not None and frame_pose is None:
                raise DataError(f"{vehicle_pose_path}: no vehicle pose at {stamp} of {segment}")
            points = range_image_to_points(
                values.reshape(shape), calibrations[laser], pixel_pose, frame_pose
            )
            yield segment, stamp, laser, points
