"""Algorithm 1 (rem_core.mining.algorithm): hand-worked cases and a plain reference.

``reference_select_tracks`` and ``reference_merge_labels`` follow the paper's pseudo-code
line by line, with a dense IoU per frame and Python loops: obviously correct and slow.
Hypothesis checks the fast implementation against them on random scenes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rem_core.geometry import bev_iou
from rem_core.mining import MiningResult, merge_labels, resolve_budget, select_tracks
from rem_core.schema import BOX_COLUMNS, SchemaError

# --- the reference --------------------------------------------------------------------------


def _boxes(table: pd.DataFrame) -> np.ndarray:
    return table[BOX_COLUMNS].to_numpy(np.float64)


def reference_select_tracks(
    detections: pd.DataFrame,
    rareness: np.ndarray,
    gt: pd.DataFrame,
    budget: int,
    check_iou: float = 0.0,
    fp_costs_budget: bool = False,
) -> dict:
    """Algorithm 1, steps 1-4, as written."""
    order = sorted(range(len(detections)), key=lambda i: (-rareness[i], i))
    frame_of = list(zip(detections["segment_id"], detections["frame_index"], strict=True))
    gt_frame = list(zip(gt["segment_id"], gt["frame_index"], strict=True))
    gt_track = list(zip(gt["segment_id"], gt["track_id"], strict=True))
    det_boxes, gt_boxes = _boxes(detections), _boxes(gt)
    remaining = list(order)
    mined, found_by, checked, hit = [], [], [], []
    spent = 0
    while spent < budget and remaining:
        b = remaining.pop(0)
        checked.append(b)
        same = [g for g in range(len(gt)) if gt_frame[g] == frame_of[b]]
        best, best_iou = None, check_iou
        for g in same:
            iou = bev_iou(det_boxes[b : b + 1], gt_boxes[g : g + 1])[0, 0]
            if iou > best_iou:
                best, best_iou = g, iou
        if best is None:
            hit.append(False)
            spent += int(fp_costs_budget)
            continue
        hit.append(True)
        track = gt_track[best]
        mined.append(track)
        found_by.append(b)
        spent += 1
        track_boxes = [g for g in range(len(gt)) if gt_track[g] == track]
        keep = []
        for d in remaining:
            touches = any(
                gt_frame[g] == frame_of[d]
                and bev_iou(det_boxes[d : d + 1], gt_boxes[g : g + 1])[0, 0] > 0
                for g in track_boxes
            )
            if not touches:
                keep.append(d)
        remaining = keep
    return {"tracks": mined, "detection": found_by, "checked": checked, "hit": hit, "spent": spent}


def reference_merge_labels(mined: list[tuple], gt: pd.DataFrame, auto: pd.DataFrame) -> tuple:
    """Step 5: the mined tracks plus the auto-labelled tracks that do not intersect them."""
    human = gt[[t in set(mined) for t in zip(gt["segment_id"], gt["track_id"], strict=True)]]
    dropped = set()
    for a in range(len(auto)):
        for h in range(len(human)):
            if (auto["segment_id"].iloc[a], auto["frame_index"].iloc[a]) != (
                human["segment_id"].iloc[h],
                human["frame_index"].iloc[h],
            ):
                continue
            if bev_iou(_boxes(auto.iloc[[a]]), _boxes(human.iloc[[h]]))[0, 0] > 0:
                dropped.add((auto["segment_id"].iloc[a], auto["track_id"].iloc[a]))
    kept = [
        (s, t)
        for s, t in zip(auto["segment_id"], auto["track_id"], strict=True)
        if (s, t) not in dropped
    ]
    return len(human), sorted(set(kept))


# --- hand-made scenes -----------------------------------------------------------------------


def box(x: float, y: float = 0.0, length: float = 4.0, heading: float = 0.0) -> dict:
    return dict(center_x=x, center_y=y, center_z=1.0, length=length, width=2.0, height=1.5,
                heading=heading)  # fmt: skip


def gt_table(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (segment, frame, track, x[, heading])."""
    return pd.DataFrame(
        [dict(segment_id=s, frame_index=f, track_id=t, **box(*rest)) for s, f, t, *rest in rows]
    )


