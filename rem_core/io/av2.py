"""Argoverse 2 sensor logs: LiDAR sweeps and annotated cuboids (Feather files).

A log holds ``annotations.feather`` (one row per cuboid: ``timestamp_ns``, ``track_uuid``,
``category``, size, rotation quaternion ``qw, qx, qy, qz``, centre ``tx_m, ty_m, tz_m``,
``num_interior_pts``), ``sensors/lidar/<timestamp_ns>.feather`` (``x, y, z, intensity``
per point) and ``city_SE3_egovehicle.feather`` (poses). Cuboids and points are in the
ego-vehicle frame (x forward, y left, z up; the cuboid's geometric centre), as the project's
vehicle frame. Frames are numbered by the annotated sweeps' timestamps, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather

from rem_core.geometry import wrap_angle
from rem_core.schema import DataError

__all__ = ["AV2_CLASSES", "read_annotations", "read_sweep"]

#: AV2 categories of the project's classes; every other category is class ``other``. The
#: subtype is the category in lower case.
AV2_CLASSES: dict[str, str] = {
    **dict.fromkeys(
        ["REGULAR_VEHICLE", "LARGE_VEHICLE", "BUS", "BOX_TRUCK", "TRUCK", "TRUCK_CAB",
         "VEHICULAR_TRAILER", "SCHOOL_BUS", "ARTICULATED_BUS", "RAILED_VEHICLE",
         "MESSAGE_BOARD_TRAILER"],
        "vehicle",
    ),
    **dict.fromkeys(["PEDESTRIAN", "OFFICIAL_SIGNALER"], "pedestrian"),
    **dict.fromkeys(["BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER"], "cyclist"),
}  # fmt: skip

_ANNOTATION_COLUMNS = [
    "timestamp_ns", "track_uuid", "category", "length_m", "width_m", "height_m",
    "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m", "num_interior_pts",
]  # fmt: skip


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = feather.read_table(path).to_pandas()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Feather file ({exc})") from None
    for column in columns:
        if column not in table.columns:
            raise DataError(f"{path}: missing column {column!r}")
    return table


def read_annotations(path: str | Path, segment_id: str | None = None) -> pd.DataFrame:
    """A log's cuboids as boxes.

    Args:
        path: ``annotations.feather``.
        segment_id: the segment's id (default: the log folder's name).

    Returns:
        ``segment_id, frame_index, timestamp_ns, track_id`` (the ``track_uuid``), ``class,
        subtype``, the box columns, ``num_points`` (``num_interior_pts``) and ``distance``;
        heading is the yaw of the cuboid's rotation.

    Raises:
        DataError: naming the file and the column, for a missing column or a non-finite box.
    """
    path = Path(path)
    table = _read(path, _ANNOTATION_COLUMNS)
    numeric = ["length_m", "width_m", "height_m", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m"]
    values = table[numeric].to_numpy(np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{path}: row {row}, column {numeric[col]!r} is not finite")
    qw, qx, qy, qz = (table[c].to_numpy(np.float64) for c in ("qw", "qx", "qy", "qz"))
    yaw = np.arctan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
    stamps = np.sort(table["timestamp_ns"].unique())
    category = table["category"].astype(str)
    out = pd.DataFrame(
        {
            "segment_id": segment_id or path.parent.name,
            "frame_index": np.searchsorted(stamps, table["timestamp_ns"]).astype(np.int32),
            "timestamp_ns": table["timestamp_ns"].to_numpy(np.int64),
            "track_id": table["track_uuid"].astype(str).to_numpy(),
            "class": category.map(AV2_CLASSES).fillna("other").to_numpy(),
            "subtype": category.str.lower().to_numpy(),
            "center_x": table["tx_m"].to_numpy(np.float64),
            "center_y": table["ty_m"].to_numpy(np.float64),
            "center_z": table["tz_m"].to_numpy(np.float64),
            "length": table["length_m"].to_numpy(np.float64),
            "width": table["width_m"].to_numpy(np.float64),
            "height": table["height_m"].to_numpy(np.float64),
            "heading": wrap_angle(yaw),
            "num_points": table["num_interior_pts"].to_numpy(np.int32),
        }
    )
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    return out


def read_sweep(path: str | Path) -> np.ndarray:
    """One LiDAR sweep as ``(N, 4)`` float32 ``x, y, z, intensity`` (intensity / 255, in
    [0, 1]) in the ego-vehicle frame."""
    path = Path(path)
    table = _read(path, ["x", "y", "z", "intensity"])
    return np.column_stack(
        [
            table["x"].to_numpy(np.float32),
            table["y"].to_numpy(np.float32),
            table["z"].to_numpy(np.float32),
            table["intensity"].to_numpy(np.float32) / 255.0,
        ]
    ).astype(np.float32)
