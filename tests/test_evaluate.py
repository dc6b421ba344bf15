from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

import rem_core.geometry.iou as iou_module
from rem_core.evaluation import (
    DetectionEval,
    evaluate_detections,
    precision_recall,
    recall_by_group,
)
from rem_core.geometry import bev_corners, bev_iou, bev_iou_pairs, iou_3d, iou_3d_pairs
from rem_core.schema import BOX_COLUMNS, SchemaError


def box(x=0.0, y=0.0, length=4.0, width=2.0, heading=0.0, z=1.0, height=2.0):
    return np.array([x, y, z, length, width, height, heading], dtype=np.float64)


def boxes(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 7)


def table(rows, frame=0, segment="s0", cls="vehicle", **columns):
    """A detections or ground-truth table of boxes in one frame (or per-row frames)."""
    arr = boxes(*rows)
    df = pd.DataFrame(arr, columns=BOX_COLUMNS)
    df.insert(0, "class", cls)
    df.insert(0, "frame_index", np.broadcast_to(np.asarray(frame, np.int32), len(df)))
    df.insert(0, "segment_id", segment)
    for name, value in columns.items():
        df[name] = np.broadcast_to(np.asarray(value), len(df))
    return df


# ---------------------------------------------------------------- IoU, hand-computed


def test_identical_boxes_have_iou_one():
    rng = np.random.default_rng(0)
    b = np.column_stack(
        [rng.uniform(-50, 50, (20, 3)), rng.uniform(0.5, 10, (20, 3)), rng.uniform(-3, 3, 20)]
    )
    assert np.diag(bev_iou(b, b)) == pytest.approx(np.ones(20), abs=1e-12)
    assert np.diag(iou_3d(b, b)) == pytest.approx(np.ones(20), abs=1e-12)
    assert bev_iou_pairs(b, b) == pytest.approx(np.ones(20), abs=1e-12)


def test_disjoint_and_touching_boxes_have_iou_zero():
    a = boxes(box(0, 0))
    assert bev_iou(a, boxes(box(10, 0), box(0, 2.0), box(4.0, 0))).tolist() == [[0, 0, 0]]
    assert iou_3d(a, boxes(box(0, 0, z=5))).tolist() == [[0.0]]  # same footprint, above


def test_unit_squares_offset_by_half_share_a_third():
    # Overlap 0.5 x 1 = 0.5; union 1 + 1 - 0.5 = 1.5.
    a, b = boxes(box(0, 0, 1, 1)), boxes(box(0.5, 0, 1, 1))
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / 3, abs=1e-12)


def test_square_turned_45_degrees_inside_a_bigger_one():
    # A unit square turned by 45 degrees lies inside a 4 x 4 square: IoU = 1 / 16.
    small, big = boxes(box(0.3, -0.2, 1, 1, np.pi / 4)), boxes(box(0, 0, 4, 4))
    assert bev_iou(small, big)[0, 0] == pytest.approx(1 / 16, abs=1e-12)


def test_square_and_its_45_degree_turn_meet_in_a_regular_octagon():
    # Octagon of inradius 1: area 8 (sqrt 2 - 1); IoU = area / (8 - area) = 1 / sqrt 2.
    a, b = boxes(box(0, 0, 2, 2)), boxes(box(0, 0, 2, 2, np.pi / 4))
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / np.sqrt(2), abs=1e-12)


def test_quarter_turns():
    square = boxes(box(1, 2, 3, 3))
    assert bev_iou(square, boxes(box(1, 2, 3, 3, np.pi / 2)))[0, 0] == pytest.approx(1.0)
    assert bev_iou(square, boxes(box(1, 2, 3, 3, -np.pi)))[0, 0] == pytest.approx(1.0)
    # A 4 x 2 rectangle and its quarter turn cross in a 2 x 2 square: 4 / (8 + 8 - 4).
    rect = boxes(box(0, 0, 4, 2))
    assert bev_iou(rect, boxes(box(0, 0, 4, 2, np.pi / 2)))[0, 0] == pytest.approx(1 / 3)


def test_box_inside_a_twice_longer_one_sharing_its_sides():
    # Collinear long sides at an odd heading (shapely's plain overlay returns two points
    # here): IoU = 1/2.
    a = boxes(
        box(
            2.420801375095672,
            1.0562333370383445,
            4.828165470651123,
            1.8178049814129744,
            -1.2258697936255127,
        )
    )
    b = a.copy()
    b[0, 3] *= 2
    assert bev_iou(a, b)[0, 0] == pytest.approx(0.5, abs=1e-12)
    assert bev_iou(b, a)[0, 0] == pytest.approx(0.5, abs=1e-12)


