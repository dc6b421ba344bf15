from __future__ import annotations

import numpy as np
import pytest

from rem_core.analysis import auroc, recall_by_rareness


def test_recall_falls_with_rareness():
    rng = np.random.default_rng(0)
    rareness = rng.normal(size=1000)
    # The rarer the object, the less often it is detected.
    p_detect = 1 / (1 + np.exp(2 * rareness))
    detected = rng.random(1000) < p_detect
    curve = recall_by_rareness(detected, rareness, bin_width=10)
    assert len(curve.bins) == 10
    assert curve.bins["n_gt"].sum() == 1000
    assert curve.bins["recall"].iloc[0] > 0.8 > 0.2 > curve.bins["recall"].iloc[-1]
    assert curve.spearman < -0.9
    assert curve.bins["lower"].iloc[0] == 0 and curve.bins["upper"].iloc[-1] == 100


def test_recall_bins_hand_case():
    curve = recall_by_rareness([True, True, False, False], [1.0, 2.0, 3.0, 4.0], bin_width=50)
    assert curve.bins["recall"].tolist() == [1.0, 0.0]
    assert curve.bins["n_gt"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="bin_width"):
        recall_by_rareness([True], [1.0], bin_width=3)


def test_auroc_extremes_and_errors():
    assert auroc([5.0, 6.0], [1.0, 2.0, 3.0]) == 1.0
    assert auroc([1.0, 2.0], [5.0, 6.0]) == 0.0
    assert auroc([1.0, 2.0], [1.0, 2.0]) == 0.5
    with pytest.raises(ValueError, match="both sets"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auroc([np.inf], [1.0])


def test_log_prob_groups_and_aurocs():
    import pandas as pd

    from rem_core.analysis import log_prob_groups, ood_aurocs

    gt = pd.DataFrame(
        {
            "segment_id": ["v", "v", "v", "o", "v", "s"],
            "track_id": ["a", "b", "c", "d", "e", "f"],
            "class": ["vehicle", "vehicle", "vehicle", "vehicle", "pedestrian", "vehicle"],
            "subtype": ["sedan", "sedan", "bus", "van", "pedestrian", "sedan"],
            "length": [4.5, 4.6, 12.0, 5.0, 0.6, 4.5],
            "width": [1.8, 1.8, 2.5, 2.0, 0.6, 1.8],
            "height": [1.5, 1.5, 3.2, 2.0, 1.8, 1.5],
        }
    )
    splits = pd.Series({"v": "validation", "o": "ood", "s": "source"})
    groups = log_prob_groups(gt, [-1.0, -2.0, -9.0, -1.5, -20.0, -30.0], splits)
    assert groups["set"].tolist() == [
        "validation",
        "validation",
        "large",
        "other region",
        "pedestrian",
        "",
    ]
    assert groups["size"].tolist() == ["regular", "regular", "large", "regular", "", "regular"]
    aurocs = ood_aurocs(groups)
    assert aurocs["large"] == 1.0 and aurocs["pedestrian"] == 1.0
    assert aurocs["other region"] == 0.5


def test_track_table_describes_ground_truth_and_detected_tracks(tiny_world):
    from rem_core.analysis import track_table

    gt = tiny_world.boxes.reset_index(drop=True)
    gt = gt.assign(noise_kind=np.where(gt["label_noise"], "shifted", ""))
    rng = np.random.default_rng(0)
    log_prob = rng.normal(size=len(gt))
    table = track_table(tiny_world, gt, log_prob, gt=gt)
    assert table["rareness"].is_monotonic_decreasing  # rarest first
    assert len(table) == gt.groupby(["segment_id", "track_id"]).ngroups
    first = table.iloc[0]
    rows = (gt["segment_id"] == first["segment_id"]) & (gt["track_id"] == first["track_id"])
    assert first["rareness"] == pytest.approx(-log_prob[rows.to_numpy()].mean())
    split = tiny_world.segments.set_index("segment_id")["split"][first["segment_id"]]
    assert first["split"] == split
    noisy = table[table["label_noise_boxes"] > 0]
    assert (noisy["noise_kinds"] == "shifted").all() and (table["noise_kinds"] != "").sum() == len(
        noisy
    )
    assert table["percentile"].between(0, 100).all()
    detections = gt.assign(distance=np.hypot(gt["center_x"], gt["center_y"]))
    det_table = track_table(tiny_world, detections, log_prob)
    assert (det_table["class"] == "vehicle").all() and (det_table["noise_kinds"] == "").all()
    assert set(det_table.columns) == set(table.columns)
