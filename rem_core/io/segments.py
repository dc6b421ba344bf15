"""Each import format's inputs, found and read as segments of a data set.

For every format of ``rem_core.io.importers``: how a file or folder given is recognised as
one input or searched for inputs (``_expand``), and how one input is read as segments, each
a ``(segment row, FRAMES rows, BOXES rows, per-frame points)`` tuple as
``DatasetWriter.add_segment`` takes it. Points are ``(N, 4)`` float32 ``x, y, z,
intensity`` in the vehicle frame, metres.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.io.av2 import read_annotations, read_sweep
from rem_core.io.kitti import read_labels, sequence_length
from rem_core.io.waymo import frame_boxes, frame_row, read_frames, read_objects
from rem_core.io.waymo_lidar import frame_points
from rem_core.io.waymo_v2 import read_lidar_box, read_lidar_points
from rem_core.schema import BOXES, DataError

_EMPTY = np.zeros((0, 4), np.float32)


def _frames(
    segment_id: str,
    stamps: np.ndarray,
    poses: np.ndarray | None = None,
    counts: Sequence[int] | None = None,
) -> pd.DataFrame:
    """FRAMES rows: timestamps (micros), poses ``(F, 7)`` as ``x, y, z, qw, qx, qy, qz``."""
    n = len(stamps)
    poses = np.tile([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (n, 1)) if poses is None else poses
    return pd.DataFrame(
        {
            "segment_id": segment_id,
            "frame_index": np.arange(n, dtype=np.int32),
            "timestamp_micros": np.asarray(stamps, np.int64),
            **{
                name: poses[:, k]
                for k, name in enumerate(
                    ["pose_x", "pose_y", "pose_z", "pose_qw", "pose_qx", "pose_qy", "pose_qz"]
                )
            },
            "num_points": np.zeros(n, np.int32) if counts is None else np.asarray(counts),
        }
    )


def _boxes(table: pd.DataFrame) -> pd.DataFrame:
    """Fill the ``BOXES`` columns a reader's table lacks with their neutral values."""
    out = table.copy()
    defaults = {
        "subtype": out["class"] if "class" in out else "",
        "speed_x": np.nan,
        "speed_y": np.nan,
        "num_points": 0,
        "label_noise": False,
        "noise_kind": "",
    }
    for column, value in defaults.items():
        if column not in out:
            out[column] = value
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    return out[BOXES.names]


def _segment(segment_id: str, split: str, domain: str, n_frames: int, hz: float) -> pd.DataFrame:
    return pd.DataFrame(
        [{"segment_id": segment_id, "split": split, "domain": domain,
          "num_frames": n_frames, "frame_rate_hz": hz}]
    )  # fmt: skip


def _kitti_segments(root: Path, split: str) -> Iterator:

    labels = root / "training" / "label_02" if (root / "training").is_dir() else root / "label_02"
    calib = labels.parent / "calib"
    paths = sorted(labels.glob("*.txt"))
    if not paths:
        raise DataError(f"{labels}: no label files (NNNN.txt)")
    for path in paths:
        boxes = read_labels(path, calib / path.name)
        n = sequence_length(path)
        frames = _frames(path.stem, np.arange(n) * 100_000)
        yield (_segment(path.stem, split, "kitti", n, 10.0), frames, _boxes(boxes), [_EMPTY] * n)


