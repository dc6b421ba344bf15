"""Rareness along a track (``rem_core.analysis.box_in_track``): a box whose log p falls far
below the rest of its own track is flagged; a rare but consistent track is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rem_core.analysis import box_in_track, boxes_to_recheck, label_noise_in_rarest
from rem_core.density import GaussianDensity
from rem_core.errors import InputError


def tracks(n_tracks: int, length: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": np.repeat([f"s{i % 3}" for i in range(n_tracks)], length),
            "track_id": np.repeat([f"t{i}" for i in range(n_tracks)], length),
            "frame_index": np.tile(np.arange(length), n_tracks),
        }
    )


def test_one_displaced_box_of_a_track_is_flagged_through_a_fitted_density():
    # 40 tracks of 8 boxes: each object's features sit near its own centre; one box of
    # track 7 is displaced (a bad box), and all of track 3 lies off the common mass (a
    # rare object). A density fitted on them all gives the log p.
    rng = np.random.default_rng(0)
    boxes = tracks(40, 8)
    centres = rng.normal(0.0, 1.0, (40, 4))
    centres[3] += 4.0
    features = np.repeat(centres, 8, axis=0) + rng.normal(0.0, 0.1, (320, 4))
    bad = 7 * 8 + 5
    features[bad] += np.array([3.0, -3.0, 3.0, -3.0])
    log_prob = GaussianDensity().fit(features).score_samples(features)

    result = box_in_track(boxes, log_prob)
    ranked = boxes_to_recheck(boxes, log_prob, result)
    assert ranked["box_in_track"].is_monotonic_decreasing
    assert ranked["row"].iloc[0] == bad and ranked["flagged"].iloc[0]
    assert ranked.loc[0, ["segment_id", "track_id", "frame_index"]].tolist() == ["s1", "t7", 5]
    # far beyond the next box (the density's own tails flag a few ordinary boxes, under 3%)
    assert ranked["box_in_track"].iloc[0] > 10 * ranked["box_in_track"].iloc[1]
    assert result.flagged.mean() < 0.03
    rare = boxes["track_id"].eq("t3").to_numpy()
    # globally the rare track's boxes are the rarest; along their track none stands out
    assert np.min(-log_prob[rare]) > np.quantile(-log_prob[~rare], 0.99)
    assert not result.flagged[rare].any()


def test_the_score_is_robust_units_below_the_track_median():
    boxes = tracks(2, 5)
    log_prob = np.array([-10, -11, -9, -10, -30, -20, -20, -21, -19, -20], dtype=float)
    result = box_in_track(boxes, log_prob)
    np.testing.assert_array_equal(result.track_median, [-10.0] * 5 + [-20.0] * 5)
    residual = np.array([0, 1, -1, 0, 20, 0, 0, 1, -1, 0], dtype=float)
    unit = 1.4826 * np.median(np.abs(residual))
    assert result.unit == pytest.approx(unit)
    np.testing.assert_allclose(result.score, residual / unit)
    assert result.flagged.tolist() == [False] * 4 + [True] + [False] * 5


def test_short_tracks_and_boxes_without_a_track_or_log_p_are_not_scored():
    boxes = tracks(3, 4)
    boxes.loc[8:, "track_id"] = [None, None, "t2", "t2"]  # track 2 keeps 2 boxes
    log_prob = -np.arange(12.0)
    log_prob[1] = np.nan  # track 0 keeps 3 boxes with a log p
    result = box_in_track(boxes, log_prob)
    scored = np.isfinite(result.score)
    assert scored.tolist() == [True, False, True, True] + [True] * 4 + [False] * 4
    assert not result.flagged[~scored].any()
    assert np.isnan(box_in_track(boxes, log_prob, min_boxes=5).score).all()
    assert np.isnan(box_in_track(boxes, log_prob, min_boxes=5).unit)


def test_the_order_of_the_rows_does_not_matter():
    rng = np.random.default_rng(1)
    boxes = tracks(6, 7)
    log_prob = rng.normal(-20, 3, len(boxes))
    order = rng.permutation(len(boxes))
    straight = box_in_track(boxes, log_prob)
    shuffled = box_in_track(boxes.iloc[order].reset_index(drop=True), log_prob[order])
    np.testing.assert_allclose(shuffled.score, straight.score[order])


def test_bad_arguments_are_named():
    boxes = tracks(1, 4)
    with pytest.raises(InputError, match="log_prob"):
        box_in_track(boxes, np.zeros(3))
    with pytest.raises(InputError, match="min_boxes"):
        box_in_track(boxes, np.zeros(4), min_boxes=2)
    with pytest.raises(InputError, match="track_id"):
        box_in_track(boxes.drop(columns="track_id"), np.zeros(4))


def test_label_noise_ranked_by_another_score_counts_unscored_boxes_as_missed():
    gt = tracks(4, 5).assign(**{"class": "vehicle", "label_noise": False})
    gt.loc[[3, 17], "label_noise"] = True
    log_prob = np.linspace(-5, -25, 20)
    by_rareness = label_noise_in_rarest(gt, log_prob, 0.1)
    assert label_noise_in_rarest(gt, log_prob, 0.1, rank_by=-log_prob) == by_rareness
    score = np.full(20, np.nan)
    score[3] = 9.0  # box 17 is not scored: found by nothing
    found = label_noise_in_rarest(gt, log_prob, 0.1, rank_by=score)
    assert (found.n_noise, found.n_noise_in_rarest, found.n_rarest) == (2, 1, 1)
    with pytest.raises(InputError, match="rank_by"):
        label_noise_in_rarest(gt, log_prob, 0.1, rank_by=np.zeros(3))
