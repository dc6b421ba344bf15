"""Algorithm 1 over partitions of segments gives what it gives on the whole pool."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mining_algorithm import HEADINGS, det_table, gt_table

from rem_core.mining import select_tracks
from rem_core.mining.partitioned import select_tracks_partitioned
from rem_core.schema import BOX_COLUMNS

SEGMENTS = ["s", "t", "u", "v"]


@st.composite
def pools(draw):
    """Tracks and detections over up to four segments, rareness with ties and -inf (some
    segments with detections and no ground truth, or the reverse)."""
    n_frames = draw(st.integers(1, 3))
    rows = []
    for t in range(draw(st.integers(0, 6))):
        seg = draw(st.sampled_from(SEGMENTS))
        x0 = draw(st.floats(-6, 6))
        for f in range(n_frames):
            if draw(st.booleans()) or f == 0:
                x = x0 + f * draw(st.floats(0, 1))
                rows.append((seg, f, f"T{t}", x, 0.0, 4.0, draw(st.sampled_from(HEADINGS))))
    gt = gt_table(rows) if rows else gt_table([("s", 0, "T", 0.0, 0.0, 4.0, 0.0)]).iloc[:0]
    dets = [
        (
            draw(st.sampled_from(SEGMENTS)),
            draw(st.integers(0, n_frames - 1)),
            draw(st.floats(-9, 9)),
        )
        for _ in range(draw(st.integers(0, 16)))
    ]
    det = (
        det_table(dets)
        if dets
        else det_table([]).reindex(columns=["segment_id", "frame_index", *BOX_COLUMNS])
    )
    rareness = np.array(
        [draw(st.sampled_from([0.0, 1.0, 2.0, 3.5, -np.inf])) for _ in dets], dtype=float
    )
    return det, rareness, gt


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
