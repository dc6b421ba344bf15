"""Rare beyond size (rem_core.analysis.rare_groups) on small tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from rem_core.analysis import (
    NOISE_ALL,
    ks_train_val,
    label_noise_in_rarest,
    rare_group_aurocs,
    regular_vehicles,
    size_log_prob,
    size_train_boxes,
)
from rem_core.config import VEHICLE_SUBTYPES

# Subtypes picked by family, so the tests follow VEHICLE_SUBTYPES as it grows.
REGULAR = next(s for s, f in VEHICLE_SUBTYPES.items() if f == "regular")
IRREGULAR = next(s for s, f in VEHICLE_SUBTYPES.items() if f == "irregular")
LARGE = next(s for s, f in VEHICLE_SUBTYPES.items() if f == "large")


def boxes(
    n: int,
    *,
    subtype: str = REGULAR,
    cls: str = "vehicle",
    segment: str = "val",
    size: tuple[float, float, float] = (4.6, 1.85, 1.5),
    noise: str = "",
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` boxes around ``size`` (5% log-normal spread), ``BOXES`` columns used here."""
    rng = np.random.default_rng(seed)
    lwh = np.asarray(size) * np.exp(rng.normal(0, 0.05, size=(n, 3)))
    return pd.DataFrame(
        {
            "segment_id": segment,
            "track_id": [f"{subtype}-{noise}-{i}" for i in range(n)],
            "class": cls,
            "subtype": subtype,
            "length": lwh[:, 0],
            "width": lwh[:, 1],
            "height": lwh[:, 2],
            "label_noise": noise != "",
            "noise_kind": noise,
        }
    )


SPLITS = pd.Series({"val": "validation", "pool": "unlabelled", "src": "source", "rain": "ood"})


def test_size_log_prob_is_the_gaussian_of_log_sizes() -> None:
    train, test = boxes(200, seed=1), boxes(10, size=(12.0, 2.5, 3.2), seed=2)
    logs = np.log(train[["length", "width", "height"]].to_numpy())
    oracle = multivariate_normal(
        logs.mean(0), np.cov(logs, rowvar=False, bias=True) + 1e-6 * np.eye(3)
    )
    got = size_log_prob(train, test)
    np.testing.assert_allclose(got, oracle.logpdf(np.log(test[["length", "width", "height"]])))
    assert got.max() < size_log_prob(train, train).min()  # a bus is less likely than any car
    with pytest.raises(ValueError, match="> 0"):
        size_log_prob(train, test.assign(width=0.0))
    with pytest.raises(ValueError, match="4 boxes"):
        size_log_prob(train.head(3), test)


def test_size_train_boxes_are_the_training_pool_regular_clean_vehicles() -> None:
    gt = pd.concat(
        [
            boxes(5, segment="src"),
            boxes(4, segment="pool"),
            boxes(3, segment="val"),  # held out
            boxes(2, segment="pool", subtype=LARGE),
            boxes(2, segment="pool", noise="partial"),
            boxes(2, segment="pool", subtype="pedestrian", cls="pedestrian"),
            boxes(2, segment="pool", subtype="vehicle"),  # unknown subtype: not regular
        ],
        ignore_index=True,
    )
    assert regular_vehicles(gt).sum() == 12
    picked = size_train_boxes(gt, SPLITS)
    assert len(picked) == 9
    assert set(picked["segment_id"]) == {"src", "pool"} and set(picked["subtype"]) == {REGULAR}
    assert len(size_train_boxes(gt, SPLITS, ("source",))) == 5


def rare_world() -> tuple[pd.DataFrame, np.ndarray]:
    """Regular cars; an irregular subtype of car size that the features find rare; a large
    subtype the features do not; two new kinds of label noise, one with too few boxes."""
    parts = [
        (boxes(300, seed=1), 0.0),
        (boxes(300, segment="pool", seed=2), 0.0),
        (boxes(100, subtype=IRREGULAR, seed=3), -10.0),  # rare in features, not in size
        (boxes(100, subtype=LARGE, size=(12.0, 2.5, 3.2), seed=4), 0.0),  # rare in size only
        (boxes(30, segment="pool", noise="shifted", seed=5), -10.0),
        (boxes(5, noise="heading_90", seed=6), -10.0),
        (boxes(50, subtype=IRREGULAR, segment="src", seed=7), 0.0),  # not measured
        (boxes(50, subtype="pedestrian", cls="pedestrian", seed=8), -50.0),
    ]
    gt = pd.concat([p for p, _ in parts], ignore_index=True)
    rng = np.random.default_rng(9)
    log_prob = np.concatenate([shift + rng.normal(0, 1, len(p)) for p, shift in parts])
    return gt, log_prob


