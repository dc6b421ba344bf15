"""The mined track list and the merged label set, as files for labelling tools.

``mined_boxes`` lays the mined tracks out one row per box (every frame of every track);
``write_mined`` writes that table as CSV, Parquet or JSON (format from the suffix; JSON nests
the boxes under their track), ``write_label_set`` the merged label set ``S`` of Algorithm 1
as Waymo ``metrics_pb2.Objects`` (``.bin``). Every write is atomic and never replaces an
existing file unless asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.errors import InputError
from rem_core.files import publish_file
from rem_core.io import write_objects
from rem_core.mining.algorithm import MiningResult
from rem_core.mining.methods import MiningPool
from rem_core.schema import BOX_COLUMNS

__all__ = [
    "MINED_COLUMNS",
    "MINED_FORMATS",
    "mined_boxes",
    "mined_tracks",
    "read_mined",
    "write_label_set",
    "write_mined",
]

#: Columns of the mined track list, one row per box.
MINED_COLUMNS = [
    "method",
    "budget",
    "rank",
    "segment_id",
    "track_id",
    "class",
    "subtype",
    "frame_index",
    *BOX_COLUMNS,
    "num_points",
    "label_noise",
    "rareness",
    "track_rareness",
]

#: Suffixes ``write_mined`` understands.
MINED_FORMATS = (".csv", ".parquet", ".json")


def mined_boxes(result: MiningResult, pool: MiningPool, method: str) -> pd.DataFrame:
    """Every box of every mined track, ordered by rank then frame (``MINED_COLUMNS``).

    ``rareness`` is the method's value of the detection whose check found the track;
    ``track_rareness`` the track's mean ``-log p`` over its ground-truth boxes.
    """
    tracks = result.tracks[["rank", "segment_id", "track_id", "rareness"]]
    gt = pool.gt.assign(_neg_log_prob=-np.asarray(pool.gt_log_prob, np.float64))
    track_rareness = gt.groupby(["segment_id", "track_id"])["_neg_log_prob"].mean()
    table = tracks.merge(gt, on=["segment_id", "track_id"], how="inner", validate="1:m")
    table["track_rareness"] = track_rareness.reindex(
        pd.MultiIndex.from_frame(table[["segment_id", "track_id"]])
    ).to_numpy()
    table["method"] = method
    table["budget"] = result.budget
    table = table.sort_values(["rank", "frame_index"], kind="stable").reset_index(drop=True)
    return table[MINED_COLUMNS]


def mined_tracks(boxes: pd.DataFrame) -> pd.DataFrame:
    """One row per mined track of a ``mined_boxes`` table, in rank order.

    Columns: ``rank, segment_id, track_id, subtype, frames`` (boxes), ``first_frame``,
    ``length`` (median, m), ``label_noise`` (boxes flagged), ``rareness``, ``track_rareness``.
    """
    return (
        boxes.groupby(["rank", "segment_id", "track_id"], sort=True)
        .agg(
            subtype=("subtype", "first"),
            frames=("frame_index", "size"),
            first_frame=("frame_index", "min"),
            length=("length", "median"),
            label_noise=("label_noise", "sum"),
            rareness=("rareness", "first"),
            track_rareness=("track_rareness", "first"),
        )
        .reset_index()
    )


def _json_document(table: pd.DataFrame) -> dict:
    per_box = ["frame_index", *BOX_COLUMNS, "num_points", "label_noise"]
    tracks = []
    for (rank, seg, track), rows in table.groupby(["rank", "segment_id", "track_id"], sort=True):
        first = rows.iloc[0]
        tracks.append(
            {
                "rank": int(rank),
                "segment_id": seg,
                "track_id": track,
                "class": first["class"],
                "subtype": first["subtype"],
                "rareness": float(first["rareness"]),
                "track_rareness": float(first["track_rareness"]),
                "frames": [int(f) for f in rows["frame_index"]],
                "boxes": json.loads(rows[per_box].to_json(orient="records")),
            }
        )
    method = str(table["method"].iloc[0]) if len(table) else None
    budget = int(table["budget"].iloc[0]) if len(table) else None
    return {"method": method, "budget": budget, "tracks": tracks}


def write_mined(table: pd.DataFrame, path: str | Path, *, force: bool = False) -> Path:
    """Write a ``mined_boxes`` table to ``path``; the suffix picks the format.

    ``.csv`` and ``.parquet``: one row per box. ``.json``: ``{"method", "budget", "tracks":
    [{"rank", "segment_id", "track_id", "class", "subtype", "rareness", "track_rareness",
    "frames", "boxes": [...]}]}``.

    Raises:
        ValueError: an unknown suffix, or a table without the ``MINED_COLUMNS``.
        FileExistsError: ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MINED_FORMATS:
        raise InputError(
            f"{path}: unknown format {path.suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(MINED_FORMATS)}"
        )
    missing = [c for c in MINED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"mined table: missing columns {missing} (see mined_boxes)")
    table = table[MINED_COLUMNS]

    def write(tmp: Path) -> None:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        elif suffix == ".parquet":
            pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)
        else:
            tmp.write_text(json.dumps(_json_document(table), indent=1))

    return publish_file(path, write, force=force)


def read_mined(path: str | Path) -> pd.DataFrame:
    """Read a file written by :func:`write_mined` back into its flat table (``MINED_COLUMNS``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path, dtype={"segment_id": str, "track_id": str, "subtype": str})
    elif suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix == ".json":
        doc = json.loads(path.read_text())
        rows = [
            {
                "method": doc["method"],
                "budget": doc["budget"],
                **{k: track[k] for k in ("rank", "segment_id", "track_id", "class", "subtype")},
                **box,
                "rareness": track["rareness"],
                "track_rareness": track["track_rareness"],
            }
            for track in doc["tracks"]
            for box in track["boxes"]
        ]
        table = pd.DataFrame(rows, columns=MINED_COLUMNS)
    else:
        raise InputError(f"{path}: unknown format; use one of {', '.join(MINED_FORMATS)}")
    missing = [c for c in MINED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return table[MINED_COLUMNS]


def write_label_set(
    labels: pd.DataFrame, frames: pd.DataFrame, path: str | Path, *, force: bool = False
) -> Path:
    """Write the merged label set ``S`` (``merge_labels``) as Waymo ``metrics_pb2.Objects``.

    Human-labelled boxes get score 1; auto-labels keep their auto-labeller score.

    Raises:
        ValueError: ``path`` does not end in ``.bin``.
    """
    path = Path(path)
    if path.suffix.lower() != ".bin":
        raise InputError(f"{path}: a Waymo Objects file must end in .bin")
    boxes = labels.copy()
    if "score" not in boxes:
        boxes["score"] = 1.0
    if "source" in boxes:
        boxes["score"] = np.where(boxes["source"] == "human", 1.0, boxes["score"])
    return write_objects(boxes, frames, path, force=force)