def test_3d_iou_with_half_the_height_shared():
    # Same footprint A, heights 2 overlapping by 1: A / (2A + 2A - A) = 1 / 3.
    a, b = boxes(box(0, 0, z=1.0)), boxes(box(0, 0, z=2.0))
    assert iou_3d(a, b)[0, 0] == pytest.approx(1 / 3)
    assert bev_iou(a, b)[0, 0] == pytest.approx(1.0)
    # Half the footprint and half the height: 2 / (8 + 8 - 2).
    c = boxes(box(2, 0, z=2.0))
    assert iou_3d(a, c)[0, 0] == pytest.approx(2 / 14)
    assert iou_3d_pairs(a, c) == pytest.approx([2 / 14])


def test_shapes_and_bad_input():
    a = boxes(box(0, 0), box(1, 0))
    assert bev_iou(a, np.empty((0, 7))).shape == (2, 0)
    assert iou_3d(np.empty((0, 7)), a).shape == (0, 2)
    assert bev_iou_pairs(np.empty((0, 7)), np.empty((0, 7))).shape == (0,)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        bev_iou(np.zeros((2, 5)), a)
    with pytest.raises(ValueError, match="row by row"):
        bev_iou_pairs(a, a[:1])
    with pytest.raises(ValueError, match="finite"):
        iou_3d(a + np.nan, a)


def test_blocked_computation_equals_one_block(monkeypatch):
    rng = np.random.default_rng(1)
    a = np.column_stack(
        [
            rng.uniform(-8, 8, (150, 2)),
            rng.uniform(0, 1, 150),
            rng.uniform(0.5, 6, (150, 3)),
            rng.uniform(-np.pi, np.pi, 150),
        ]
    )
    b = a[rng.permutation(150)[:90]] + rng.normal(0, 0.5, (90, 7))
    b[:, 3:6] = np.abs(b[:, 3:6])
    whole_bev, whole_3d = bev_iou(a, b), iou_3d(a, b)
    assert (whole_bev > 0).sum() > 100
    monkeypatch.setattr(iou_module, "_PAIR_BLOCK", 97)
    monkeypatch.setattr(iou_module, "_CLIP_BLOCK", 13)
    # Blocks pad polygons to different widths, so sums may differ in the last bit.
    assert np.allclose(bev_iou(a, b), whole_bev, rtol=0, atol=1e-13)
    assert np.allclose(iou_3d(a, b), whole_3d, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- IoU, against shapely

finite = dict(allow_nan=False, allow_infinity=False)
rect = st.tuples(
    st.floats(-4, 4, **finite),
    st.floats(-4, 4, **finite),
    st.floats(-1, 1, **finite),
    st.floats(0.1, 8, **finite),
    st.floats(0.1, 3, **finite),
    st.floats(0.2, 3, **finite),
    st.floats(-np.pi, np.pi, **finite),
)
# Small offsets and quarter turns: shared edges and corners, the hard cases of clipping.
nudge = st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 0.5, 1.0])
turn = st.sampled_from([0.0, 1e-12, 1e-7, np.pi / 2, np.pi / 4, np.pi, -np.pi / 2])


def shapely_iou(a, b):
    """Intersection area and IoU by shapely, snap-rounded to 1 nm.

    Plain floating-point overlay fails on nearly collinear edges (two boxes sharing a long
    side can intersect in two points); the fixed-precision overlay is robust.
    """
    pa, pb = Polygon(bev_corners(a[None])[0]), Polygon(bev_corners(b[None])[0])
    inter = pa.intersection(pb, grid_size=1e-9).area
    return inter, inter / (pa.area + pb.area - inter)