def test_rare_group_aurocs_tell_rareness_from_size() -> None:
    gt, log_prob = rare_world()
    size_lp = size_log_prob(size_train_boxes(gt, SPLITS), gt)
    result = rare_group_aurocs(gt, log_prob, size_lp, SPLITS)
    t = result.table.set_index("group")
    assert result.n_reference == 600 and result.eval_splits == ("validation", "unlabelled")
    # rare subtypes by family ("irregular" < "large"), then kinds of noise, then all noise
    assert list(t.index) == [IRREGULAR, LARGE, "heading_90", "shifted", NOISE_ALL]
    assert t.loc[IRREGULAR, "n"] == 100  # the source split's 50 are not measured
    assert t.loc[IRREGULAR, "d_rem"] > 0.99
    assert abs(t.loc[IRREGULAR, "size_only"] - 0.5) < 0.1
    assert t.loc[IRREGULAR, "regular_size"]
    assert t.loc[LARGE, "size_only"] == 1.0 and abs(t.loc[LARGE, "d_rem"] - 0.5) < 0.1
    assert not t.loc[LARGE, "regular_size"]
    assert t.loc["shifted", "n"] == 30 and t.loc["shifted", "d_rem"] > 0.99
    assert t.loc["heading_90", "n"] == 5
    assert math.isnan(t.loc["heading_90", "d_rem"]) and math.isnan(t.loc["heading_90", "size_only"])
    assert t.loc[NOISE_ALL, "n"] == 35 and t.loc[NOISE_ALL, "kind"] == "label noise"
    assert t.loc[IRREGULAR, "family"] == "irregular" and t.loc[LARGE, "family"] == "large"
    assert set(result.beyond_size(0.1)) == {IRREGULAR, "shifted", NOISE_ALL}
    as_dict = result.as_dict()
    assert as_dict[IRREGULAR]["n"] == 100 and as_dict[IRREGULAR]["regular_size"] is True
    assert math.isnan(as_dict["heading_90"]["d_rem"])
    # only the validation split: the pool's noise is gone, its cars leave the reference
    val = rare_group_aurocs(gt, log_prob, size_lp, SPLITS, eval_splits=("validation",))
    assert val.n_reference == 300
    assert val.table.set_index("group").loc["shifted", "n"] == 0


def test_rare_group_aurocs_leave_out_boxes_without_log_p() -> None:
    gt, log_prob = rare_world()
    size_lp = size_log_prob(size_train_boxes(gt, SPLITS), gt)
    irregular = np.flatnonzero(
        (gt["subtype"] == IRREGULAR).to_numpy() & (gt["segment_id"] == "val")
    )
    log_prob[irregular[:90]] = np.nan
    t = rare_group_aurocs(gt, log_prob, size_lp, SPLITS, min_boxes=10).table.set_index("group")
    assert t.loc[IRREGULAR, "n"] == 10 and t.loc[IRREGULAR, "d_rem"] > 0.99
    with pytest.raises(ValueError, match="one value per box"):
        rare_group_aurocs(gt, log_prob[:-1], size_lp, SPLITS)


def test_label_noise_in_rarest_hand_case() -> None:
    # 100 vehicle boxes of rareness 1..100; label noise at 100, 99, 50 and 10. The rarest
    # 5% are rareness 96..100, holding 2 of the 4 label-noise boxes.
    gt = boxes(100)
    rareness = np.arange(1.0, 101.0)
    gt["label_noise"] = np.isin(rareness, [100, 99, 50, 10])
    # pedestrians and another split's vehicles, rarer than all, must not count
    gt = pd.concat(
        [gt, boxes(10, subtype="pedestrian", cls="pedestrian"), boxes(10, segment="rain")],
        ignore_index=True,
    )
    rareness = np.r_[rareness, np.full(20, 1000.0)]
    got = label_noise_in_rarest(gt, -rareness, 0.05, SPLITS, ("validation",))
    assert (got.n_vehicles, got.n_rarest, got.n_noise, got.n_noise_in_rarest) == (100, 5, 4, 2)
    assert got.noise_in_rarest == 0.5
    assert got.rarest_that_are_noise == 0.4
    assert got.base_rate == 0.04
    # without splits every vehicle box is ranked: the 10 rain boxes take 5.5 -> 6 places
    everything = label_noise_in_rarest(gt, -rareness, 0.05)
    assert (everything.n_vehicles, everything.n_rarest, everything.n_noise_in_rarest) == (
        110,
        10,
        0,
    )
    assert everything.noise_in_rarest == 0.0
    with pytest.raises(ValueError, match="share"):
        label_noise_in_rarest(gt, -rareness, 0.0)


def test_label_noise_in_rarest_without_noise_or_vehicles() -> None:
    gt = boxes(40)
    got = label_noise_in_rarest(gt, np.zeros(40), 0.05)
    assert got.n_noise == 0 and math.isnan(got.noise_in_rarest)
    assert got.n_rarest == 40  # all tied with the 2nd rarest
    none = label_noise_in_rarest(gt, np.full(40, np.nan), 0.05)
    assert none.n_vehicles == 0 and math.isnan(none.rarest_that_are_noise)


def test_ks_train_val() -> None:
    train, val = boxes(50, segment="pool"), boxes(50, segment="val")
    noisy = boxes(20, segment="val", noise="merged")  # not compared
    gt = pd.concat([train, val, noisy], ignore_index=True)
    values = np.linspace(-5, 5, 50)
    same = ks_train_val(gt, np.r_[values, values, np.full(20, -99.0)], SPLITS)
    assert same.statistic == 0.0 and (same.n_train, same.n_val) == (50, 50)
    apart = ks_train_val(gt, np.r_[values, values + 100, np.zeros(20)], SPLITS)
    assert apart.statistic == 1.0
    assert math.isnan(ks_train_val(gt, np.zeros(120), SPLITS, val_splits=("ood",)).statistic)
