"""The on-disk data set every stage reads: a folder of Parquet tables and per-segment points.

Layout (``docs/data-format.md`` is the full contract)::

    DIR/
      dataset.json             format name and version, what made it, and counts
      segments.parquet         SEGMENTS schema: one row per segment with its split
      frames.parquet           FRAMES schema: one row per frame with the ego pose
      boxes.parquet            BOXES schema: ground-truth boxes with track ids
      points/<segment_id>.parquet   POINTS schema: x, y, z, intensity by frame_index

A data set is written into a temporary sibling folder and renamed into place when complete,
so a crash never leaves a half-written data set under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.config import SPLITS
from rem_core.errors import InputError, InputKeyError
from rem_core.files import publishing
from rem_core.schema import (
    BOX_COLUMNS,
    BOXES,
    FRAMES,
    POINTS,
    SEGMENTS,
    TRACKS,
    DataError,
    SchemaError,
    conform,
    read_table,
)

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "Dataset",
    "DatasetWriter",
    "summarize_tracks",
    "write_parquet_folder",
]

DATASET_FORMAT = "rem-dataset"
DATASET_VERSION = 1
MANIFEST = "dataset.json"


def summarize_tracks(boxes: pd.DataFrame) -> pd.DataFrame:
    """One row per track in the ``TRACKS`` schema, from boxes with track ids.

    Dimensions are medians over the track's boxes (label noise does not move them much).
    """
    if boxes.empty:
        return conform(pd.DataFrame({f.name: [] for f in TRACKS}), TRACKS, "tracks")
    g = boxes.groupby(["segment_id", "track_id"], sort=True, observed=True)
    out = g.agg(
        **{
            "class": ("class", "first"),
            "subtype": ("subtype", "first"),
            "first_frame": ("frame_index", "min"),
            "last_frame": ("frame_index", "max"),
            "num_boxes": ("frame_index", "size"),
            "length": ("length", "median"),
            "width": ("width", "median"),
            "height": ("height", "median"),
            "max_points": ("num_points", "max"),
            "min_distance": ("distance", "min"),
            "label_noise_boxes": ("label_noise", "sum"),
        }
    ).reset_index()
    return conform(out, TRACKS, "tracks")


@dataclass(frozen=True)
class Dataset:
    """A data set folder opened for reading; tables load on first use.

    Args:
        root: the folder.
        manifest: the parsed ``dataset.json``.
    """

    root: Path
    manifest: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        """Open a data set folder, checking its manifest.

        Raises:
            DataError: the folder or its manifest is missing or of another format.
        """
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise DataError(
                f"{root}: not a REM data set (no {MANIFEST}); make one with `rem world`"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable manifest: {exc}") from None
        if manifest.get("format") != DATASET_FORMAT:
            raise DataError(
                f"{path}: format is {manifest.get('format')!r}, expected {DATASET_FORMAT!r}"
            )
        if manifest.get("version") != DATASET_VERSION:
            raise DataError(
                f"{path}: format version {manifest.get('version')} is not supported "
                f"(this build reads version {DATASET_VERSION})"
            )
        return cls(root=root, manifest=manifest)

    @cached_property
    def segments(self) -> pd.DataFrame:
        """``SEGMENTS`` table."""
        return read_table(self.root / "segments.parquet", SEGMENTS)

    def split_ids(self, *splits: str) -> list[str]:
        """Ids of the segments in ``splits`` (``rem_core.config.SPLITS``), in table order.

        Raises:
            ValueError: a split is not one of ``SPLITS``.
        """
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise InputError(f"split: must be one of {', '.join(SPLITS)}, got {unknown[0]!r}")
        segments = self.segments
        return segments.loc[segments["split"].isin(splits), "segment_id"].tolist()

    @cached_property
    def frames(self) -> pd.DataFrame:
        """``FRAMES`` table."""
        return read_table(self.root / "frames.parquet", FRAMES)

    @cached_property
    def boxes(self) -> pd.DataFrame:
        """``BOXES`` table: every ground-truth box."""
        return read_table(self.root / "boxes.parquet", BOXES)

    @cached_property
    def tracks(self) -> pd.DataFrame:
        """``TRACKS`` table, summarised from the boxes."""
        return summarize_tracks(self.boxes)

    def points_path(self, segment_id: str) -> Path:
        return self.root / "points" / f"{segment_id}.parquet"

    def points(self, segment_id: str, frame_index: int) -> np.ndarray:
        """The points of one frame.

        Returns:
            ``(N, 4)`` float32 ``x, y, z, intensity`` in the vehicle frame.

        Raises:
            DataError: the segment has no points file, or it is unreadable.
            KeyError: the segment holds no such frame.
        """
        f = self.frames
        if not ((f["segment_id"] == segment_id) & (f["frame_index"] == int(frame_index))).any():
            raise InputKeyError(f"{self.root}: no frame {frame_index} in segment {segment_id!r}")
        table = read_table(self.points_path(segment_id), POINTS, frame_index=int(frame_index))
        return table[["x", "y", "z", "intensity"]].to_numpy(dtype=np.float32)

    def segment_points(self, segment_id: str) -> tuple[np.ndarray, np.ndarray]:
        """All points of a segment at once, grouped by frame.

        Returns:
            ``(points, offsets)``: ``(M, 4)`` float32 ``x, y, z, intensity``, and ``(T + 1,)``
            int64 offsets such that frame ``f`` (``f``-th row of the segment in ``frames``)
            holds ``points[offsets[f]:offsets[f + 1]]``.
        """
        table = read_table(self.points_path(segment_id), POINTS)
        frame_index = table["frame_index"].to_numpy()
        order = np.argsort(frame_index, kind="stable")
        wanted = np.sort(
            self.frames.loc[self.frames["segment_id"] == segment_id, "frame_index"].to_numpy()
        )
        sorted_index = frame_index[order]
        bounds = np.searchsorted(sorted_index, wanted, side="left")
        end = np.searchsorted(sorted_index, wanted[-1], side="right") if len(wanted) else 0
        offsets = np.append(bounds, end).astype(np.int64)
        pts = table[["x", "y", "z", "intensity"]].to_numpy(dtype=np.float32)[order]
        return pts, offsets

    def frame_boxes(self, segment_id: str, frame_index: int) -> pd.DataFrame:
        """Ground-truth boxes of one frame."""
        b = self.boxes
        return b[(b["segment_id"] == segment_id) & (b["frame_index"] == frame_index)]

    def box_array(self, boxes: pd.DataFrame | None = None) -> np.ndarray:
        """``(N, 7)`` float64 boxes (``BOX_COLUMNS``) of a table, by default all boxes."""
        return (self.boxes if boxes is None else boxes)[BOX_COLUMNS].to_numpy(np.float64)


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
        }
        (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