@settings(max_examples=300, deadline=None)
@given(rect, rect)
def test_bev_iou_matches_shapely(a, b):
    a, b = np.array(a), np.array(b)
    _, expected = shapely_iou(a, b)
    iou = bev_iou(a[None], b[None])[0, 0]
    assert iou == pytest.approx(expected, abs=1e-7)
    assert 0.0 <= iou <= 1.0
    assert bev_iou(b[None], a[None])[0, 0] == pytest.approx(iou, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(rect, nudge, nudge, turn, st.sampled_from([1.0, 0.5, 2.0]))
def test_bev_iou_of_near_coincident_boxes_matches_shapely(a, dx, dy, dh, scale):
    a = np.array(a)
    b = a.copy()
    b[0] += dx
    b[1] += dy
    b[6] = (b[6] + dh + np.pi) % (2 * np.pi) - np.pi
    b[3] *= scale
    _, expected = shapely_iou(a, b)
    assert bev_iou(a[None], b[None])[0, 0] == pytest.approx(expected, abs=1e-7)
    assert bev_iou(b[None], a[None])[0, 0] == pytest.approx(expected, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.lists(rect, min_size=1, max_size=8), st.lists(rect, min_size=1, max_size=8))
def test_iou_matrices_are_symmetric_bounded_and_agree_with_pairs(la, lb):
    a, b = np.array(la), np.array(lb)
    m, m3 = bev_iou(a, b), iou_3d(a, b)
    assert np.allclose(m, bev_iou(b, a).T, atol=1e-12)
    assert np.allclose(m3, iou_3d(b, a).T, atol=1e-12)
    assert (m >= 0).all() and (m <= 1).all() and (m3 >= 0).all() and (m3 <= 1).all()
    i, j = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    assert np.allclose(bev_iou_pairs(a[i.ravel()], b[j.ravel()]), m.ravel(), atol=1e-12)
    assert np.allclose(iou_3d_pairs(a[i.ravel()], b[j.ravel()]), m3.ravel(), atol=1e-12)
    # 3D: the BEV intersection times the vertical overlap.
    for p, q in zip(i.ravel(), j.ravel(), strict=True):
        inter, _ = shapely_iou(a[p], b[q])
        dz = min(a[p, 2] + a[p, 5] / 2, b[q, 2] + b[q, 5] / 2) - max(
            a[p, 2] - a[p, 5] / 2, b[q, 2] - b[q, 5] / 2
        )
        vol = inter * max(dz, 0.0)
        union = np.prod(a[p, 3:6]) + np.prod(b[q, 3:6]) - vol
        assert m3[p, q] == pytest.approx(vol / union, abs=1e-7)


# ---------------------------------------------------------------- AP, hand-worked


def test_precision_recall_hand_case():
    # 3 GT; ranked TP, FP, TP, FP. PR points (r, p): (1/3, 1), (1/3, 1/2), (2/3, 2/3),
    # (2/3, 1/2). Envelope: 1 on (0, 1/3], 2/3 on (1/3, 2/3]. AP = 1/3 + 2/9 = 5/9.
    curve = precision_recall([0.6, 0.9, 0.7, 0.8], [False, True, True, False], 3)
    assert curve.ap == pytest.approx(5 / 9)
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7, 0.6]
    assert curve.recall == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert curve.precision == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2])
    assert (curve.n_gt, curve.n_pred, curve.n_tp) == (3, 4, 2)


def test_precision_recall_ties_enter_together():
    # Tied at 0.5: one TP and one FP enter as one point (r, p) = (1/2, 1/2); AP = 1/4,
    # whatever the row order.
    assert precision_recall([0.5, 0.5], [True, False], 2).ap == pytest.approx(0.25)
    assert precision_recall([0.5, 0.5], [False, True], 2).ap == pytest.approx(0.25)
    with pytest.raises(ValueError, match="true positives"):
        precision_recall([1.0, 1.0], [True, True], 1)


def test_perfect_predictions_give_ap_one():
    gt = table([box(0, 0), box(10, 0), box(0, 10, 12, 2.5, 0.3, 2, 4)])
    det = gt.assign(score=[0.3, 0.9, 0.5])
    result = evaluate_detections(det, gt)
    assert isinstance(result, DetectionEval)
    assert result.ap("all") == pytest.approx(1.0)
    assert result.gt["matched"].all() and result.predictions["tp"].all()
    assert result.predictions["iou"].to_numpy() == pytest.approx(1.0)
    assert result.gt["pred_index"].tolist() == [0, 1, 2]


def test_all_false_positives_give_ap_zero():
    gt = table([box(0, 0), box(10, 0)])
    det = table([box(30, 0), box(0, 30), box(0.0, 0.0, heading=np.pi / 2)], score=0.9)
    result = evaluate_detections(det, gt)
    assert result.ap() == 0.0
    assert not result.predictions["tp"].any() and not result.gt["matched"].any()
    # The crossed box overlaps GT 0 (IoU 1/3) but below the threshold.
    assert result.predictions["max_iou"].to_numpy() == pytest.approx([0, 0, 1 / 3])
    assert np.isnan(result.predictions["iou"]).all()


