"""Imports: real data sets written as data sets in the project's format.

Each importer reads one public format (see the readers of ``rem_core.io``) and writes a data
set folder through ``DatasetWriter``: atomically, never over an existing folder unless
``force``. Every imported segment gets the split given (default ``unlabelled``: what REM
mines). Where the source has no poses (KITTI tracking without its OXTS files, Waymo
``Objects`` files) frames get the identity pose, and the manifest says so; where it has no
point cloud for a frame the frame has no points, and its boxes keep the point counts the
source gives (or 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.config.names import SPLITS
from rem_core.dataset import Dataset, DatasetWriter
from rem_core.schema import BOXES, DataError

__all__ = [
    "DETECTIONS_FILE",
    "DETECTION_FEATURES_FILE",
    "IMPORTERS",
    "attach_detections",
    "detections_from_kitti",
    "detections_from_waymo_objects",
    "import_av2",
    "import_data",
    "import_kitti_tracking",
    "import_waymo",
    "import_waymo_objects",
    "import_waymo_v2",
]

#: A data set's own detections (``rem import detections``), next to its tables.
DETECTIONS_FILE = "detections.parquet"

#: Their features (``rem import detections --features``), row ``i`` for detection ``i``.
DETECTION_FEATURES_FILE = "detection_features.npy"
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


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")


def import_kitti_tracking(
    root: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """KITTI tracking ``training/label_02`` + ``training/calib``: one segment per sequence,
    boxes in the LiDAR frame, no points (the scans are not part of the labels), identity
    poses; frames at 10 Hz, numbered as KITTI's, up to the last labelled one."""
    return import_data("kitti-tracking", [root], out, split=split, force=force)


def _kitti_segments(root: Path, split: str) -> Iterator:
    from rem_core.io.kitti import read_labels, sequence_length

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


