"""Counts of a data set for its overview page."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.geometry import size_subset
from rem_core.viz.theme import SPLIT_ORDER

__all__ = ["DatasetSummary", "summarize_dataset"]


@dataclass(frozen=True)
class DatasetSummary:
    """Counts of a data set for its overview.

    Attributes:
        segments_by_split: one row per split (``SPLIT_ORDER`` first): ``split``,
            ``segments``, ``frames``, ``domains`` (comma-separated).
        tracks_by_class: one row per class: ``class``, ``tracks``, ``boxes``,
            ``label_noise_boxes``.
        n_segments: segments.
        n_frames: frames.
        n_boxes: ground-truth boxes.
        n_tracks: tracks.
        n_vehicle_tracks: tracks of class ``vehicle``.
        n_large_vehicle_tracks: vehicle tracks whose largest median dimension is >= 7 m
            (``rem_core.geometry.size_subset``).
        large_vehicle_share: ``n_large_vehicle_tracks / n_vehicle_tracks`` (NaN if none).
    """

    segments_by_split: pd.DataFrame
    tracks_by_class: pd.DataFrame
    n_segments: int
    n_frames: int
    n_boxes: int
    n_tracks: int
    n_vehicle_tracks: int
    n_large_vehicle_tracks: int
    large_vehicle_share: float


def summarize_dataset(
    segments: pd.DataFrame, frames: pd.DataFrame, tracks: pd.DataFrame
) -> DatasetSummary:
    """Counts of segments by split and of tracks by class, and the share of large vehicles.

    Args:
        segments: the ``SEGMENTS`` table.
        frames: the ``FRAMES`` table.
        tracks: the ``TRACKS`` table (median dimensions per track, metres).
    """
    frames_per_segment = frames.groupby("segment_id").size()
    seg = segments.assign(
        frames=segments["segment_id"].map(frames_per_segment).fillna(0).astype(int)
    )
    by_split = (
        seg.groupby("split", sort=False)
        .agg(
            segments=("segment_id", "size"),
            frames=("frames", "sum"),
            domains=("domain", lambda d: ", ".join(sorted(set(d)))),
        )
        .reset_index()
    )
    rank = {s: i for i, s in enumerate(SPLIT_ORDER)}
    by_split = (
        by_split.assign(_rank=by_split["split"].map(rank).fillna(len(rank)))
        .sort_values(["_rank", "split"])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )

    by_class = (
        tracks.groupby("class", sort=True)
        .agg(
            tracks=("track_id", "size"),
            boxes=("num_boxes", "sum"),
            label_noise_boxes=("label_noise_boxes", "sum"),
        )
        .reset_index()
        .sort_values("tracks", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    vehicles = tracks[tracks["class"] == "vehicle"]
    large = size_subset(vehicles["length"], vehicles["width"], vehicles["height"]) == "large"
    n_vehicle, n_large = len(vehicles), int(np.count_nonzero(large))
    return DatasetSummary(
        segments_by_split=by_split,
        tracks_by_class=by_class,
        n_segments=len(segments),
        n_frames=len(frames),
        n_boxes=int(tracks["num_boxes"].sum()) if len(tracks) else 0,
        n_tracks=len(tracks),
        n_vehicle_tracks=n_vehicle,
        n_large_vehicle_tracks=n_large,
        large_vehicle_share=n_large / n_vehicle if n_vehicle else float("nan"),
    )