def test_duplicates_are_false_positives():
    # 2 GT; ranked: TP (GT 0), duplicate of GT 0, TP (GT 1). PR: (1/2, 1), (1/2, 1/2),
    # (1, 2/3). AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    gt = table([box(0, 0), box(10, 0)])
    det = table([box(0, 0), box(0.1, 0), box(10, 0)], score=[0.9, 0.8, 0.7])
    result = evaluate_detections(det, gt)
    assert result.predictions["tp"].tolist() == [True, False, True]
    assert result.ap() == pytest.approx(5 / 6)


def test_score_order_decides_matches_and_ap():
    gt = table([box(0, 0)])
    near, far = box(0.05, 0), box(0.6, 0)  # IoU ~0.97 and ~0.74 with the GT
    # The higher score takes the GT even though the other prediction fits better.
    result = evaluate_detections(table([far, near], score=[0.9, 0.8]), gt)
    assert result.predictions["tp"].tolist() == [True, False]
    assert result.gt["iou"].iloc[0] == pytest.approx(bev_iou(far[None], gt[BOX_COLUMNS])[0, 0])
    # A false positive ranked first halves the AP: PR (0, 0), (1, 1/2).
    fp = box(20, 20)
    assert evaluate_detections(table([fp, near], score=[0.9, 0.1]), gt).ap() == 0.5
    assert evaluate_detections(table([fp, near], score=[0.1, 0.9]), gt).ap() == 1.0


def test_a_prediction_takes_the_unmatched_box_of_highest_iou():
    # At a low threshold one prediction overlaps two GT boxes; it takes the better one
    # and the next prediction gets the other.
    gt = table([box(0, 0), box(3, 0)])
    det = table([box(1, 0), box(2.5, 0)], score=[0.9, 0.8])
    iou = bev_iou(det[BOX_COLUMNS], gt[BOX_COLUMNS])
    assert iou[0, 0] > iou[0, 1] > 0.1 and iou[1, 1] > iou[1, 0] > 0.1
    result = evaluate_detections(det, gt, iou_threshold=0.1, iou="bev")
    assert result.predictions["gt_index"].tolist() == [0, 1]


def test_matching_stays_within_frame_and_class():
    gt = pd.concat([table([box(0, 0)], frame=0), table([box(0, 0)], frame=1, cls="cyclist")])
    det = pd.concat(
        [
            table([box(0, 0)], frame=1, score=0.9),  # right place, wrong frame
            table([box(0, 0)], frame=0, segment="s1", score=0.9),  # wrong segment
            table([box(0, 0)], frame=1, cls="cyclist", score=0.8),
        ],
        ignore_index=True,
    )
    result = evaluate_detections(det, gt, classes=("vehicle", "cyclist"))
    assert result.predictions["tp"].tolist() == [False, False, True]
    assert result.ap(class_name="vehicle") == 0.0
    assert result.ap(class_name="cyclist") == 1.0
    assert result.ap() == 0.5  # mean over the classes
    only_vehicles = evaluate_detections(det, gt)
    assert len(only_vehicles.predictions) == 2 and len(only_vehicles.gt) == 1


def test_empty_predictions_and_empty_ground_truth():
    gt = table([box(0, 0), box(10, 0)])
    none = table([], score=[])
    result = evaluate_detections(none, gt)
    assert result.ap() == 0.0 and result.curve().n_gt == 2
    assert not result.gt["matched"].any() and len(result.predictions) == 0
    assert (result.gt["pred_index"] == -1).all()

    result = evaluate_detections(table([box(0, 0)], score=0.5), table([]))
    assert np.isnan(result.ap()) and result.curve().n_pred == 1
    assert not result.predictions["tp"].any()

    assert np.isnan(evaluate_detections(none, table([])).ap())


def test_results_do_not_depend_on_row_order():
    rng = np.random.default_rng(3)
    gt = table([box(x, 0) for x in range(0, 60, 6)], frame=rng.integers(0, 3, 10))
    det = gt.assign(center_x=gt["center_x"] + rng.normal(0, 0.8, len(gt)))
    det["score"] = rng.choice([0.2, 0.5, 0.9], len(det))
    extra = table([box(100, 0)] * 3, frame=[0, 1, 2], score=0.5)
    det = pd.concat([det, extra], ignore_index=True)
    result = evaluate_detections(det, gt)
    order = rng.permutation(len(det))
    shuffled = evaluate_detections(det.iloc[order], gt)
    assert shuffled.ap() == pytest.approx(result.ap())
    assert shuffled.predictions["tp"].sum() == result.predictions["tp"].sum()
    # pred_index points into the table as given.
    back = shuffled.predictions.set_index(order[shuffled.predictions["pred_index"]])
    assert back.sort_index()["tp"].tolist() == result.predictions["tp"].tolist()


