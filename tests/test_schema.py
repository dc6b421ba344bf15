"""Reading tables against their schemas: a file already in the schema's types takes Arrow's
path (``_conform_typed``) and must give what the pandas path gives, errors included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rem_core.schema import DETECTIONS, POINTS, SchemaError, conform, read_table


def _points(n: int = 50) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "frame_index": pa.array(np.repeat(np.arange(5), n // 5), pa.int32()),
            "x": pa.array(rng.normal(size=n), pa.float32()),
            "y": pa.array(rng.normal(size=n), pa.float32()),
            "z": pa.array(rng.normal(size=n), pa.float32()),
            "intensity": pa.array(rng.uniform(size=n), pa.float32()),
        },
        schema=POINTS,
    )


def test_a_typed_table_reads_as_the_pandas_path_reads_it(tmp_path: Path) -> None:
    table = _points()
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=7)  # several chunks
    typed = read_table(tmp_path / "p.parquet", POINTS)
    through_pandas = conform(table.to_pandas(), POINTS, "frame")
    pd.testing.assert_frame_equal(typed, through_pandas)
    assert read_table(tmp_path / "p.parquet", POINTS, frame_index=3)["frame_index"].eq(3).all()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("x", np.nan, "column 'x' has a missing value at row 12"),
        ("z", np.inf, r"column 'z' has a non-finite value \(inf\) at row 12"),
        ("intensity", np.nan, "column 'intensity' has a missing value at row 12"),
    ],
)
def test_a_typed_tables_bad_value_is_named_as_the_pandas_path_names_it(
    tmp_path: Path, column: str, value: float, message: str
) -> None:
    frame = _points().to_pandas()
    frame.loc[12, column] = value
    # a NaN value, not a null: the pandas path calls both missing
    table = pa.table({f.name: pa.array(frame[f.name].to_numpy(), f.type) for f in POINTS})
    assert table.column(column).null_count == 0
    pq.write_table(table.cast(POINTS), tmp_path / "p.parquet", row_group_size=7)
    with pytest.raises(SchemaError, match=message):
        read_table(tmp_path / "p.parquet", POINTS)
    with pytest.raises(SchemaError, match=message):
        conform(frame, POINTS, "frame")


def test_a_null_in_a_required_typed_column_is_named(tmp_path: Path) -> None:
    table = _points()
    frames = table.column("frame_index").to_pylist()
    frames[4] = None
    nullable = pa.schema([pa.field("frame_index", pa.int32())] + list(POINTS)[1:])
    columns = {name: table.column(name) for name in table.column_names}
    columns["frame_index"] = pa.array(frames, pa.int32())
    pq.write_table(pa.table(columns, schema=nullable), tmp_path / "p.parquet")
    with pytest.raises(SchemaError, match="column 'frame_index' has a missing value at row 4"):
        read_table(tmp_path / "p.parquet", POINTS)


def test_a_table_of_other_types_still_takes_the_pandas_path(tmp_path: Path) -> None:
    # float64 scores where the schema says float32: cast, as before
    frame = pd.DataFrame({f.name: [] for f in DETECTIONS})
    assert conform(frame, DETECTIONS, "empty").empty
    points = _points().to_pandas().astype({"x": "float64"})
    pq.write_table(pa.Table.from_pandas(points, preserve_index=False), tmp_path / "p.parquet")
    read = read_table(tmp_path / "p.parquet", POINTS)
    assert read["x"].dtype == np.float32
    np.testing.assert_array_equal(read["x"], points["x"].astype(np.float32))
