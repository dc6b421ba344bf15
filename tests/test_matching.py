"""The one per-frame box matcher (rem_core.evaluation's): hand-made frames with known answers,
and each rule against a plain frame-by-frame reference."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from rem_core.evaluation import MATCH_RULES, frame_keys, match_boxes, match_frames
from rem_core.geometry import bev_iou
from rem_core.schema import BOX_COLUMNS, SchemaError


def table(xs, frame=0, segment="s", score=None, **box) -> pd.DataFrame:
    """Boxes 4 m x 2 m x 1 m at ``x = xs`` (heading 0) in one frame, or one frame per row.

    Two such boxes ``d`` metres apart along x have BEV IoU ``(4 - d) / (4 + d)``.
    """
    n = len(xs)
    rows = {"center_x": xs, "center_y": 0.0, "center_z": 0.0, "length": 4.0, "width": 2.0,
            "height": 1.0, "heading": 0.0, **box}  # fmt: skip
    df = pd.DataFrame({"segment_id": segment, "frame_index": frame, **rows}, index=range(n))
    df["score"] = 1.0 if score is None else score
    return df


def iou_at(d: float) -> float:
    return (4 - d) / (4 + d)


# ------------------------------------------------------------------ the rules, by hand

# a0 at 0 and a1 at 2; b0 at 1 and b1 at -1.5. a0 overlaps b0 (0.6) better than b1 (0.45);
# a1 overlaps b0 (0.6), b1 barely (0.07, below the 0.3 used).
A = table([0.0, 2.0], score=[0.9, 0.5])
B = table([1.0, -1.5])


def test_greedy_takes_boxes_in_score_order():
    m = match_frames(A, B, "greedy", min_iou=0.3)
    assert m.match.tolist() == [0, -1]  # a0 first takes b0; a1 has nothing left
    assert m.iou == pytest.approx([iou_at(1), 0.0])
    # Scores reversed: a1 takes b0 first and a0 falls back on b1.
    m = match_frames(A.assign(score=[0.5, 0.9]), B, "greedy", min_iou=0.3)
    assert m.match.tolist() == [1, 0]
    assert m.iou == pytest.approx([iou_at(1.5), iou_at(1)])


def test_greedy_score_ties_go_in_row_order():
    m = match_frames(A.assign(score=0.7), B, "greedy", min_iou=0.3)
    assert m.match.tolist() == [0, -1]
    m = match_frames(A.iloc[::-1].assign(score=0.7), B, "greedy", min_iou=0.3)
    assert m.match.tolist() == [0, 1]  # now a1 comes first, takes b0, and a0 gets b1


def test_optimal_maximises_the_total_iou():
    m = match_frames(A, B, "optimal", min_iou=0.3)
    assert m.match.tolist() == [1, 0]  # 0.45 + 0.6 beats 0.6 alone
    assert m.iou == pytest.approx([iou_at(1.5), iou_at(1)])


def test_best_may_share_a_box_and_ignores_scores():
    m = match_frames(A, B, "best", min_iou=0.3)
    assert m.match.tolist() == [0, 0]
    assert m.iou == pytest.approx([iou_at(1), iou_at(1)])


def test_best_iou_ties_take_the_first_row():
    twins = table([1.0, 1.0, -1.0])  # b0 and b1 identical; b2 as close on the other side
    assert match_frames(table([0.0]), twins, "best").match.tolist() == [0]
    assert match_frames(table([0.0]), twins.iloc[::-1], "best").match.tolist() == [0]


def test_pairs_list_every_overlap_of_a_frame():
    m = match_frames(A, B, "greedy", min_iou=0.3)
    assert m.pair_a.tolist() == [0, 0, 1, 1] and m.pair_b.tolist() == [0, 1, 0, 1]
    assert m.pair_iou == pytest.approx([iou_at(1), iou_at(1.5), iou_at(1), iou_at(3.5)])


@pytest.mark.parametrize("rule", MATCH_RULES)
def test_the_min_iou_boundary_is_inclusive(rule):
    # A 2 m x 2 m box inside a 4 m x 2 m one: IoU exactly 4 / 8.
    a, b = table([0.0]), table([1.0], length=2.0)
    assert match_frames(a, b, rule, min_iou=0.5).match.tolist() == [0]
    assert match_frames(a, b, rule, min_iou=np.nextafter(0.5, 1)).match.tolist() == [-1]


@pytest.mark.parametrize("rule", MATCH_RULES)
def test_a_match_needs_an_overlap_even_at_min_iou_zero(rule):
    m = match_frames(table([0.0, 50.0]), table([0.5]), rule, min_iou=0.0)
    assert m.match.tolist() == [0, -1] and m.iou[1] == 0.0


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize("rule", MATCH_RULES)
def test_boxes_of_other_frames_and_segments_never_match(rule):
    a = pd.concat([table([0.0], frame=0), table([0.0], frame=1), table([0.0], segment="t")])
    b = pd.concat([table([0.0], frame=1), table([0.0], frame=2)])  # frame 2: b's only
    m = match_frames(a, b, rule)
    assert m.match.tolist() == [-1, 0, -1]
    assert m.pair_a.tolist() == [1] and m.pair_b.tolist() == [0]


@pytest.mark.parametrize("rule", MATCH_RULES)
def test_empty_tables_and_empty_frames(rule):
    a, b = table([0.0, 1.0]), table([0.5])
    assert match_frames(a, b.iloc[:0], rule).match.tolist() == [-1, -1]
    m = match_frames(a.iloc[:0], b, rule)
    assert m.match.shape == m.iou.shape == m.pair_a.shape == (0,)
    # An empty table needs no columns at all.
    assert match_frames(a, pd.DataFrame(), rule).match.tolist() == [-1, -1]
    none = np.zeros((0, 7))
    assert match_boxes(none, none, [], [], rule, scores=[]).match.shape == (0,)


def test_row_positions_not_index_labels():
    a = table([0.0, 9.0]).set_axis([7, 3])
    b = table([9.0, 0.0]).set_axis([0, 1])
    assert match_frames(a, b, "optimal").match.tolist() == [1, 0]


def test_other_frame_columns_and_3d_iou():
    a = table([0.0, 0.0]).assign(**{"class": ["car", "bike"]})
    b = table([0.0]).assign(**{"class": "bike"})
    assert match_frames(a, b, "best").match.tolist() == [0, 0]
    by = ("segment_id", "frame_index", "class")
    assert match_frames(a, b, "best", by=by).match.tolist() == [-1, 0]
    lifted = b.assign(center_z=5.0)  # the same footprint, 5 m higher
    assert match_frames(a, lifted, "best", iou="bev").match.tolist() == [0, 0]
    assert match_frames(a, lifted, "best", iou="3d").match.tolist() == [-1, -1]


def test_frame_keys_are_shared_across_tables():
    a = pd.DataFrame({"segment_id": ["s", "s", "t", None], "frame_index": [0, 1, 0, 0]})
    b = pd.DataFrame({"segment_id": ["t", "u", None], "frame_index": [0, 0, 0]})
    ka, kb = frame_keys(a, b)
    assert ka.tolist() == [0, 1, 2, 3] and kb.tolist() == [2, 4, 3]
    assert ka.dtype == kb.dtype == np.int64
    (seg,) = frame_keys(a, by=["segment_id"])
    assert seg.tolist() == [0, 0, 1, 2]
    assert [k.shape for k in frame_keys(a.iloc[:0], b.iloc[:0])] == [(0,), (0,)]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="rule"):
        match_frames(A, B, "hungarian")
    with pytest.raises(SchemaError, match="b: missing column.*heading"):
        match_frames(A, B.drop(columns="heading"), "best")
    with pytest.raises(SchemaError, match="a: missing column.*score"):
        match_frames(A.drop(columns="score"), B, "greedy")
    boxes = A[BOX_COLUMNS].to_numpy()
    with pytest.raises(ValueError, match="scores"):
        match_boxes(boxes, boxes, [0, 0], [0, 0], "greedy")
    with pytest.raises(ValueError, match="keys"):
        match_boxes(boxes, boxes, [0], [0, 0], "best")


# ------------------------------------------------------------------ against a reference


def scene(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crowded frames: overlaps, exact duplicates (IoU ties), score ties, one-sided frames."""
    rng = np.random.default_rng(seed)

    def boxes(n: int) -> pd.DataFrame:
        df = pd.DataFrame(
            {
                "segment_id": rng.choice(["s", "t"], n),
                "frame_index": rng.integers(0, 6, n),
                "center_x": rng.uniform(-6, 6, n).round(1),
                "center_y": rng.uniform(-3, 3, n).round(1),
                "center_z": 0.0,
                "length": rng.uniform(1, 6, n),
                "width": rng.uniform(1, 3, n),
                "height": 1.0,
                "heading": rng.choice([0.0, np.pi / 4, 1.0], n),
                "score": rng.choice([0.2, 0.5, 0.9], n),
            }
        )
        return pd.concat([df, df.sample(n // 5, random_state=seed)], ignore_index=True)

    return boxes(60), boxes(50)


def reference(a: pd.DataFrame, b: pd.DataFrame, rule: str, min_iou: float) -> np.ndarray:
    """Each rule, frame by frame, on the frame's dense IoU matrix."""
    match = np.full(len(a), -1)
    rows_b = b.reset_index(drop=True).groupby(["segment_id", "frame_index"]).indices
    for key, ra in a.reset_index(drop=True).groupby(["segment_id", "frame_index"]).indices.items():
        rb = rows_b.get(key)
        if rb is None:
            continue
        iou = bev_iou(a[BOX_COLUMNS].to_numpy()[ra], b[BOX_COLUMNS].to_numpy()[rb])
        ok = (iou >= min_iou) & (iou > 0)
        if rule == "optimal":
            r, c = linear_sum_assignment(np.where(ok, -iou, 0.0))
            hit = ok[r, c]
            match[ra[r[hit]]] = rb[c[hit]]
            continue
        taken = np.zeros(len(rb), bool)
        scores = a["score"].to_numpy()[ra]
        for r in np.argsort(-scores, kind="stable") if rule == "greedy" else range(len(ra)):
            cand = np.where(ok[r] & ~taken, iou[r], -1.0)
            if cand.max() >= 0:
                match[ra[r]] = rb[np.argmax(cand)]  # argmax: the first of tied rows
                taken[np.argmax(cand)] = rule == "greedy"
    return match


@pytest.mark.parametrize(
    ("seed", "rule", "min_iou"), list(itertools.product(range(4), MATCH_RULES, (0.0, 0.3)))
)
def test_each_rule_equals_the_frame_by_frame_reference(seed, rule, min_iou):
    a, b = scene(seed)
    m = match_frames(a, b, rule, min_iou=min_iou)
    assert m.match.tolist() == reference(a, b, rule, min_iou).tolist()
    hit = m.match >= 0
    dense = bev_iou(a[BOX_COLUMNS].to_numpy(), b[BOX_COLUMNS].to_numpy())
    assert m.iou[hit] == pytest.approx(dense[hit, m.match[hit]], abs=1e-12)
    assert (m.iou[~hit] == 0).all()
    if rule != "best":
        assert len(np.unique(m.match[hit])) == hit.sum()  # one-to-one


def test_optimal_is_the_best_total_of_all_assignments():
    a, b = table([0.0, 1.2, 2.1, -1.0]), table([0.4, 1.0, 2.5, -0.3])
    iou = bev_iou(a[BOX_COLUMNS].to_numpy(), b[BOX_COLUMNS].to_numpy())
    best = max(sum(iou[r, c] for r, c in enumerate(p)) for p in itertools.permutations(range(4)))
    m = match_frames(a, b, "optimal")
    assert m.iou.sum() == pytest.approx(best)
    assert m.iou.sum() >= match_frames(a, b, "greedy").iou.sum()