def test_boxes_without_points_are_ignored():
    gt = table([box(0, 0), box(10, 0)], num_points=[50, 0])
    det = table([box(0, 0), box(10, 0), box(30, 0)], score=[0.9, 0.8, 0.7])
    result = evaluate_detections(det, gt)
    assert result.gt["gt_index"].tolist() == [0]
    assert result.predictions["ignored"].tolist() == [False, True, False]
    assert result.predictions["tp"].tolist() == [True, False, False]
    # Ranked TP then FP (the ignored one left out): PR (1, 1), (1, 1/2): AP 1, 2 predictions.
    assert result.ap() == 1.0 and result.curve().n_pred == 2 and result.curve().n_gt == 1


def test_bad_tables_and_settings():
    gt = table([box(0, 0)])
    with pytest.raises(SchemaError, match="score"):
        evaluate_detections(table([box(0, 0)]), gt)
    with pytest.raises(SchemaError, match="heading"):
        evaluate_detections(table([box(0, 0)], score=1.0), gt.drop(columns="heading"))
    with pytest.raises(SchemaError, match="center_x"):
        evaluate_detections(table([box(np.inf, 0)], score=1.0), gt)
    with pytest.raises(ValueError, match="iou"):
        evaluate_detections(gt.assign(score=1.0), gt, iou="2d")
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_detections(gt.assign(score=1.0), gt, iou_threshold=0.0)


def reference_match(det, gt, threshold, kind):
    """Plain per-frame greedy matching, a loop over predictions."""
    iou_fn = iou_3d if kind == "3d" else bev_iou
    pred_gt = np.full(len(det), -1)
    for key, d in det.groupby(["segment_id", "frame_index", "class"]):
        g = gt[(gt["segment_id"] == key[0]) & (gt["frame_index"] == key[1])]
        g = g[g["class"] == key[2]]
        if g.empty:
            continue
        m = iou_fn(d[BOX_COLUMNS].to_numpy(), g[BOX_COLUMNS].to_numpy())
        taken = np.zeros(len(g), bool)
        for i in np.argsort(-d["score"].to_numpy(), kind="stable"):
            cand = np.where(taken | (m[i] < threshold), -1.0, m[i])
            if cand.max() >= 0:
                j = int(np.argmax(cand))
                taken[j] = True
                pred_gt[d.index[i]] = g.index[j]
    return pred_gt


