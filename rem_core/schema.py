"""Arrow schemas of every table REM reads or writes, and their validation.

The data format (``docs/data-format.md``) is these schemas on disk as Parquet. Units and
frames follow the Waymo Open Dataset:

* Boxes are in the vehicle frame of their frame (x forward, y left, z up, metres, origin on
  the ground below the ego's reference point). ``center_*`` is the box's geometric centre;
  ``length`` runs along ``heading``, ``width`` to its left, ``height`` up; ``heading`` is in
  radians in [-pi, pi), counter-clockwise from +x.
* Points are ``x, y, z`` in the same vehicle frame, metres, and ``intensity`` in [0, 1].
* Poses map the vehicle frame to a fixed world frame: translation ``pose_x/y/z`` (metres)
  and rotation as a unit quaternion ``pose_qw/qx/qy/qz``.
* ``distance`` is the bird's-eye-view distance of a box centre from the vehicle origin,
  ``hypot(center_x, center_y)``; ``num_points`` counts points inside the box, faces included.

Tables hold scalar columns only; a feature matrix is a separate ``(N, D)`` float32 ``.npy``
in the table's row order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.errors import InputError

__all__ = [
    "BOXES",
    "BOX_COLUMNS",
    "DETECTIONS",
    "FRAMES",
    "POINTS",
    "SEGMENTS",
    "TRACKS",
    "DataError",
    "SchemaError",
    "conform",
    "read_table",
    "write_table",
]

#: Columns of the ``(N, 7)`` box arrays used throughout the engine, in order.
BOX_COLUMNS = ["center_x", "center_y", "center_z", "length", "width", "height", "heading"]

_BOX_FIELDS = [
    pa.field("center_x", pa.float64(), nullable=False),
    pa.field("center_y", pa.float64(), nullable=False),
    pa.field("center_z", pa.float64(), nullable=False),
    pa.field("length", pa.float64(), nullable=False),
    pa.field("width", pa.float64(), nullable=False),
    pa.field("height", pa.float64(), nullable=False),
    pa.field("heading", pa.float64(), nullable=False),
]

SEGMENTS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # source | unlabelled | validation | ood
        pa.field("domain", pa.string(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("frame_rate_hz", pa.float64()),
    ],
    metadata={"table": "segments"},
)

FRAMES = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("timestamp_micros", pa.int64(), nullable=False),
        pa.field("pose_x", pa.float64(), nullable=False),
        pa.field("pose_y", pa.float64(), nullable=False),
        pa.field("pose_z", pa.float64(), nullable=False),
        pa.field("pose_qw", pa.float64(), nullable=False),
        pa.field("pose_qx", pa.float64(), nullable=False),
        pa.field("pose_qy", pa.float64(), nullable=False),
        pa.field("pose_qz", pa.float64(), nullable=False),
        pa.field("num_points", pa.int32(), nullable=False),
    ],
    metadata={"table": "frames"},
)

POINTS = pa.schema(
    [
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("x", pa.float32(), nullable=False),
        pa.field("y", pa.float32(), nullable=False),
        pa.field("z", pa.float32(), nullable=False),
        pa.field("intensity", pa.float32(), nullable=False),
    ],
    metadata={"table": "points"},
)

BOXES = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("class", pa.string(), nullable=False),  # vehicle | pedestrian | cyclist | ...
        pa.field("subtype", pa.string(), nullable=False),
        *_BOX_FIELDS,
        pa.field("speed_x", pa.float32()),
        pa.field("speed_y", pa.float32()),
        pa.field("num_points", pa.int32(), nullable=False),
        pa.field("distance", pa.float32(), nullable=False),
        pa.field("label_noise", pa.bool_(), nullable=False),
        pa.field("noise_kind", pa.string(), nullable=False),  # "" or a label_noise.NOISE_KINDS key
    ],
    metadata={"table": "boxes"},
)

DETECTIONS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("detection_id", pa.int64(), nullable=False),
        pa.field("class", pa.string(), nullable=False),
        *_BOX_FIELDS,
        pa.field("score", pa.float32(), nullable=False),
        pa.field("num_points", pa.int32(), nullable=False),
        pa.field("distance", pa.float32(), nullable=False),
        pa.field("track_id", pa.string()),  # filled in by the tracker
    ],
    metadata={"table": "detections"},
)

TRACKS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("class", pa.string(), nullable=False),
        pa.field("subtype", pa.string(), nullable=False),
        pa.field("first_frame", pa.int32(), nullable=False),
        pa.field("last_frame", pa.int32(), nullable=False),
        pa.field("num_boxes", pa.int32(), nullable=False),
        pa.field("length", pa.float64(), nullable=False),  # median over the track's boxes
        pa.field("width", pa.float64(), nullable=False),
        pa.field("height", pa.float64(), nullable=False),
        pa.field("max_points", pa.int32(), nullable=False),
        pa.field("min_distance", pa.float32(), nullable=False),
        pa.field("label_noise_boxes", pa.int32(), nullable=False),
    ],
    metadata={"table": "tracks"},
)

_FINITE = set(BOX_COLUMNS) | {"x", "y", "z", "score", "pose_x", "pose_y", "pose_z"}


class SchemaError(InputError):
    """A table does not match its schema; the message names the source and the column."""


class DataError(InputError):
    """A file cannot be read as the data it should hold; the message names the file."""


def _name(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(b"table", b"table").decode()


def conform(table: pd.DataFrame | pa.Table, schema: pa.Schema, source: str | Path) -> pd.DataFrame:
    """Check a table against a schema and cast it to the schema's types and column order.

    Extra columns are dropped. Required columns must be present, castable, free of nulls,
    and (geometry and scores) finite.

    Args:
        table: the table to check.
        schema: one of this module's schemas.
        source: where the table came from, for messages (a path or a description).

    Returns:
        A DataFrame with exactly the schema's columns.

    Raises:
        SchemaError: naming the source, the column and, where it applies, the first bad row.
    """
    if isinstance(table, pa.Table):
        if _typed_as(table, schema):
            return _conform_typed(table, schema, source)
        table = table.to_pandas()
    missing = [f.name for f in schema if f.name not in table.columns]
    if missing:
        raise SchemaError(
            f"{source}: {_name(schema)} table is missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, table.columns)) or 'none'})"
        )
    out = {}
    for f in schema:
        col = table[f.name]
        if not f.nullable and col.isna().any():
            row = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise SchemaError(f"{source}: column {f.name!r} has a missing value at row {row}")
        try:
            arr = pa.array(col, type=f.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(
                f"{source}: column {f.name!r} cannot be read as {f.type}: {exc}"
            ) from None
        if f.name in _FINITE:
            _check_finite(arr.to_numpy(zero_copy_only=False), f.name, source)
        out[f.name] = arr
    return pa.table(out, schema=schema).to_pandas()


def _check_finite(values: np.ndarray, name: str, source: str | Path) -> None:
    """Raise :class:`SchemaError` at a column's first non-finite value."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"{source}: column {name!r} has a non-finite value ({values[row]}) at row {row}"
        )


