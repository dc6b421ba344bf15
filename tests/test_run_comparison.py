"""Two rareness runs compared (``rem_core.analysis.compare_runs``) and ``rem compare-runs``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rem_core.analysis import compare_runs
from rem_core.errors import InputError


def run(rareness: list[float], tracks: list[str] | None = None) -> pd.DataFrame:
    tracks = tracks or [f"t{i}" for i in range(len(rareness))]
    return pd.DataFrame({"segment_id": "s", "track_id": tracks, "rareness": rareness})


def test_a_run_against_itself_agrees_fully():
    a = run(list(np.random.default_rng(0).normal(size=50)))
    same = compare_runs(a, a, budget=5)
    assert same.spearman == pytest.approx(1.0)
    assert (same.top_jaccard, same.budget, same.n_tracks) == (1.0, 5, 50)
    assert (same.tracks["moved"] == 0).all() and same.tracks["in_top_a"].sum() == 5
    assert same.moved_most().empty


def test_reversed_rankings_and_overlap_of_the_tops():
    a = run([10.0, 9, 8, 7, 6, 5])
    b = run([5.0, 6, 7, 8, 9, 10])
    result = compare_runs(a, b, budget=3)
    assert result.spearman == pytest.approx(-1.0) and result.top_jaccard == 0.0
    # swapping the 3rd and 4th rarest: the tops share 2 of 4 tracks
    c = run([10.0, 9, 7, 8, 6, 5])
    result = compare_runs(a, c, budget=3)
    assert result.top_jaccard == pytest.approx(2 / 4)
    moved = result.moved_most(10)
    assert set(moved["track_id"]) == {"t2", "t3"} and set(moved["moved"]) == {1, -1}
    assert moved[["rank_a", "rank_b"]].values.tolist() in ([[3, 4], [4, 3]], [[4, 3], [3, 4]])


def test_only_shared_tracks_are_ranked_and_a_share_budget_resolves_over_them():
    a = run([3.0, 2, 1, np.nan], ["t0", "t1", "t2", "t3"])
    b = run([3.0, 2, 1, 0], ["t1", "t2", "t4", "t0"])
    result = compare_runs(a, b, budget="50%")
    assert (result.n_tracks, result.only_a, result.only_b) == (3, 0, 1)
    assert result.budget == 2  # 50% of the 3 shared tracks, rounded
    assert set(result.tracks["track_id"]) == {"t0", "t1", "t2"}


def test_bad_runs_are_named():
    with pytest.raises(InputError, match="run b: missing column"):
        compare_runs(run([1.0]), run([1.0]).drop(columns="rareness"))
    with pytest.raises(InputError, match="run a: a track appears twice"):
        compare_runs(run([1.0, 2.0], ["t", "t"]), run([1.0]))