@pytest.mark.parametrize("kind", ["3d", "bev"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matching_equals_plain_loop(kind, seed):
    rng = np.random.default_rng(seed)
    n_gt = 120
    gt = table(
        [
            box(*rng.uniform(-6, 6, 2), *rng.uniform(1, 6, 2), rng.uniform(-3, 3))
            for _ in range(n_gt)
        ],
        frame=rng.integers(0, 5, n_gt),
        cls=rng.choice(["vehicle", "cyclist"], n_gt),
    )
    det = gt.sample(150, replace=True, random_state=seed).reset_index(drop=True)
    det[["center_x", "center_y", "center_z"]] += rng.normal(0, 0.6, (150, 3))
    det["score"] = rng.choice([0.1, 0.4, 0.7, 0.9], 150)  # many ties
    result = evaluate_detections(det, gt, 0.3, kind, classes=("vehicle", "cyclist"))
    expected = reference_match(det, gt, 0.3, kind)
    assert 20 < (expected >= 0).sum() < 150
    assert result.predictions["gt_index"].tolist() == expected.tolist()


# ---------------------------------------------------------------- size subsets


def test_matched_prediction_counts_for_its_ground_truths_subset():
    # A 7.5 m GT (Large) found by a 6.5 m prediction (Regular by its own size).
    gt = table([box(0, 0, 7.5, 2.5), box(20, 0)])
    det = table([box(-0.5, 0, 6.5, 2.5), box(20, 0)], score=[0.9, 0.8])
    result = evaluate_detections(det, gt)
    assert result.predictions["subset"].tolist() == ["large", "regular"]
    assert result.gt["subset"].tolist() == ["large", "regular"]
    large, regular = result.curve("large"), result.curve("regular")
    assert (large.n_gt, large.n_pred, large.n_tp, large.ap) == (1, 1, 1, 1.0)
    assert (regular.n_gt, regular.n_pred, regular.n_tp, regular.ap) == (1, 1, 1, 1.0)


def test_unmatched_large_prediction_is_a_large_false_positive_only():
    gt = table([box(0, 0), box(20, 0, 10, 2.5)])  # one Regular, one Large
    det = table(
        [box(50, 50, 12, 2.5), box(0, 0), box(20, 0, 10, 2.5)],  # Large FP, two TPs
        score=[0.9, 0.8, 0.5],
    )
    result = evaluate_detections(det, gt)
    assert result.predictions["subset"].tolist() == ["large", "regular", "large"]
    # Regular: its one TP only -> AP 1.
    assert result.curve("regular").n_pred == 1 and result.ap("regular") == 1.0
    # Large: FP (0.9) then TP (0.5): PR (0, 0), (1, 1/2) -> AP 1/2.
    assert result.curve("large").n_pred == 2 and result.ap("large") == 0.5
    # All: FP, TP, TP over 2 GT: PR (0, 0), (1/2, 1/2), (1, 2/3) -> envelope 2/3 -> AP 2/3.
    assert result.ap("all") == pytest.approx(2 / 3)
    summary = result.summary().set_index("subset")
    assert summary.loc["large", "n_gt"] == 1 and summary.loc["small", "n_pred"] == 0
    assert np.isnan(summary.loc["small", "ap"])


# ---------------------------------------------------------------- recall by group


def test_recall_by_group_from_flags():
    out = recall_by_group([True, False, True, True], ["b", "a", "a", "b"])
    assert out["group"].tolist() == ["a", "b"]
    assert out["n_gt"].tolist() == [2, 2] and out["n_detected"].tolist() == [1, 2]
    assert out["recall"].tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="entries"):
        recall_by_group([True], ["a", "b"])
    with pytest.raises(ValueError, match="DetectionEval"):
        recall_by_group([True], ["a"], score_threshold=0.5)


def test_recall_by_group_keeps_empty_bins_and_applies_a_score_threshold():
    gt = table([box(0, 0), box(10, 0), box(20, 0)], subtype=["sedan", "bus", "sedan"])
    det = table([box(0, 0), box(10, 0)], score=[0.9, 0.3])
    result = evaluate_detections(det, gt)
    by_subtype = recall_by_group(result, "subtype")
    assert by_subtype.set_index("group")["recall"].to_dict() == {"bus": 1.0, "sedan": 0.5}
    high = recall_by_group(result, "subtype", score_threshold=0.5).set_index("group")
    assert high["n_detected"].to_dict() == {"bus": 0, "sedan": 1}
    bins = pd.cut(pd.Series([0.1, 0.2, 0.9]), [0, 0.5, 0.8, 1.0])
    out = recall_by_group(result, bins)
    assert out["n_gt"].tolist() == [2, 0, 1]
    assert out["recall"].iloc[0] == 1.0 and np.isnan(out["recall"].iloc[1])
    with pytest.raises(KeyError, match="rareness"):
        recall_by_group(result, "rareness")


# ---------------------------------------------------------------- the tiny world


def test_tiny_world_labels_as_predictions_and_jittered(tiny_world):
    gt = tiny_world.boxes
    perfect = evaluate_detections(gt.assign(score=1.0), gt)
    assert perfect.curve("regular").n_gt > 100
    assert perfect.ap("all") == 1.0 and perfect.ap("regular") == 1.0
    assert perfect.gt["matched"].all()
    assert (recall_by_group(perfect, "subtype")["recall"] == 1.0).all()

    rng = np.random.default_rng(0)
    angle = rng.uniform(-np.pi, np.pi, len(gt))
    jittered = gt.assign(
        center_x=gt["center_x"] + 1.5 * np.cos(angle),
        center_y=gt["center_y"] + 1.5 * np.sin(angle),
        score=rng.uniform(0, 1, len(gt)),
    )
    for kind in ("3d", "bev"):
        shifted = evaluate_detections(jittered, gt, iou=kind)
        assert shifted.ap("all") < 0.3 and shifted.ap("regular") < 0.3
        # Longer boxes tolerate a 1.5 m shift better.
        assert shifted.gt.groupby("subset")["matched"].mean()["large"] > 0.2
