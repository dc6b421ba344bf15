"""The tracks of a data set ranked by rareness, described for a reader (the Rarest tracks page)."""

from __future__ import annotations

import pandas as pd
from numpy.typing import ArrayLike

from rem_core.config import VEHICLE_SUBTYPES
from rem_core.dataset import Dataset
from rem_core.mining import aggregate_tracks, rareness_percentile

__all__ = ["track_table"]


def track_table(
    dataset: Dataset,
    detections: pd.DataFrame,
    log_prob: ArrayLike,
    *,
    gt: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per track, rarest first, described, with its rareness percentile.

    Args:
        dataset: the data set (its splits and, for ground truth, its track summaries).
        detections: the boxes to rank, with ``segment_id, track_id``: a detection run's
            detections (``num_points``, ``distance``, ``length``), or its ground-truth boxes
            when ``gt`` is that same table.
        log_prob: ``(N,)`` log p of each row of ``detections``.
        gt: pass the ground-truth table (``label_noise``, ``noise_kind``) to describe
            ground-truth tracks from the data set's own summaries.

    Returns:
        ``aggregate_tracks``'s columns (``segment_id, track_id, rareness, ...``), then
        ``class, subtype, length, max_points, min_distance, label_noise_boxes, noise_kinds``
        (the kinds of the track's label errors, ", "-joined; "" for detections),
        ``family`` (``VEHICLE_SUBTYPES``), ``split`` and ``percentile``.
    """
    keys = ["segment_id", "track_id"]
    table = aggregate_tracks(detections, log_prob)
    if gt is not None:
        info = dataset.tracks.set_index(keys)[
            ["class", "subtype", "length", "max_points", "min_distance", "label_noise_boxes"]
        ]
        table = table.join(info, on=keys)
        noisy = gt[gt["label_noise"].to_numpy(bool)]
        kinds = noisy.groupby(keys)["noise_kind"].agg(
            lambda k: ", ".join(sorted(set(k) - {""})) or "label noise"
        )
        table = table.join(kinds.rename("noise_kinds"), on=keys)
    else:
        extra = detections.groupby(keys).agg(
            max_points=("num_points", "max"),
            min_distance=("distance", "min"),
            length=("length", "median"),
        )
        table = table.join(extra, on=keys)
        table["class"], table["subtype"], table["label_noise_boxes"] = "vehicle", "", 0
        table["noise_kinds"] = ""
    table["noise_kinds"] = table["noise_kinds"].fillna("")
    table["family"] = table["subtype"].map(VEHICLE_SUBTYPES).fillna("")
    table["split"] = table["segment_id"].map(dataset.segments.set_index("segment_id")["split"])
    table["percentile"] = rareness_percentile(table["rareness"])
    return table
