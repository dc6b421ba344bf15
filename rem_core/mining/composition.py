"""What a selection method mined: the composition of paper Table 1."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.config import VEHICLE_SUBTYPES, ScoreConfig
from rem_core.geometry import size_subset
from rem_core.mining.algorithm import MiningResult
from rem_core.mining.methods import MiningPool
from rem_core.mining.scores import easy_filter

__all__ = ["Composition", "composition_table", "describe_pool", "describe_selection"]


@dataclass(frozen=True)
class Composition:
    """The tracks a method mined under a budget, or a whole pool (paper Table 1).

    Attributes:
        method: the selection method (``"pool"`` for every track of the pool).
        budget: tracks asked for (the pool's track count for ``"pool"``).
        tracks: ground-truth tracks mined.
        boxes: their boxes (every frame of every mined track).
        large_share: share of the tracks that are Large (median largest dimension >= 7 m).
        irregular_share: share of the tracks of an irregular subtype (``VEHICLE_SUBTYPES``).
        label_noise_share: share of the boxes flagged as label noise.
        hard_share: share of the boxes that are hard: ``min_points`` points or fewer, or at
            ``max_distance_m`` or further (the complement of the filter of eqs. 10-11).
        mean_rareness: mean over the tracks of the track's mean ``-log p`` (its ground-truth
            boxes' features; paper section 4.1).
        checks: detections the labeller checked (hits and false positives; 0 for ``"pool"``).
        false_positives: checks that found no object.
    """

    method: str
    budget: int
    tracks: int
    boxes: int
    large_share: float
    irregular_share: float
    label_noise_share: float
    hard_share: float
    mean_rareness: float
    checks: int = 0
    false_positives: int = 0


def _share(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else float("nan")


def _describe(
    pool: MiningPool, rows: np.ndarray, method: str, budget: int, score: ScoreConfig
) -> dict:
    """Statistics of the ground-truth boxes ``rows`` of ``pool.gt`` (whole tracks)."""
    gt = pool.gt.iloc[rows]
    key = ["segment_id", "track_id"]
    per_box = gt[key + ["length", "width", "height", "subtype"]].assign(
        rareness=-np.asarray(pool.gt_log_prob, np.float64)[rows]
    )
    tracks = per_box.groupby(key, sort=False).agg(
        length=("length", "median"),
        width=("width", "median"),
        height=("height", "median"),
        subtype=("subtype", "first"),
        rareness=("rareness", "mean"),
    )
    large = size_subset(tracks["length"], tracks["width"], tracks["height"]) == "large"
    irregular = tracks["subtype"].map(VEHICLE_SUBTYPES).to_numpy() == "irregular"
    easy = easy_filter(gt["num_points"].to_numpy(), gt["distance"].to_numpy(), score)
    return dict(
        method=method,
        budget=budget,
        tracks=len(tracks),
        boxes=len(gt),
        large_share=_share(large),
        irregular_share=_share(irregular),
        label_noise_share=_share(gt["label_noise"].to_numpy(bool)),
        hard_share=_share(~easy),
        mean_rareness=float(tracks["rareness"].mean()) if len(tracks) else float("nan"),
    )


def _track_rows(gt: pd.DataFrame, tracks: pd.DataFrame) -> np.ndarray:
    """Row positions in ``gt`` of every box of ``tracks`` (``segment_id, track_id``)."""
    if not len(tracks):
        return np.zeros(0, np.int64)
    wanted = pd.MultiIndex.from_frame(tracks[["segment_id", "track_id"]])
    have = pd.MultiIndex.from_frame(gt[["segment_id", "track_id"]])
    return np.flatnonzero(have.isin(wanted))


def describe_selection(
    result: MiningResult, pool: MiningPool, method: str, score: ScoreConfig | None = None
) -> Composition:
    """The composition of the tracks ``result`` mined from ``pool`` with ``method``."""
    stats = _describe(
        pool, _track_rows(pool.gt, result.tracks), method, result.budget, score or ScoreConfig()
    )
    return Composition(**stats, checks=len(result.checked), false_positives=result.false_positives)


def describe_pool(pool: MiningPool, score: ScoreConfig | None = None) -> Composition:
    """The composition of every ground-truth track of the pool: the reference row."""
    rows = np.arange(len(pool.gt))
    return Composition(**_describe(pool, rows, "pool", pool.num_tracks, score or ScoreConfig()))


def composition_table(rows: Sequence[Composition]) -> pd.DataFrame:
    """One row per :class:`Composition`, its fields as columns, in the given order."""
    fields = [f.name for f in dataclasses.fields(Composition)]
    return pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=fields)
