"""``rem world``, ``rem info`` and ``rem import``: making, describing and importing data sets."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.cli.progress import progress_bar
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.geometry import size_subset
from rem_core.io import (
    attach_detections,
    check_features,
    detections_from_kitti,
    detections_from_waymo_objects,
    import_data,
    read_detections,
)
from rem_core.world import write_world

__all__ = [
    "cmd_import",
    "cmd_info",
    "cmd_world",
    "describe",
]


def cmd_world(args: argparse.Namespace) -> int:
    config = RemConfig.preset(args.preset).world
    config = replace(config, seed=args.seed)
    if args.segments is not None:
        config = replace(config, n_segments=args.segments)
    if args.frames is not None:
        config = replace(config, frames_per_segment=args.frames)
    bar, update = progress_bar(config.n_total_segments, "simulating", "segment")
    with bar:
        ds = write_world(
            config,
            args.out,
            progress=update,
            overwrite=args.force,
            workers=args.workers,
            client=args.client,
        )
    print(
        f"wrote {ds.root} ({len(ds.segments)} segments, {len(ds.frames)} frames, "
        f"{len(ds.boxes)} boxes)"
    )
    return 0


def describe(ds: Dataset) -> str:
    """The text of ``rem info``: segments, frames, points, objects and tracks of a data set."""
    seg, frames, boxes, tracks = ds.segments, ds.frames, ds.boxes, ds.tracks
    lines = [f"data set   {ds.root}", f"source     {ds.manifest.get('source', '?')}"]
    by_split = seg.groupby("split", sort=False).agg(
        segments=("segment_id", "size"), frames=("num_frames", "sum")
    )
    lines.append(
        f"segments   {len(seg)}  ("
        + ", ".join(f"{split} {row.segments}" for split, row in by_split.iterrows())
        + ")"
    )
    lines.append(f"frames     {len(frames)}")
    n = frames["num_points"].to_numpy()
    if len(n):
        lines.append(
            f"points     {n.sum():,} in all; per frame mean {n.mean():,.0f}, "
            f"min {n.min():,}, max {n.max():,}"
        )
    per_frame = boxes.groupby(["segment_id", "frame_index"]).size()
    lines.append(
        f"boxes      {len(boxes):,}; per frame mean {per_frame.mean():.1f}"
        if len(boxes)
        else "boxes      0"
    )
    lines.append(f"tracks     {len(tracks):,}")
    lines.append("")
    lines.append("objects by class and subtype (tracks / boxes / mean points per box):")
    table = (
        boxes.groupby(["class", "subtype"])
        .agg(boxes=("track_id", "size"), points=("num_points", "mean"))
        .join(tracks.groupby(["class", "subtype"]).size().rename("tracks"))
        .fillna(0)
    )
    for (cls, sub), row in table.sort_values("tracks", ascending=False).iterrows():
        lines.append(
            f"  {cls:<11} {sub:<16} {int(row.tracks):>6} / {int(row.boxes):>8} / {row.points:>7.1f}"
        )
    vehicles = tracks[tracks["class"] == "vehicle"]
    if len(vehicles):
        subset = pd.Series(size_subset(vehicles["length"], vehicles["width"], vehicles["height"]))
        shares = subset.value_counts(normalize=True)
        lines.append("")
        lines.append(
            f"vehicle tracks {len(vehicles):,}: large (>= 7 m) {shares.get('large', 0):.1%}, "
            f"regular [3, 7) m {shares.get('regular', 0):.1%}, small {shares.get('small', 0):.1%}"
        )
        noisy = int((boxes["label_noise"]).sum())
        lines.append(f"label-noise boxes {noisy:,} ({noisy / max(len(boxes), 1):.2%} of boxes)")
    if len(tracks):
        length = tracks["num_boxes"].to_numpy()
        q = np.percentile(length, [0, 25, 50, 75, 100])
        lines.append(
            "track length (frames): mean {:.1f}; min {:.0f}, q25 {:.0f}, median {:.0f}, "
            "q75 {:.0f}, max {:.0f}".format(length.mean(), *q)
        )
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    print(describe(Dataset.open(args.path)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if args.source == "detections":
        return _import_detections(args)
    if (args.out is None) == (args.into is None):
        raise InputError(
            f"rem import {args.source}: give --out (a data set folder to create) or --into "
            "(a data set to add to)"
        )
    if args.into is not None and args.force:
        raise InputError("rem import: --force replaces an --out folder; --into adds to one")
    share = None if args.source_share is None else _share(args.source_share, "--source-share")
    ds = import_data(
        args.source,
        args.path,
        args.out or args.into,
        into=args.into is not None,
        split=args.split,
        source_share=share,
        seed=args.seed,
        force=args.force,
    )
    entry = ds.manifest["imports"][-1]
    drawn = (
        f"; {len(entry['source_segments'])} drawn into the source split (seed {args.seed})"
        if share is not None
        else ""
    )
    print(
        f"imported {entry['segments']} segment{'s' if entry['segments'] != 1 else ''} from "
        f"{len(entry['paths'])} input{'s' if len(entry['paths']) != 1 else ''} into "
        f"{ds.root} as {args.split}{drawn}"
    )
    print(describe(ds))
    return 0


def _share(text: str, name: str) -> float:
    """``"10%"`` or ``"0.1"`` as a share in (0, 1]."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"{name}: expected a share such as 10% or 0.1, got {text!r}") from None
    if not 0 < value <= 1:
        raise InputError(f"{name}: must be in (0, 100%], got {text!r}")
    return value


def _import_detections(args: argparse.Namespace) -> int:
    if args.data is None:
        raise InputError("rem import detections: give --data, the data set they belong to")
    if len(args.path) != 1:
        raise InputError(f"rem import detections: give one PATH, got {len(args.path)}")
    path = Path(args.path[0])
    if args.format == "waymo-objects":
        table = detections_from_waymo_objects(path, Dataset.open(args.data))
    elif args.format == "kitti":
        if args.calib is None:
            raise InputError("rem import detections --format kitti: give --calib, the folder "
                             "of the sequences' calibration files")  # fmt: skip
        table = detections_from_kitti(path, args.calib)
    else:
        table, _ = read_detections(path)
    features = None
    if args.features is not None:
        features = np.load(args.features, allow_pickle=False)
        features = check_features(features, len(table), args.features)
    out = attach_detections(args.data, table, features, force=args.force)
    how = (
        f"their {features.shape[1]}-D features" if features is not None else "geometric descriptors"
    )
    print(
        f"{len(out):,} detections over {out.groupby(['segment_id', 'frame_index']).ngroups:,} "
        f"frames stored in {args.data}; REM mines them ({how}) from now on"
    )
    return 0
