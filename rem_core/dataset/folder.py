"""Reading a data set folder (``Dataset``); the package's docstring gives its layout.

``rem_core.dataset.writer`` writes one. ``Dataset.content_key`` is what it holds, wherever it
is: the cache keys of the stages that read it are made of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rem_core.config import SPLITS
from rem_core.errors import InputError, InputKeyError
from rem_core.files import file_sha256
from rem_core.schema import (
    BOX_COLUMNS,
    BOXES,
    FRAMES,
    POINTS,
    SEGMENTS,
    TRACKS,
    DataError,
    conform,
    read_table,
)

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "Dataset",
    "summarize_tracks",
]

DATASET_FORMAT = "rem-dataset"
DATASET_VERSION = 1
MANIFEST = "dataset.json"
#: The tables whose bytes, with every segment's points, are what a data set holds.
_TABLE_FILES = ("segments.parquet", "frames.parquet", "boxes.parquet")


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
        if not isinstance(manifest, dict):
            raise DataError(
                f"{path}: not a data set manifest (a JSON object), got {manifest!r:.40}"
            )
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

    def content_key(self) -> str:
        """A 16-hex-digit key of what the data set holds: the hash of its tables' and its
        points' bytes, wherever the folder is and whatever made it.

        The hashes recorded when the folder was written (``content`` in the manifest, which is
        written last) stand for a file of the recorded size not modified since the manifest;
        any other file is read and hashed (once per process while it stays the same).
        """
        recorded = self.manifest.get("content", {})
        written = (self.root / MANIFEST).stat().st_mtime_ns
        digest = hashlib.sha256()
        for name, path in _content_files(self.root):
            stat = path.stat()
            known = recorded.get(name)
            same = (
                isinstance(known, list)
                and len(known) == 2
                and known[0] == stat.st_size
                and stat.st_mtime_ns <= written
            )
            digest.update(f"{name}:{known[1] if same else file_sha256(path)}\n".encode())
        return digest.hexdigest()[:16]

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
        # Files written frame by frame are in order already: then no gather of every point.
        in_order = bool(np.all(frame_index[1:] >= frame_index[:-1]))
        order = None if in_order else np.argsort(frame_index, kind="stable")
        wanted = np.sort(
            self.frames.loc[self.frames["segment_id"] == segment_id, "frame_index"].to_numpy()
        )
        sorted_index = frame_index if order is None else frame_index[order]
        bounds = np.searchsorted(sorted_index, wanted, side="left")
        end = np.searchsorted(sorted_index, wanted[-1], side="right") if len(wanted) else 0
        offsets = np.append(bounds, end).astype(np.int64)
        pts = table[["x", "y", "z", "intensity"]].to_numpy(dtype=np.float32)
        return (pts if order is None else pts[order]), offsets

    def frame_boxes(self, segment_id: str, frame_index: int) -> pd.DataFrame:
        """Ground-truth boxes of one frame."""
        b = self.boxes
        return b[(b["segment_id"] == segment_id) & (b["frame_index"] == frame_index)]

    def box_array(self, boxes: pd.DataFrame | None = None) -> np.ndarray:
        """``(N, 7)`` float64 boxes (``BOX_COLUMNS``) of a table, by default all boxes."""
        return (self.boxes if boxes is None else boxes)[BOX_COLUMNS].to_numpy(np.float64)


def _content_files(root: Path) -> list[tuple[str, Path]]:
    """The files that hold a data set's content, by their name relative to ``root``."""
    files = [(name, root / name) for name in _TABLE_FILES if (root / name).is_file()]
    points = sorted((root / "points").glob("*.parquet"))
    return files + [(f"points/{path.name}", path) for path in points]


def _content(root: Path) -> dict[str, list]:
    """``{name: [size, sha256]}`` of every content file under ``root``."""
    return {name: [path.stat().st_size, file_sha256(path)] for name, path in _content_files(root)}
