"""Waymo Open Dataset files: v1 segments (TFRecords of ``dataset_pb2.Frame``) and
``metrics_pb2.Objects`` (the ``.bin`` files of its metrics tools).

Frames: :func:`read_frames` streams a segment's ``Frame`` messages (see
``rem_core.io.tfrecord``); :func:`frame_row` and :func:`frame_boxes` turn one into a row of
the ``FRAMES`` table and its laser labels into ``BOXES`` rows. Waymo's boxes already follow
the project's conventions (vehicle frame, metres, geometric centre, heading in radians);
the persistent label ``id`` is the track id, the label type the class (Waymo has no
subtypes: the subtype repeats the class), ``num_lidar_points_in_box`` the point count.

Objects:

Only the protos of ``waymo-open-dataset-tf-2-12-0`` are used, never TensorFlow. A box row
maps to one ``metrics_pb2.Object``: ``context_name`` is the segment id,
``frame_timestamp_micros`` the frame's timestamp, ``object.box`` the box (vehicle frame,
metres, heading in radians: the same conventions as ``rem_core.schema``), ``object.id`` the
track id, ``object.type`` the class, ``object.num_lidar_points_in_box`` the point count and
``score`` the row's ``score`` (1 when absent: a human label).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.files import publish_file
from rem_core.io.tfrecord import read_records
from rem_core.schema import BOX_COLUMNS, BOXES, DataError, SchemaError, conform

__all__ = [
    "WAYMO_TYPES",
    "frame_boxes",
    "frame_row",
    "objects_from_boxes",
    "read_frames",
    "read_objects",
    "write_objects",
]

#: Class names and their ``label_pb2.Label.Type``.
WAYMO_TYPES = {"vehicle": 1, "pedestrian": 2, "sign": 3, "cyclist": 4}


_CLASS_OF_TYPE = {v: k for k, v in WAYMO_TYPES.items()}


def read_frames(path: str | Path) -> Iterator:
    """The ``dataset_pb2.Frame`` messages of a v1 segment file, one at a time.

    Raises:
        DataError: naming the file and record, for a broken container (see
            ``read_records``) or a record that is not a ``Frame``.
    """
    from google.protobuf.message import DecodeError
    from waymo_open_dataset import dataset_pb2

    path = Path(path)
    for index, payload in enumerate(read_records(path)):
        frame = dataset_pb2.Frame()
        try:
            frame.ParseFromString(payload)
        except DecodeError as exc:
            raise DataError(f"{path}: record {index} is not a dataset_pb2.Frame ({exc})") from None
        if not frame.context.name or frame.timestamp_micros <= 0:
            raise DataError(
                f"{path}: record {index} is not a dataset_pb2.Frame (no context name or timestamp)"
            )
        yield frame


def frame_row(frame, frame_index: int) -> dict:
    """The ``FRAMES`` row of a ``Frame``: its segment (context name), time and pose.

    ``num_points`` is 0: points come from the range images, decoded separately.
    """
    from scipy.spatial.transform import Rotation

    pose = np.asarray(frame.pose.transform, dtype=np.float64)
    if pose.shape != (16,):
        raise DataError(f"frame {frame_index}: pose.transform has {pose.size} values, not 16")
    pose = pose.reshape(4, 4)
    qx, qy, qz, qw = Rotation.from_matrix(pose[:3, :3]).as_quat()
    return {
        "segment_id": frame.context.name,
        "frame_index": frame_index,
        "timestamp_micros": int(frame.timestamp_micros),
        "pose_x": pose[0, 3],
        "pose_y": pose[1, 3],
        "pose_z": pose[2, 3],
        "pose_qw": qw,
        "pose_qx": qx,
        "pose_qy": qy,
        "pose_qz": qz,
        "num_points": 0,
    }


def frame_boxes(frame, frame_index: int) -> pd.DataFrame:
    """The laser labels of a ``Frame`` as ``BOXES`` rows (vehicle frame, as Waymo)."""
    rows = []
    for label in frame.laser_labels:
        cls = _CLASS_OF_TYPE.get(label.type, "unknown")
        b = label.box
        rows.append(
            {
                "segment_id": frame.context.name,
                "frame_index": frame_index,
                "track_id": label.id,
                "class": cls,
                "subtype": cls,
                "center_x": b.center_x,
                "center_y": b.center_y,
                "center_z": b.center_z,
                "length": b.length,
                "width": b.width,
                "height": b.height,
                "heading": b.heading,
                "speed_x": label.metadata.speed_x,
                "speed_y": label.metadata.speed_y,
                "num_points": label.num_lidar_points_in_box,
                "distance": float(np.hypot(b.center_x, b.center_y)),
                "label_noise": False,
                "noise_kind": "",
            }
        )
    table = pd.DataFrame(rows, columns=BOXES.names)
    return conform(table, BOXES, f"frame {frame_index} of {frame.context.name}")


def objects_from_boxes(boxes: pd.DataFrame, frames: pd.DataFrame):
    """A ``metrics_pb2.Objects`` message holding every row of ``boxes``.

    Args:
        boxes: rows with ``segment_id, frame_index, track_id, class`` and the box columns;
            ``score`` and ``num_points`` are used when present.
        frames: the ``FRAMES`` table (for ``timestamp_micros``).

    Raises:
        SchemaError: a column is missing, a class has no Waymo type, or a box's frame is not
            in ``frames``.
    """
    from waymo_open_dataset import label_pb2
    from waymo_open_dataset.protos import metrics_pb2

    for column in ["segment_id", "frame_index", "track_id", "class", *BOX_COLUMNS]:
        if column not in boxes.columns:
            raise SchemaError(f"boxes: missing column {column!r}")
    unknown = sorted(set(boxes["class"]) - set(WAYMO_TYPES))
    if unknown:
        raise SchemaError(f"boxes: column 'class' has values with no Waymo type: {unknown}")
    stamps = frames.set_index(["segment_id", "frame_index"])["timestamp_micros"]
    key = pd.MultiIndex.from_frame(boxes[["segment_id", "frame_index"]])
    found = key.isin(stamps.index)
    if not found.all():
        seg, frame = key[int(np.flatnonzero(~found)[0])]
        raise SchemaError(f"boxes: frame {frame} of segment {seg!r} is not in the frames table")
    micros = stamps.reindex(key).to_numpy(np.int64)
    values = boxes[BOX_COLUMNS].to_numpy(np.float64)
    score = boxes["score"].to_numpy(np.float64) if "score" in boxes else np.ones(len(boxes))
    points = boxes["num_points"].to_numpy(np.int64) if "num_points" in boxes else None
    out = metrics_pb2.Objects()
    for i, (seg, track, cls) in enumerate(
        zip(boxes["segment_id"], boxes["track_id"], boxes["class"], strict=True)
    ):
        cx, cy, cz, length, width, height, heading = values[i]
        label = label_pb2.Label(
            box=label_pb2.Label.Box(
                center_x=cx,
                center_y=cy,
                center_z=cz,
                length=length,
                width=width,
                height=height,
                heading=heading,
            ),
            type=WAYMO_TYPES[cls],
            id=str(track),
        )
        if points is not None:
            label.num_lidar_points_in_box = int(points[i])
        out.objects.append(
            metrics_pb2.Object(
                object=label,
                score=float(score[i]),
                context_name=str(seg),
                frame_timestamp_micros=int(micros[i]),
            )
        )
    return out


def write_objects(
    boxes: pd.DataFrame, frames: pd.DataFrame, path: str | Path, *, force: bool = False
) -> Path:
    """Write ``boxes`` as a serialised ``metrics_pb2.Objects`` file, atomically."""
    message = objects_from_boxes(boxes, frames)
    return publish_file(path, lambda tmp: tmp.write_bytes(message.SerializeToString()), force=force)


def read_objects(path: str | Path) -> pd.DataFrame:
    """Read a ``metrics_pb2.Objects`` file into a table.

    Returns:
        One row per object: ``segment_id`` (context name), ``timestamp_micros``,
        ``track_id``, ``class``, the box columns, ``num_points`` and ``score``.
    """
    from google.protobuf.message import DecodeError
    from waymo_open_dataset.protos import metrics_pb2

    path = Path(path)
    message = metrics_pb2.Objects()
    try:
        message.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise InputError(f"{path}: not a metrics_pb2.Objects file ({exc})") from None
    names = {v: k for k, v in WAYMO_TYPES.items()}
    rows = [
        {
            "segment_id": o.context_name,
            "timestamp_micros": o.frame_timestamp_micros,
            "track_id": o.object.id,
            "class": names.get(o.object.type, "unknown"),
            **{c: getattr(o.object.box, c) for c in BOX_COLUMNS},
            "num_points": o.object.num_lidar_points_in_box,
            "score": o.score,
        }
        for o in message.objects
    ]
    columns = ["segment_id", "timestamp_micros", "track_id", "class", *BOX_COLUMNS]
    return pd.DataFrame(rows, columns=[*columns, "num_points", "score"])