def _typed_as(table: pa.Table, schema: pa.Schema) -> bool:
    """Whether an Arrow table holds every column of ``schema`` with the schema's own type."""
    names = set(table.column_names)
    return all(f.name in names and table.schema.field(f.name).type == f.type for f in schema)


def _conform_typed(table: pa.Table, schema: pa.Schema, source: str | Path) -> pd.DataFrame:
    """:func:`conform` of an Arrow table whose columns have the schema's types already (a
    file this package wrote): the same checks and the same frame, without converting every
    column to pandas and back (a segment's million points: 100 ms to 20)."""
    out = {}
    for f in schema:
        col = table.column(f.name)
        missing = None
        if not f.nullable and col.null_count:
            missing = col.is_null().to_numpy(zero_copy_only=False)
        values = None
        if pa.types.is_floating(f.type) and (not f.nullable or f.name in _FINITE):
            values = col.to_numpy()
            if not f.nullable and missing is None:
                nan = np.isnan(values)
                missing = nan if nan.any() else None
        if missing is not None:
            row = int(np.flatnonzero(missing)[0])
            raise SchemaError(f"{source}: column {f.name!r} has a missing value at row {row}")
        if f.name in _FINITE and values is not None:
            _check_finite(values, f.name, source)
        out[f.name] = col
    return pa.table(out, schema=schema).to_pandas()


def read_table(path: str | Path, schema: pa.Schema, **filters: object) -> pd.DataFrame:
    """Read a Parquet file and conform it to a schema.

    Args:
        path: the Parquet file.
        schema: the schema it must follow.
        filters: equality filters on columns, e.g. ``frame_index=3``.

    Raises:
        DataError: the file is missing, truncated or not Parquet.
        SchemaError: its content does not follow the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = pq.read_table(path, filters=[(k, "==", v) for k, v in filters.items()] or None)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path}: not a readable Parquet file (truncated or corrupt?): {exc}"
        ) from None
    return conform(table, schema, path)


def write_table(df: pd.DataFrame, path: str | Path, schema: pa.Schema, **kwargs: object) -> None:
    """Write a table as Parquet (conformed to ``schema``) through a temporary file.

    The file appears complete or not at all.
    """
    path = Path(path)
    table = pa.Table.from_pandas(conform(df, schema, path), schema=schema, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", **kwargs)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