def _av2_segments(log: Path, split: str) -> Iterator:
    import pyarrow.feather as feather

    boxes = read_annotations(log / "annotations.feather")
    stamps = np.sort(boxes["timestamp_ns"].unique())
    poses = None
    pose_path = log / "city_SE3_egovehicle.feather"
    if pose_path.is_file():
        table = feather.read_table(pose_path).to_pandas().sort_values("timestamp_ns")
        k = np.clip(np.searchsorted(table["timestamp_ns"], stamps), 0, len(table) - 1)
        cols = ["tx_m", "ty_m", "tz_m", "qw", "qx", "qy", "qz"]
        poses = table[cols].to_numpy(np.float64)[k]
    sweeps = log / "sensors" / "lidar"
    points = [
        read_sweep(sweeps / f"{t}.feather") if (sweeps / f"{t}.feather").is_file() else _EMPTY
        for t in stamps
    ]
    segment_id = log.name
    frames = _frames(segment_id, stamps // 1000, poses, [len(p) for p in points])
    yield (_segment(segment_id, split, "av2", len(stamps), 10.0), frames, _boxes(boxes), points)


def _waymo_objects_segments(path: Path, split: str) -> Iterator:

    objects = read_objects(path)
    for segment_id, rows in objects.groupby("segment_id", sort=True):
        stamps = np.sort(rows["timestamp_micros"].unique())
        rows = rows.assign(
            frame_index=np.searchsorted(stamps, rows["timestamp_micros"]).astype(np.int32)
        )
        yield (
            _segment(segment_id, split, "waymo", len(stamps), 10.0),
            _frames(segment_id, stamps),
            _boxes(rows.sort_values("frame_index", kind="stable")),
            [_EMPTY] * len(stamps),
        )


def _waymo_segments(path: Path, split: str) -> Iterator:

    rows, boxes, points = [], [], []
    for index, frame in enumerate(read_frames(path)):
        rows.append(frame_row(frame, index))
        boxes.append(frame_boxes(frame, index))
        has_images = any(laser.ri_return1.range_image_compressed for laser in frame.lasers)
        points.append(frame_points(frame) if has_images else _EMPTY)
    if not rows:
        raise DataError(f"{path}: holds no frames")
    segment_id = rows[0]["segment_id"]
    frames = pd.DataFrame(rows).assign(num_points=[len(p) for p in points])
    yield (
        _segment(segment_id, split, "waymo", len(rows), 10.0),
        frames,
        pd.concat(boxes, ignore_index=True),
        points,
    )


def _waymo_v2_segments(root: Path, split: str) -> Iterator:

    files = sorted((root / "lidar_box").glob("*.parquet"))
    if not files:
        raise DataError(f"{root / 'lidar_box'}: no .parquet files")
    for path in files:
        boxes = read_lidar_box(path)
        raw = pd.read_parquet(path, columns=["key.frame_timestamp_micros"])
        stamps = np.sort(raw["key.frame_timestamp_micros"].unique())
        segment_id = str(boxes["segment_id"].iloc[0]) if len(boxes) else path.stem
        points = {int(t): [] for t in stamps}
        lidar = root / "lidar" / path.name
        if lidar.is_file():
            pose = root / "lidar_pose" / path.name
            vehicle = root / "vehicle_pose" / path.name
            both = pose.is_file() and vehicle.is_file()
            for _, stamp, _, pts in read_lidar_points(
                lidar,
                root / "lidar_calibration" / path.name,
                pose if both else None,
                vehicle if both else None,
            ):
                points.setdefault(stamp, []).append(pts)
        per_frame = [np.concatenate(points[int(t)]) if points[int(t)] else _EMPTY
                     for t in stamps]  # fmt: skip
        frames = _frames(segment_id, stamps, counts=[len(p) for p in per_frame])
        yield (_segment(segment_id, split, "waymo", len(stamps), 10.0), frames, boxes, per_frame)


#: Per format: what reads one input (a file or folder) as segments, its name for
#: manifests, and how a folder given for it is searched for inputs (``_expand``).
_FORMATS: dict[str, tuple[Callable[[Path, str], Iterator], str]] = {
    "kitti-tracking": (_kitti_segments, "kitti tracking"),
    "av2": (_av2_segments, "argoverse 2"),
    "waymo-objects": (_waymo_objects_segments, "waymo objects"),
    "waymo": (_waymo_segments, "waymo v1"),
    "waymo-v2": (_waymo_v2_segments, "waymo v2"),
}


#: Names of the files a folder given for a file format is searched for.
_FILE_PATTERNS = {"waymo": "*.tfrecord*", "waymo-objects": "*.bin"}


def _is_input(fmt: str, path: Path, inside: bool = False) -> bool:
    """Whether ``path`` is one input of ``fmt`` (``inside``: found in a folder given)."""
    if fmt == "av2":
        return (path / "annotations.feather").is_file()
    if fmt == "waymo-v2":
        return (path / "lidar_box").is_dir()
    if fmt == "kitti-tracking":
        return (path / "training" / "label_02").is_dir() or (path / "label_02").is_dir()
    return path.is_file() and (not inside or path.match(_FILE_PATTERNS[fmt]))


def _expand(fmt: str, paths: Sequence[str | Path]) -> list[Path]:
    """The inputs named by ``paths``: each an input of ``fmt``, a folder holding inputs (one
    level down: AV2 logs, Waymo v2 or KITTI roots; Waymo ``.tfrecord`` and ``.bin`` files),
    or a glob pattern."""
    import glob

    found: list[Path] = []
    for raw in paths:
        text = str(raw)
        pattern = any(c in text for c in "*?[")
        matches = [Path(m) for m in sorted(glob.glob(text))] if pattern else [Path(raw)]
        if not matches:
            raise DataError(f"{text}: matches no file or folder")
        for path in matches:
            if not path.exists():
                raise DataError(f"{path}: no such file or folder")
            if _is_input(fmt, path):
                found.append(path)
                continue
            inner = (
                sorted(p for p in path.iterdir() if _is_input(fmt, p, inside=True))
                if path.is_dir()
                else []
            )
            if not inner:
                raise DataError(f"{path}: not a {fmt} input, and holds none")
            found.extend(inner)
    return found
