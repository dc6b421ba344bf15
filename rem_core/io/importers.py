"""Imports: real data sets written as data sets in the project's format.

Each importer reads one public format (see the readers of ``rem_core.io``) and writes a data
set folder through ``DatasetWriter``: atomically, never over an existing folder unless
``force``. Every imported segment gets the split given (default ``unlabelled``: what REM
mines). Where the source has no poses (KITTI tracking without its OXTS files, Waymo
``Objects`` files) frames get the identity pose, and the manifest says so; where it has no
point cloud for a frame the frame has no points, and its boxes keep the point counts the
source gives (or 0).

How each format's inputs are found and read as segments is ``rem_core.io.segments``; a data
set's own detections (``attach_detections``, ``DETECTIONS_FILE``, ...) are
``rem_core.io.attach``, importable from here as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rem_core.config import SPLITS
from rem_core.dataset import Dataset, DatasetWriter
from rem_core.errors import InputError
from rem_core.io.segments import _FORMATS, _expand
from rem_core.schema import DataError

__all__ = [
    "IMPORTERS",
    "import_av2",
    "import_data",
    "import_kitti_tracking",
    "import_waymo",
    "import_waymo_objects",
    "import_waymo_v2",
]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")


def import_kitti_tracking(
    root: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """KITTI tracking ``training/label_02`` + ``training/calib``: one segment per sequence,
    boxes in the LiDAR frame, no points (the scans are not part of the labels), identity
    poses; frames at 10 Hz, numbered as KITTI's, up to the last labelled one."""
    return import_data("kitti-tracking", [root], out, split=split, force=force)


def import_av2(
    log: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """An Argoverse 2 sensor log: one segment, a frame per annotated sweep, the sweeps that
    are present as points, the log's poses (nearest in time) as frame poses."""
    return import_data("av2", [log], out, split=split, force=force)


def import_waymo_objects(
    path: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """A Waymo ``metrics_pb2.Objects`` file as ground truth: a segment per context name, a
    frame per timestamp, the object ids as track ids; no points, identity poses."""
    return import_data("waymo-objects", [path], out, split=split, force=force)


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


def import_waymo_v2(
    root: str | Path, out: str | Path, *, split: str = "unlabelled", force: bool = False
) -> Dataset:
    """A Waymo v2 folder (``lidar_box/``, and if present ``lidar/`` + ``lidar_calibration/``
    [+ ``lidar_pose/`` + ``vehicle_pose/``], one ``<segment>.parquet`` per component): a
    segment per ``lidar_box`` file, with points where the ``lidar`` component exists."""
    return import_data("waymo-v2", [root], out, split=split, force=force)


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
    _check_import(fmt, split, source_share)
    read, name = _FORMATS[fmt]
    inputs = _distinct_inputs(fmt, paths)
    out = Path(out)
    old = None
    imports: list[dict] = []
    manifest: dict = {"source": name, "paths": [str(p) for p in inputs]}
    if into:
        old = Dataset.open(out)
        manifest, imports = _grown_manifest(old, inputs, out)
    with DatasetWriter(out, manifest, overwrite=force or into) as writer:
        before = set()
        if old is not None:
            writer.add_dataset(old)
            before = set(writer.segment_ids)
        _add_segments(writer, read, inputs, split, before, out)
        new = [s for s in writer.segment_ids if s not in before]
        drawn = _draw_source(writer, new, source_share, seed)
        imports.append(_import_entry(name, inputs, split, len(new), source_share, seed, drawn))
        writer.manifest["imports"] = imports
    return Dataset.open(out)


def _check_import(fmt: str, split: str, source_share: float | None) -> None:
    """Raise ``ValueError`` for an unknown format or split, or a source share out of range."""
    if fmt not in _FORMATS:
        raise InputError(f"import: unknown format {fmt!r}; choose one of {sorted(_FORMATS)}")
    _check_split(split)
    if source_share is not None and not 0 < source_share <= 1:
        raise InputError(f"source share: must be in (0, 1], got {source_share}")


def _distinct_inputs(fmt: str, paths: Sequence[str | Path]) -> list[Path]:
    """The inputs of ``fmt`` found in ``paths``; ``DataError`` for one given twice."""
    inputs = _expand(fmt, paths)
    seen = {}
    for path in inputs:
        key = str(path.resolve())
        if key in seen:
            raise DataError(f"{path}: given twice")
        seen[key] = path
    return inputs


def _grown_manifest(old: Dataset, inputs: list[Path], out: Path) -> tuple[dict, list[dict]]:
    """The manifest of ``old`` to grow, and its imports; ``DataError`` for an input in them."""
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
    return manifest, imports


def _add_segments(
    writer: DatasetWriter,
    read: Callable[[Path, str], Iterator],
    inputs: list[Path],
    split: str,
    before: set[str],
    out: Path,
) -> None:
    """Every segment of ``inputs`` written; ``DataError`` for a segment id met before."""
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


def _draw_source(
    writer: DatasetWriter, new: list[str], source_share: float | None, seed: int
) -> list[str]:
    """The share ``source_share`` of the ``new`` segments moved to ``source`` (sorted ids)."""
    drawn: list[str] = []
    if source_share is not None and new:
        k = max(1, round(source_share * len(new)))
        picks = np.random.default_rng(seed).choice(len(new), size=k, replace=False)
        drawn = sorted(new[i] for i in picks)
        for segment_id in drawn:
            writer.set_split(segment_id, "source")
    return drawn


def _import_entry(
    name: str,
    inputs: list[Path],
    split: str,
    segments: int,
    source_share: float | None,
    seed: int,
    drawn: list[str],
) -> dict:
    """The manifest's record of this import."""
    return {
        "source": name,
        "paths": [str(p.resolve()) for p in inputs],
        "split": split,
        "segments": segments,
        **(
            {"source_share": source_share, "seed": seed, "source_segments": drawn}
            if source_share is not None
            else {}
        ),  # fmt: skip
    }


#: ``rem import`` sources and their importers.
IMPORTERS: dict[str, Callable[..., Dataset]] = {
    "kitti-tracking": import_kitti_tracking,
    "av2": import_av2,
    "waymo-objects": import_waymo_objects,
    "waymo": import_waymo,
    "waymo-v2": import_waymo_v2,
}
