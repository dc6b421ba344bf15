"""A pool folder: the pool's detections, features and ground truth in parts of whole
segments (the layout: ``rem_core.pool``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.errors import InputError
from rem_core.files import publish_file, publishing
from rem_core.schema import BOX_COLUMNS

__all__ = [
    "DETECTION_COLUMNS",
    "GT_COLUMNS",
    "TRACK_COLUMN",
    "Pool",
    "PoolPart",
    "parts_from",
    "write_pool",
]

POOL_FORMAT, POOL_VERSION = "rem-pool", 1
DETECTION_COLUMNS = ["segment_id", "frame_index", *BOX_COLUMNS, "score"]
#: Optional: each detection's predicted track (null for an untracked one), for ranking a
#: detection by its track's mean rareness.
TRACK_COLUMN = "track_id"
GT_COLUMNS = ["segment_id", "frame_index", "track_id", *BOX_COLUMNS]

#: One part: its detections (``DETECTION_COLUMNS``), their ``(N, C)`` features and the
#: ground truth of the same segments (``GT_COLUMNS``).
PoolPart = tuple[pd.DataFrame, np.ndarray, pd.DataFrame]


@dataclass(frozen=True)
class Pool:
    """An opened pool folder (see the module docstring)."""

    folder: Path
    features: int
    parts: tuple[dict[str, int], ...]
    tracked: bool = False

    @classmethod
    def open(cls, folder: str | Path) -> Pool:
        """Read ``folder/pool.json``.

        Raises:
            ValueError: naming the file and field, when it is not a pool folder.
        """
        folder = Path(folder)
        path = folder / "pool.json"
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: not found; is {folder} a pool folder?") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not JSON ({exc})") from None
        if meta.get("format") != POOL_FORMAT or meta.get("version") != POOL_VERSION:
            raise InputError(
                f"{path}: format {meta.get('format')!r} version "
                f"{meta.get('version')!r}; expected {POOL_FORMAT!r} {POOL_VERSION}"
            )
        parts = meta.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InputError(f"{path}: field 'parts' must be a non-empty list")
        for i, part in enumerate(parts):
            for field in ("detections", "gt", "tracks", "segments"):
                if not isinstance(part.get(field), int) or part[field] < 0:
                    raise InputError(f"{path}: parts[{i}].{field} must be a count >= 0")
        if not isinstance(meta.get("features"), int) or meta["features"] < 1:
            raise InputError(f"{path}: field 'features' must be an int >= 1")
        return cls(folder, meta["features"], tuple(parts), bool(meta.get("tracked", False)))

    @property
    def detections(self) -> int:
        return sum(p["detections"] for p in self.parts)

    @property
    def tracks(self) -> int:
        return sum(p["tracks"] for p in self.parts)

    @property
    def offsets(self) -> np.ndarray:
        """The global row of each part's first detection (parts in order)."""
        return np.concatenate([[0], np.cumsum([p["detections"] for p in self.parts])[:-1]])

    def read(self, p: int, *, features: bool = True) -> tuple[pd.DataFrame, np.ndarray | None]:
        """Part ``p``'s detections (with ``track_id`` when the pool is tracked) and
        (``features``) their ``(N, C)`` float32 features."""
        path = self.folder / f"part-{p:05d}.parquet"
        columns = DETECTION_COLUMNS + [TRACK_COLUMN] * self.tracked + ["features"] * features
        table = pq.read_table(path, columns=columns)
        if table.num_rows != self.parts[p]["detections"]:
            raise InputError(
                f"{path}: {table.num_rows} rows; pool.json says {self.parts[p]['detections']}"
            )
        feats = None
        if features:
            flat = table.column("features").combine_chunks().flatten().to_numpy()
            feats = flat.reshape(table.num_rows, self.features)
            table = table.drop_columns(["features"])
        return table.to_pandas(), feats

    def read_gt(self, p: int) -> pd.DataFrame:
        """Part ``p``'s ground truth."""
        return pq.read_table(self.folder / f"gt-{p:05d}.parquet", columns=GT_COLUMNS).to_pandas()


