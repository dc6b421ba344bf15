"""Writing a data set folder: whole or not at all, with the hashes of what it holds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.dataset.folder import (
    DATASET_FORMAT,
    DATASET_VERSION,
    MANIFEST,
    Dataset,
    _content,
)
from rem_core.errors import InputKeyError
from rem_core.files import publishing
from rem_core.schema import BOXES, FRAMES, POINTS, SEGMENTS, SchemaError, conform

__all__ = ["DatasetWriter", "write_parquet_folder"]


def write_parquet_folder(
    folder: str | Path, tables: dict[str, pd.DataFrame], force: bool = False
) -> None:
    """Write tables as ``<name>.parquet`` into a new folder, atomically (temp folder, rename).

    Raises:
        FileExistsError: the folder exists and is not empty, and ``force`` is False.
    """
    with publishing(folder, force=force) as tmp:
        for name, df in tables.items():
            pq.write_table(
                pa.Table.from_pandas(df, preserve_index=False),
                tmp / f"{name}.parquet",
                compression="zstd",
            )


class DatasetWriter:
    """Writes a data set folder atomically: everything goes to a temporary sibling first.

    Use as a context manager; on a clean exit the folder is renamed to ``root``, on an
    exception the temporary folder is removed and nothing changes under ``root``.

    Args:
        root: the final folder.
        manifest: extra manifest entries (``source``, ``config``, ...).
        overwrite: replace an existing data set at ``root``; otherwise an existing
            non-empty folder is an error.
    """

    def __init__(self, root: str | Path, manifest: dict[str, Any], overwrite: bool = False) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"{self.root}: exists and is not a folder")
        if self.root.is_dir() and any(self.root.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{self.root}: folder exists and is not empty (pass --force to replace it)"
            )
        self.manifest = dict(manifest)
        self._segments: list[pd.DataFrame] = []
        self._frames: list[pd.DataFrame] = []
        self._boxes: list[pd.DataFrame] = []
        self._tmp: Path | None = None
        self._publishing: contextlib.AbstractContextManager[Path] | None = None

    def __enter__(self) -> DatasetWriter:
        self._publishing = publishing(self.root)
        self._tmp = self._publishing.__enter__()
        (self._tmp / "points").mkdir()
        return self

    @property
    def segment_ids(self) -> list[str]:
        """Ids of the segments added so far, in order."""
        return [str(s["segment_id"].iloc[0]) for s in self._segments]

    def add_dataset(self, dataset: Dataset) -> None:
        """Add every segment of ``dataset`` as it is (its points files linked, or copied
        across file systems): the start of a data set that grows (``rem import --into``)."""
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        for segment_id in dataset.segments["segment_id"].astype(str):
            source = dataset.points_path(segment_id)
            target = self._tmp / "points" / source.name
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        segments = dataset.segments
        self._segments.extend(
            segments.iloc[[i]].reset_index(drop=True) for i in range(len(segments))
        )
        self._frames.append(dataset.frames)
        self._boxes.append(dataset.boxes)

    def set_split(self, segment_id: str, split: str) -> None:
        """Change the split of an added segment (before the folder is written)."""
        for segment in self._segments:
            if str(segment["segment_id"].iloc[0]) == segment_id:
                segment["split"] = split
                return
        raise InputKeyError(f"segment {segment_id!r} was not added")

    def add_segment(
        self,
        segment: pd.DataFrame,
        frames: pd.DataFrame,
        boxes: pd.DataFrame,
        points: Iterable[np.ndarray],
    ) -> None:
        """Add one segment.

        Args:
            segment: a one-row ``SEGMENTS`` table.
            frames: its ``FRAMES`` rows.
            boxes: its ``BOXES`` rows.
            points: one ``(N_f, >=4)`` float32 array per frame, in frame order.
        """
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        segment = conform(segment, SEGMENTS, "segment")
        segment_id = str(segment["segment_id"].iloc[0])
        if not segment_id or "/" in segment_id or segment_id.startswith("."):
            raise SchemaError(f"segment_id {segment_id!r} cannot name a file")
        if segment_id in self.segment_ids:
            raise SchemaError(f"segment_id {segment_id!r} is already in the data set")
        frames = conform(frames, FRAMES, f"frames of {segment_id}")
        boxes = conform(boxes, BOXES, f"boxes of {segment_id}")
        writer = None
        path = self._tmp / "points" / f"{segment_id}.parquet"
        try:
            for frame_index, pts in zip(frames["frame_index"], points, strict=True):
                pts = np.asarray(pts, dtype=np.float32)
                table = pa.table(
                    {
                        "frame_index": pa.array(np.full(len(pts), frame_index, np.int32)),
                        "x": pts[:, 0],
                        "y": pts[:, 1],
                        "z": pts[:, 2],
                        "intensity": pts[:, 3],
                    },
                    schema=POINTS,
                )
                if writer is None:
                    writer = pq.ParquetWriter(
                        path,
                        POINTS,
                        compression="zstd",
                        use_dictionary=["frame_index"],
                        use_byte_stream_split=["x", "y", "z", "intensity"],
                    )
                writer.write_table(table)  # one row group per frame: frames read alone
        finally:
            if writer is not None:
                writer.close()
        self._segments.append(segment)
        self._frames.append(frames)
        self._boxes.append(boxes)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._tmp is not None and self._publishing is not None
        if exc_type is not None:
            self._publishing.__exit__(exc_type, exc, tb)  # removes the temporary folder
            return
        try:
            self._write_tables()
        except BaseException as error:
            self._publishing.__exit__(type(error), error, error.__traceback__)
            raise
        self._publishing.__exit__(None, None, None)  # renames it into place

    def _write_tables(self) -> None:
        assert self._tmp is not None
        tables = {
            "segments": (self._segments, SEGMENTS),
            "frames": (self._frames, FRAMES),
            "boxes": (self._boxes, BOXES),
        }
        counts = {}
        for name, (parts, schema) in tables.items():
            df = (
                pd.concat(parts, ignore_index=True)
                if parts
                else pd.DataFrame({f.name: [] for f in schema})
            )
            df = conform(df, schema, name)
            pq.write_table(
                pa.Table.from_pandas(df, schema=schema, preserve_index=False),
                self._tmp / f"{name}.parquet",
                compression="zstd",
            )
            counts[name] = len(df)
        manifest = {
            "format": DATASET_FORMAT,
            "version": DATASET_VERSION,
            **self.manifest,
            "counts": counts,
            "content": _content(self._tmp),
        }
        (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