def import_av2(
    log: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """An Argoverse 2 sensor log: one segment, a frame per annotated sweep, the sweeps that
    are present as points, the log's poses (nearest in time) as frame poses."""
    return import_data("av2", [log], out, split=split, force=force)


def _av2_segments(log: Path, split: str) -> Iterator:
    import pyarrow.feather as feather

    from rem_core.io.av2 import read_annotations, read_sweep

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


def import_waymo_objects(
    path: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """A Waymo ``metrics_pb2.Objects`` file as ground truth: a segment per context name, a
    frame per timestamp, the object ids as track ids; no points, identity poses."""
    return import_data("waymo-objects", [path], out, split=split, force=force)


def _waymo_objects_segments(path: Path, split: str) -> Iterator:
    from rem_core.io.waymo import read_objects

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


def import_waymo(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    split: str = "unlabelled",
    force: bool = False,
) -> Dataset:
    """Waymo v1 segment files (TFRecords of ``Frame``): a segment per context name, the laser
    labels as boxes, the frames' poses, and the lasers' first returns as points where the
    frame carries range images. Frames are read one at a time."""
    return import_data("waymo", list(paths), out, split=split, force=force)


def _waymo_segments(path: Path, split: str) -> Iterator:
    from rem_core.io.waymo import frame_boxes, frame_row, read_frames
    from rem_core.io.waymo_lidar import frame_points

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


def import_waymo_v2(
    root: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """A Waymo v2 folder (``lidar_box/``, and if present ``lidar/`` + ``lidar_calibration/``
    [+ ``lidar_pose/`` + ``vehicle_pose/``], one ``<segment>.parquet`` per component): a
    segment per ``lidar_box`` file, with points where the ``lidar`` component exists."""
    return import_data("waymo-v2", [root], out, split=split, force=force)


def _waymo_v2_segments(root: Path, split: str) -> Iterator:
    from rem_core.io.waymo_v2 import read_lidar_box, read_lidar_points

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


def import_data(
    fmt: str,
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    into: bool = False,
    split: str = "unlabelled",
    source_share: float | None = None,
    seed: int = 0,
    force: bool = False,
) -> Dataset:
    """Import any number of inputs of one format into a data set, new or growing.

    Args:
        fmt: a key of ``IMPORTERS``.
        paths: files, folders or glob patterns (``_expand``); every input found is read.
        out: the data set folder.
        into: add to the data set at ``out`` (its segments are kept as they are) instead
            of creating it. The folder is rewritten atomically: until the end, the old data
            set is whole.
        split: the split of the imported segments.
        source_share: if given, this share of the imported segments (drawn at random by
            segment with ``seed``, at least one) goes to the ``source`` split, the labelled
            pool the detector trains on, as the paper draws 10% of segments; the others get
            ``split``.
        seed: the draw's seed.
        force: replace an existing data set at ``out`` (not with ``into``).

    Raises:
        DataError: an input that is not one of ``fmt``, an input already imported into the
            data set, or a segment id already in it (both named).
        FileExistsError: ``out`` exists, without ``into`` or ``force``.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"import: unknown format {fmt!r}; choose one of {sorted(_FORMATS)}")
    _check_split(split)
    if source_share is not None and not 0 < source_share <= 1:
        raise ValueError(f"source share: must be in (0, 1], got {source_share}")
    read, name = _FORMATS[fmt]
    inputs = _expand(fmt, paths)
    seen = {}
    for path in inputs:
        key = str(path.resolve())
        if key in seen:
            raise DataError(f"{path}: given twice")
        seen[key] = path
    out = Path(out)
    old = None
    imports: list[dict] = []
    manifest: dict = {"source": name, "paths": [str(p) for p in inputs]}
    if into:
        old = Dataset.open(out)
        manifest = dict(old.manifest)
        manifest.pop("counts", None)
        imports = list(manifest.get("imports", []))
        done = {p for entry in imports for p in entry["paths"]}
        done.update(str(p) for p in manifest.get("paths", []))
        if manifest.get("path"):
            done.add(str(manifest["path"]))
        for path in inputs:
            if str(path) in done or str(path.resolve()) in done:
                raise DataError(f"{path}: already imported into {out}")
    with DatasetWriter(out, manifest, overwrite=force or into) as writer:
        before = set()
        if old is not None:
            writer.add_dataset(old)
            before = set(writer.segment_ids)
        read_from: dict[str, Path] = {}
        for path in inputs:
            for segment, frames, boxes, points in read(path, split):
                segment_id = str(segment["segment_id"].iloc[0])
                if segment_id in before:
                    raise DataError(
                        f"{path}: segment {segment_id!r} is already in {out}; it was imported "
                        "before (a log is imported once)"
                    )
                if segment_id in read_from:
                    raise DataError(
                        f"{path}: segment {segment_id!r} was read from {read_from[segment_id]} "
                        "already (segment ids must be unique in a data set)"
                    )
                read_from[segment_id] = path
                writer.add_segment(segment, frames, boxes, points)
        new = [s for s in writer.segment_ids if s not in before]
        drawn: list[str] = []
        if source_share is not None and new:
            k = max(1, round(source_share * len(new)))
            picks = np.random.default_rng(seed).choice(len(new), size=k, replace=False)
            drawn = sorted(new[i] for i in picks)
            for segment_id in drawn:
                writer.set_split(segment_id, "source")
        imports.append(
            {
                "source": name,
                "paths": [str(p.resolve()) for p in inputs],
                "split": split,
                "segments": len(new),
                **(
                    {"source_share": source_share, "seed": seed, "source_segments": drawn}
                    if source_share is not None
                    else {}
                ),  # fmt: skip
            }
        )
        writer.manifest["imports"] = imports
    return Dataset.open(out)


#: ``rem import`` sources and their importers.
IMPORTERS: dict[str, Callable[..., Dataset]] = {
    "kitti-tracking": import_kitti_tracking,
    "av2": import_av2,
    "waymo-objects": import_waymo_objects,
    "waymo": import_waymo,
    "waymo-v2": import_waymo_v2,
}


def detections_from_waymo_objects(path: str | Path, dataset: Dataset) -> pd.DataFrame:
    """Predictions in a Waymo ``Objects`` file, placed on the data set's frames by segment
    (context name) and timestamp; their scores kept."""
    from rem_core.io.waymo import read_objects

    preds = read_objects(path)
    frames = dataset.frames.set_index(["segment_id", "timestamp_micros"])["frame_index"]
    keys = pd.MultiIndex.from_frame(preds[["segment_id", "timestamp_micros"]])
    found = keys.isin(frames.index)
    if not found.all():
        seg, stamp = keys[int(np.flatnonzero(~found)[0])]
        raise DataError(f"{path}: no frame at {stamp} of segment {seg!r} in {dataset.root}")
    preds["frame_index"] = frames.reindex(keys).to_numpy()
    return preds.drop(columns=["timestamp_micros", "track_id"])


def detections_from_kitti(folder: str | Path, calib: str | Path) -> pd.DataFrame:
    """AB3DMOT detection files: ``folder`` holds one folder per class (or the files
    themselves), ``NNNN.txt`` per sequence; ``calib`` the sequences' calibration files."""
    from rem_core.io.kitti import read_detections

    folder, calib = Path(folder), Path(calib)
    files = sorted(folder.glob("*.txt")) or sorted(folder.glob("*/*.txt"))
    if not files:
        raise DataError(f"{folder}: no detection files (NNNN.txt)")
    parts = [read_detections(p, calib / p.name) for p in files if p.stat().st_size]
    return pd.concat(parts, ignore_index=True).drop(columns=["subtype"])


def attach_detections(
    root: str | Path,
    detections: pd.DataFrame,
    features: np.ndarray | None = None,
    *,
    force: bool = False,
) -> pd.DataFrame:
    """Store detections in a data set folder (``detections.parquet``), checked against its
    frames and with their points counted; the geometry pipeline mines them.

    Args:
        root: the data set folder.
        detections: ``DETECTIONS`` columns (``detection_id`` and ``track_id`` are redone).
        features: ``(N, C)`` features of the detector, row ``i`` for row ``i`` of
            ``detections`` (stored as ``detection_features.npy``; ``features.source =
            "imported"`` scores them). Without them, stale features of earlier detections
            are removed.
        force: replace detections the data set already has.

    Returns:
        The stored ``DETECTIONS`` table.

    Raises:
        FileExistsError: the data set already has detections and ``force`` is false.
        DataError: features that do not match the rows, or are not finite.
    """
    import tempfile

    from rem_core.io.detections import check_features, read_detections
    from rem_core.io.files import publish_file

    dataset = Dataset.open(root)
    target = Path(root) / DETECTIONS_FILE
    if target.exists() and not force:
        raise FileExistsError(f"{target}: exists; pass --force (force=True) to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "detections.parquet"
        table = detections.drop(columns=["detection_id", "track_id"], errors="ignore")
        table.to_parquet(staged)
        out, _ = read_detections(staged, dataset=dataset)
    feats = None if features is None else check_features(features, len(out), "features")
    # Features first: a crash between the two writes leaves a row count the pipeline
    # refuses (load checks it), never detections paired with another run's features.
    feature_file = Path(root) / DETECTION_FEATURES_FILE
    if feats is not None:
        publish_file(feature_file, lambda tmp: _save_npy(tmp, feats), force=True)
    publish_file(target, out.to_parquet, force=force)
    if feats is None:
        feature_file.unlink(missing_ok=True)
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save(path) would append ".npy" to the temporary name
        np.save(f, array)