def det_table(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (segment, frame, x[, heading])."""
    columns = ["segment_id", "frame_index", *BOX_COLUMNS]
    return pd.DataFrame(
        [dict(segment_id=s, frame_index=f, **box(*rest)) for s, f, *rest in rows], columns=columns
    )


# Two tracks in one segment over two frames: A at x = 0, B at x = 20.
GT = gt_table([("s", 0, "A", 0), ("s", 0, "B", 20), ("s", 1, "A", 1), ("s", 1, "B", 21)])


def test_a_pop_labels_the_whole_track_and_discards_its_detections():
    det = det_table([("s", 0, 0.5), ("s", 1, 1.2), ("s", 0, 20.0), ("s", 1, 21.0)])
    result = select_tracks(det, np.array([5.0, 1.0, 3.0, 2.0]), GT, budget=1)
    assert result.tracks["track_id"].tolist() == ["A"]
    assert result.tracks["detection"].tolist() == [0] and result.tracks["rank"].tolist() == [1]
    assert result.tracks["rareness"].tolist() == [5.0]
    # Detection 1 (track A in frame 1) is discarded, B's detections remain.
    np.testing.assert_array_equal(result.discarded, [True, True, False, False])
    assert result.checked.tolist() == [0] and result.spent == 1


def test_discards_skip_the_next_pop():
    det = det_table([("s", 0, 0.5), ("s", 1, 1.2), ("s", 0, 20.0)])
    result = select_tracks(det, np.array([5.0, 4.0, 3.0]), GT, budget=2)
    # Detection 1 is A's too: it is never checked; B comes second.
    assert result.tracks["track_id"].tolist() == ["A", "B"]
    assert result.checked.tolist() == [0, 2]


@pytest.mark.parametrize("fp_costs", [False, True])
def test_a_failed_check_yields_nothing_and_costs_only_if_asked(fp_costs: bool):
    det = det_table([("s", 0, 50.0), ("s", 0, 0.0), ("s", 0, 20.0)])
    result = select_tracks(det, np.array([9.0, 2.0, 1.0]), GT, budget=2, fp_costs_budget=fp_costs)
    assert result.hit.tolist()[:2] == [False, True]
    assert result.false_positives == 1
    if fp_costs:
        assert result.tracks["track_id"].tolist() == ["A"] and result.spent == 2
    else:
        assert result.tracks["track_id"].tolist() == ["A", "B"] and result.spent == 2


def test_the_check_takes_the_best_overlap_and_honours_check_iou():
    # A detection between A (x = 0) and a box of B moved next to it: it overlaps both.
    gt = gt_table([("s", 0, "A", 0), ("s", 0, "B", 3.5)])
    det = det_table([("s", 0, 2.5)])  # overlaps B more
    assert select_tracks(det, [1.0], gt, 1).tracks["track_id"].tolist() == ["B"]
    # A detection that barely touches: found at check_iou 0, a false positive at 0.3.
    det = det_table([("s", 0, 3.6)])
    assert select_tracks(det, [1.0], GT, 1).tracks["track_id"].tolist() == ["A"]
    assert select_tracks(det, [1.0], GT, 1, check_iou=0.3).false_positives == 1


def test_a_detection_touching_two_tracks_goes_with_either():
    gt = gt_table([("s", 0, "A", 0), ("s", 0, "B", 4.2)])
    det = det_table([("s", 0, 0.0), ("s", 0, 2.1), ("s", 0, 4.2)])  # 1 touches A and B
    result = select_tracks(det, np.array([3.0, 1.0, 2.0]), gt, budget=5)
    assert result.tracks["track_id"].tolist() == ["A", "B"]
    assert result.checked.tolist() == [0, 2]  # 1 went with A


def test_budget_zero_and_budget_larger_than_the_pool():
    det = det_table([("s", 0, 0.0), ("s", 0, 20.0)])
    none = select_tracks(det, [1.0, 2.0], GT, budget=0)
    assert len(none.tracks) == 0 and len(none.checked) == 0 and not none.discarded.any()
    everything = select_tracks(det, [1.0, 2.0], GT, budget=100)
    assert everything.tracks["track_id"].tolist() == ["B", "A"] and everything.spent == 2
    assert everything.discarded.all()


def test_ties_keep_row_order_and_minus_infinity_comes_last():
    det = det_table([("s", 0, 20.0), ("s", 0, 0.0)])
    assert select_tracks(det, [1.0, 1.0], GT, 1).tracks["track_id"].tolist() == ["B"]
    assert select_tracks(det, [-np.inf, -5.0], GT, 1).tracks["track_id"].tolist() == ["A"]


def test_tracks_are_per_segment():
    gt = gt_table([("s", 0, "A", 0), ("t", 0, "A", 0)])
    det = det_table([("s", 0, 0.0), ("t", 0, 0.0)])
    result = select_tracks(det, [2.0, 1.0], gt, 5)
    assert list(zip(result.tracks["segment_id"], result.tracks["track_id"], strict=True)) == [
        ("s", "A"),
        ("t", "A"),
    ]


def test_the_merge_drops_auto_tracks_that_touch_a_mined_track():
    det = det_table([("s", 0, 0.0)])
    result = select_tracks(det, [1.0], GT, 1)
    auto = pd.DataFrame(
        [dict(segment_id="s", frame_index=0, track_id="a1", score=0.7, **box(0.5)),
         dict(segment_id="s", frame_index=1, track_id="a1", score=0.6, **box(30.0)),
         dict(segment_id="s", frame_index=0, track_id="a2", score=0.9, **box(20.0)),
         dict(segment_id="s", frame_index=1, track_id="a3", score=0.8, **box(0.0, y=10.0))]
    )  # fmt: skip
    labels = merge_labels(result, GT, auto)
    assert labels["source"].tolist() == ["human", "human", "auto", "auto"]
    assert labels["track_id"].tolist() == ["A", "A", "a2", "a3"]
    assert labels["frame_index"].tolist() == [0, 1, 0, 1]
    assert labels["score"].tolist() == [1.0, 1.0, 0.9, 0.8]
    assert reference_merge_labels([("s", "A")], GT, auto) == (2, [("s", "a2"), ("s", "a3")])


def test_bad_input_is_named():
    det = det_table([("s", 0, 0.0)])
    with pytest.raises(ValueError, match="2 values for 1 detections"):
        select_tracks(det, [1.0, 2.0], GT, 1)
    with pytest.raises(ValueError, match="1 values are NaN"):
        select_tracks(det, [np.nan], GT, 1)
    with pytest.raises(SchemaError, match="'heading'"):
        select_tracks(det.drop(columns="heading"), [1.0], GT, 1)
    with pytest.raises(SchemaError, match="ground truth: missing column 'track_id'"):
        select_tracks(det, [1.0], GT.drop(columns="track_id"), 1)
    with pytest.raises(ValueError, match="budget: must be a count >= 0"):
        select_tracks(det, [1.0], GT, -1)


@pytest.mark.parametrize(
    ("budget", "tracks", "expected"),
    [("3%", 2391, 72), ("0%", 100, 0), ("100%", 7, 7), ("2.5 %", 200, 5), (1500, 10, 1500),
     ("1500", 10, 1500), (12.0, 5, 12)],
)  # fmt: skip
def test_resolve_budget(budget, tracks, expected):
    assert resolve_budget(budget, tracks) == expected


@pytest.mark.parametrize("budget", [0.03, -1, "-3%", "150%", "three", True, "3"[:0]])
def test_resolve_budget_refuses_with_the_value(budget):
    with pytest.raises(ValueError, match="budget"):
        resolve_budget(budget, 100)


# --- the fast one against the reference -----------------------------------------------------


HEADINGS = [0.0, 0.4, -1.2, np.pi / 2]


@st.composite
def scenes(draw, segments=("s", "t"), tracks=(1, 4), detections=(0, 10)):
    """A few frames of boxes that often overlap, detections near them, and rareness with
    ties and -inf, over ``segments``, with a number of tracks and detections in the ranges
    ``tracks`` and ``detections``."""
    n_frames = draw(st.integers(1, 3))
    n_tracks = draw(st.integers(*tracks))
    rows = []
    for t in range(n_tracks):
        seg = draw(st.sampled_from(segments))
        x0 = draw(st.floats(-6, 6))
        for f in range(n_frames):
            if draw(st.booleans()) or f == 0:
                x = x0 + f * draw(st.floats(0, 1))
                rows.append((seg, f, f"T{t}", x, 0.0, 4.0, draw(st.sampled_from(HEADINGS))))
    gt = gt_table(rows) if rows else gt_table([("s", 0, "T", 0.0, 0.0, 4.0, 0.0)]).iloc[:0]
    dets = []
    for _ in range(draw(st.integers(*detections))):
        seg = draw(st.sampled_from(segments))
        dets.append((seg, draw(st.integers(0, n_frames - 1)), draw(st.floats(-9, 9))))
    det = (
        det_table(dets)
        if dets
        else det_table([]).reindex(columns=["segment_id", "frame_index", *BOX_COLUMNS])
    )
    rareness = np.array(
        [draw(st.sampled_from([0.0, 1.0, 2.0, 3.5, -np.inf])) for _ in dets], dtype=float
    )
    return det, rareness, gt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scene=scenes(),
    budget=st.integers(0, 6),
    check_iou=st.sampled_from([0.0, 0.3]),
    fp_costs=st.booleans(),
)
def test_fast_matches_the_reference(scene, budget, check_iou, fp_costs):
    det, rareness, gt = scene
    fast: MiningResult = select_tracks(
        det, rareness, gt, budget, check_iou=check_iou, fp_costs_budget=fp_costs
    )
    ref = reference_select_tracks(det, rareness, gt, budget, check_iou, fp_costs)
    got = list(zip(fast.tracks["segment_id"], fast.tracks["track_id"], strict=True))
    assert got == ref["tracks"]
    assert fast.tracks["detection"].tolist() == ref["detection"]
    assert fast.checked.tolist() == ref["checked"]
    assert fast.hit.tolist() == ref["hit"]
    assert fast.spent == ref["spent"]
    auto = det.assign(track_id=[f"a{i % 3}" for i in range(len(det))], score=0.5)
    labels = merge_labels(fast, gt, auto)
    n_human, kept = reference_merge_labels(ref["tracks"], gt, auto)
    assert (labels["source"] == "human").sum() == n_human
    auto_rows = labels[labels["source"] == "auto"]
    assert sorted(set(zip(auto_rows["segment_id"], auto_rows["track_id"], strict=True))) == kept
