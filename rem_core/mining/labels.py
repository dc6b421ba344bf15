"""The label set of Algorithm 1 (step 5): the mined tracks, plus the auto-labelled tracks that
do not overlap them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rem_core.evaluation import match_frames
from rem_core.mining.algorithm import MiningResult, _require
from rem_core.schema import BOX_COLUMNS

__all__ = ["merge_labels"]


def merge_labels(result: MiningResult, gt: pd.DataFrame, autolabels: pd.DataFrame) -> pd.DataFrame:
    """The label set ``S`` (Algorithm 1, step 5): mined tracks plus the auto-labels left.

    An auto-labelled track is dropped when any of its boxes has BEV IoU > 0 with a box of a
    mined track in the same frame: the human label replaces it.

    Args:
        result: what :func:`select_tracks` mined.
        gt: the ground truth it mined from.
        autolabels: auto-labelled boxes ``S_a``: ``segment_id, frame_index, track_id`` and
            the box columns.

    Returns:
        The columns common to ``gt`` and ``autolabels`` plus ``score`` (1 for human
        labels, the auto-label's own score if it has one, else NaN) and ``source``
        (``"human"`` or ``"auto"``); the mined tracks' boxes first (mining order, then
        frame), then the kept auto-labels in input order.
    """
    _require(gt, ["segment_id", "frame_index", "track_id", *BOX_COLUMNS], "ground truth")
    _require(autolabels, ["segment_id", "frame_index", "track_id", *BOX_COLUMNS], "auto-labels")
    rank = pd.Series(
        result.tracks["rank"].to_numpy(),
        index=pd.MultiIndex.from_frame(result.tracks[["segment_id", "track_id"]]),
    )
    gt_rank = rank.reindex(pd.MultiIndex.from_frame(gt[["segment_id", "track_id"]])).to_numpy()
    human_rows = np.flatnonzero(~np.isnan(gt_rank))
    human_rows = human_rows[
        np.lexsort((gt["frame_index"].to_numpy()[human_rows], gt_rank[human_rows]))
    ]
    human = gt.iloc[human_rows]

    keep = np.ones(len(autolabels), bool)
    if len(human) and len(autolabels):
        touching = match_frames(autolabels, human, "best").match >= 0
        auto_track, _ = pd.factorize(
            pd.MultiIndex.from_frame(autolabels[["segment_id", "track_id"]])
        )
        keep = ~np.isin(auto_track, np.unique(auto_track[touching]))
    auto = autolabels[keep]

    columns = [c for c in gt.columns if c in autolabels.columns and c not in ("score", "source")]
    human_part = human[columns].assign(score=1.0, source="human")
    auto_score = auto["score"].to_numpy(np.float64) if "score" in auto else np.nan
    auto_part = auto[columns].assign(score=auto_score, source="auto")
    return pd.concat([human_part, auto_part], ignore_index=True)
