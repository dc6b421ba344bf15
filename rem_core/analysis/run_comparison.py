"""Two rareness runs compared: how stable is the ranking of tracks?

Two density models on the same detections, or one density on two detector ensembles (before
and after a retraining, two seeds): how much do they agree on which tracks are rare, and
which tracks moved? Tracks are matched by ``(segment_id, track_id)``: detected tracks match
only between runs on the same detections (the tracker numbers its own tracks), ground-truth
tracks between any two runs on one data set.

>>> import pandas as pd
>>> a = pd.DataFrame({"segment_id": "s", "track_id": ["t1", "t2", "t3", "t4"],
...                   "rareness": [4.0, 3.0, 2.0, 1.0]})
>>> same = compare_runs(a, a, budget=2)
>>> same.spearman, same.top_jaccard
(1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from rem_core.errors import InputError
from rem_core.mining import resolve_budget

__all__ = ["RunComparison", "compare_runs"]

_KEYS = ["segment_id", "track_id"]


@dataclass(frozen=True)
class RunComparison:
    """How two runs rank the same tracks (:func:`compare_runs`).

    Attributes:
        n_tracks: tracks both runs rank (the others are left out, counted below).
        only_a: tracks only run A ranks; ``only_b`` likewise.
        spearman: Spearman's rank correlation of the two rarenesses over the shared tracks
            (1: the same order; NaN with fewer than 2 tracks).
        budget: ``K``, the top tracks compared (the budget resolved over the shared tracks).
        top_jaccard: ``|A_K & B_K| / |A_K | B_K|`` of the two runs' ``K`` rarest shared
            tracks (1: the same tracks would be mined first; NaN at ``K = 0``).
        tracks: one row per shared track: ``segment_id, track_id, rank_a, rank_b`` (1 =
            rarest), ``moved`` (``rank_b - rank_a``: positive when B finds it less rare),
            ``rareness_a, rareness_b, in_top_a, in_top_b``; sorted by ``|moved|``, largest
            first.
    """

    n_tracks: int
    only_a: int
    only_b: int
    spearman: float
    budget: int
    top_jaccard: float
    tracks: pd.DataFrame

    def moved_most(self, n: int = 20, *, in_top: bool = True) -> pd.DataFrame:
        """The ``n`` tracks whose rank changed most (not those that kept theirs); with
        ``in_top``, among the tracks in either run's top ``budget`` (those whose mining the
        change decides)."""
        tracks = self.tracks[self.tracks["moved"] != 0]
        if in_top:
            tracks = tracks[tracks["in_top_a"] | tracks["in_top_b"]]
        return tracks.head(n).reset_index(drop=True)


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, budget: int | str = "3%") -> RunComparison:
    """Compare two runs' track rankings.

    Args:
        a: run A's tracks: ``segment_id, track_id, rareness`` (``aggregate_tracks``'s
            columns; more are ignored).
        b: run B's, the same columns.
        budget: the top ``K`` tracks compared: a count or a share of the shared tracks
            (``"3%"``, the mining budget's form).

    Returns:
        A :class:`RunComparison`.
    """
    for name, table in (("a", a), ("b", b)):
        missing = [c for c in [*_KEYS, "rareness"] if c not in table.columns]
        if missing:
            raise InputError(f"run {name}: missing column(s) {', '.join(missing)}")
        if table.duplicated(_KEYS).any():
            raise InputError(f"run {name}: a track appears twice (one row per track)")
    left, right = (
        t.loc[np.isfinite(t["rareness"].to_numpy(np.float64)), [*_KEYS, "rareness"]].astype(
            {"track_id": str}
        )
        for t in (a, b)
    )
    both = left.merge(right, on=_KEYS, suffixes=("_a", "_b"))
    n = len(both)
    k = resolve_budget(budget, n)
    k = min(k, n)
    for side in ("a", "b"):
        # ties keep the first run's order: ranks are those of a stable sort
        order = np.argsort(-both[f"rareness_{side}"].to_numpy(), kind="stable")
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(1, n + 1)
        both[f"rank_{side}"] = rank
        both[f"in_top_{side}"] = rank <= k
    both["moved"] = both["rank_b"] - both["rank_a"]
    union = int((both["in_top_a"] | both["in_top_b"]).sum())
    jaccard = float((both["in_top_a"] & both["in_top_b"]).sum() / union) if union else np.nan
    rho = float(spearmanr(both["rareness_a"], both["rareness_b"]).statistic) if n >= 2 else np.nan
    columns = [*_KEYS, "rank_a", "rank_b", "moved", "rareness_a", "rareness_b"]
    both = both[[*columns, "in_top_a", "in_top_b"]]
    tracks = both.iloc[np.argsort(-np.abs(both["moved"].to_numpy()), kind="stable")]
    return RunComparison(
        n_tracks=n,
        only_a=len(left) - n,
        only_b=len(right) - n,
        spearman=rho,
        budget=k,
        top_jaccard=jaccard,
        tracks=tracks.reset_index(drop=True),
    )
