"""Algorithm 1 over partitions of segments gives what it gives on the whole pool."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mining_algorithm import scenes

from rem_core.mining import select_tracks, select_tracks_partitioned

SEGMENTS = ["s", "t", "u", "v"]


def pools():
    """Tracks and detections over up to four segments, rareness with ties and -inf (some
    segments with detections and no ground truth, or the reverse)."""
    return scenes(segments=SEGMENTS, tracks=(0, 6), detections=(0, 16))


def assert_same(a, b) -> None:
    pd.testing.assert_frame_equal(a.tracks, b.tracks, check_dtype=False)
    assert a.checked.tolist() == b.checked.tolist()
    assert a.hit.tolist() == b.hit.tolist()
    assert a.discarded.tolist() == b.discarded.tolist()
    assert a.discarded_at.tolist() == b.discarded_at.tolist()
    assert (a.spent, a.budget) == (b.spent, b.budget)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool=pools(),
    budget=st.integers(0, 6),
    check_iou=st.sampled_from([0.0, 0.3]),
    fp_costs=st.booleans(),
    partitions=st.integers(1, 4),
)
def test_partitions_mine_what_the_whole_pool_mines(pool, budget, check_iou, fp_costs, partitions):
    det, rareness, gt = pool
    whole = select_tracks(det, rareness, gt, budget, check_iou=check_iou, fp_costs_budget=fp_costs)
    parts = select_tracks_partitioned(
        det,
        rareness,
        gt,
        budget,
        check_iou=check_iou,
        fp_costs_budget=fp_costs,
        partitions=partitions,
    )
    assert_same(parts, whole)