def write_pool(
    folder: str | Path,
    make_part: Callable[[int], PoolPart],
    parts: int,
    *,
    client: Any | None = None,
) -> Pool:
    """Write a pool folder whole: part ``p`` is ``make_part(p)``, built and written by a
    worker when there is a ``client`` (the folder must then be on a file system the workers
    share), in turn here otherwise.

    Raises:
        ValueError: naming the part and column, when a part lacks a column, its features do
            not match its rows or are not finite, or a segment lies in two parts.
    """
    folder = Path(folder)
    with publishing(folder) as tmp:
        if client is None:
            infos = [_write_part(make_part, p, tmp) for p in range(parts)]
        else:
            futures = [
                client.submit(_write_part, make_part, p, tmp, pure=False) for p in range(parts)
            ]
            infos = client.gather(futures)
        dims = {info.pop("features") for info in infos if info["detections"]}
        tracked = {info.pop("tracked") for info in infos}
        if len(tracked) > 1:
            raise InputError(f"{folder}: some parts' detections have a track_id, some not")
        if len(dims) > 1:
            raise InputError(f"{folder}: parts have features of widths {sorted(dims)}")
        owner: dict[str, int] = {}
        for p, info in enumerate(infos):
            for segment in info.pop("segment_ids"):
                if owner.setdefault(segment, p) != p:
                    raise InputError(
                        f"{folder}: segment {segment!r} lies in parts "
                        f"{owner[segment]} and {p}; a part holds whole segments"
                    )
        meta = {
            "format": POOL_FORMAT,
            "version": POOL_VERSION,
            "features": dims.pop() if dims else 1,
            "tracked": tracked.pop(),
            "parts": infos,
        }
        (tmp / "pool.json").write_text(json.dumps(meta, indent=1))
    return Pool.open(folder)


def _write_part(make_part: Callable[[int], PoolPart], p: int, folder: Path) -> dict[str, Any]:
    det, features, gt = make_part(p)
    where = f"pool part {p}"
    for name, table, columns in (("detections", det, DETECTION_COLUMNS), ("gt", gt, GT_COLUMNS)):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InputError(f"{where}: {name} lack the columns {missing}")
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) != len(det):
        raise InputError(
            f"{where}: features of shape {features.shape} for {len(det)} detections; one row each"
        )
    if not np.isfinite(features).all():
        raise InputError(
            f"{where}: {int((~np.isfinite(features)).any(1).sum())} detections "
            "have features that are not finite"
        )
    tracked = TRACK_COLUMN in det.columns
    columns = DETECTION_COLUMNS + [TRACK_COLUMN] * tracked
    table = pa.Table.from_pandas(det[columns], preserve_index=False)
    flat = pa.array(features.reshape(-1), pa.float32())
    table = table.append_column(
        "features", pa.FixedSizeListArray.from_arrays(flat, features.shape[1])
    )
    for name, t in (
        (f"part-{p:05d}.parquet", table),
        (f"gt-{p:05d}.parquet", pa.Table.from_pandas(gt[GT_COLUMNS], preserve_index=False)),
    ):
        publish_file(
            folder / name, lambda tmp, t=t: pq.write_table(t, tmp, compression="zstd"), force=True
        )
    segments = pd.unique(pd.concat([det["segment_id"], gt["segment_id"]])).tolist()
    return {
        "detections": len(det),
        "gt": len(gt),
        "tracks": int(len(gt[["segment_id", "track_id"]].drop_duplicates())),
        "segments": len(segments),
        "features": int(features.shape[1]),
        "tracked": tracked,
        "segment_ids": segments,
    }


def parts_from(tables: Iterable[PoolPart]) -> Callable[[int], PoolPart]:
    """``make_part`` for :func:`write_pool` from parts already built here."""
    held = list(tables)
    return held.__getitem__
