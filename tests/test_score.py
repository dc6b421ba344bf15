from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rem_core.config import ScoreConfig
from rem_core.mining import aggregate_tracks, d_rem, easy_filter, m_rem, md_rem, rareness_percentile

CONFIG = ScoreConfig()  # more than 200 points, closer than 50 m


def test_easy_filter_thresholds_are_strict():
    points = np.array([201, 200, 5000, 300])
    distance = np.array([10.0, 10.0, 50.0, 49.9])
    assert easy_filter(points, distance, CONFIG).tolist() == [True, False, False, True]


def test_scores_hand_case():
    log_prob = np.array([-3.0, 1.5, -10.0])
    points = np.array([500, 500, 20])
    distance = np.array([20.0, 30.0, 20.0])
    variance = np.array([0.04, 0.01, 0.09])
    assert d_rem(log_prob).tolist() == [3.0, -1.5, 10.0]
    assert m_rem(variance, points, distance, CONFIG).tolist() == [0.04, 0.01, 0.0]
    md = md_rem(log_prob, points, distance, CONFIG)
    assert md[:2].tolist() == [3.0, -1.5] and md[2] == -np.inf
    # A filtered object ranks below every kept one, even one with negative rareness.
    assert np.argsort(-md).tolist() == [0, 1, 2]


def test_track_aggregation_mean_min_count():
    boxes = pd.DataFrame(
        {"segment_id": ["a", "a", "a", "b", "b"], "track_id": ["t1", "t1", "t2", "t1", None]}
    )
    out = aggregate_tracks(boxes, [-1.0, -3.0, -0.5, -8.0, -100.0])
    assert out[["segment_id", "track_id"]].values.tolist() == [
        ["b", "t1"],
        ["a", "t1"],
        ["a", "t2"],
    ]
    assert out["mean_log_prob"].tolist() == [-8.0, -2.0, -0.5]
    assert out["min_log_prob"].tolist() == [-8.0, -3.0, -0.5]
    assert out["num_boxes"].tolist() == [1, 2, 1]
    with pytest.raises(ValueError, match="3 values for 5 boxes"):
        aggregate_tracks(boxes, [1.0, 2.0, 3.0])


def test_percentile_rank():
    p = rareness_percentile([1.0, 3.0, 2.0, 3.0])
    assert p.tolist() == [25.0, 87.5, 50.0, 87.5]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"min_points": -1}, "score.min_points"), ({"max_distance_m": 0.0}, "score.max_distance_m")],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        ScoreConfig(**kwargs)
