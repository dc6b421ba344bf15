"""Boxes as Waymo Open Dataset ``metrics_pb2.Objects`` (the ``.bin`` files of its metrics tools).

Only the protos of ``waymo-open-dataset-tf-2-12-0`` are used, never TensorFlow. A box row
maps to one ``metrics_pb2.Object``: ``context_name`` is the segment id,
``frame_timestamp_micros`` the frame's timestamp, ``object.box`` the box (vehicle frame,
metres, heading in radians: the same conventions as ``rem_core.schema``), ``object.id`` the
track id, ``object.type`` the class, ``object.num_lidar_points_in_box`` the point count and
``score`` the row's ``score`` (1 when absent: a human label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.io.files import publish_file
from rem_core.schema import BOX_COLUMNS, SchemaError

__all__ = ["WAYMO_TYPES", "objects_from_boxes", "read_objects", "write_objects"]

#: Class names and their ``label_pb2.Label.Type``.
WAYMO_TYPES = {"vehicle": 1, "pedestrian": 2, "sign": 3, "cyclist": 4}


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
        raise ValueError(f"{path}: not a metrics_pb2.Objects file ({exc})") from None
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
