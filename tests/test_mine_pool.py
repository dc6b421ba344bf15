"""Selection methods, composition and export of mining (rem_core.mining), on a hand-made pool."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.config import MINING_METHODS, MiningConfig, RemConfig, ScoreConfig
from rem_core.mining import (
    MINED_COLUMNS,
    MiningPool,
    compare_methods,
    describe_pool,
    mine,
    rank_detections,
    read_mined,
    write_label_set,
    write_mined,
)
from rem_core.schema import BOX_COLUMNS

# Four ground-truth tracks over two frames of one segment, far apart on a plane:
#   c1: a sedan, c2: a sedan far away (hard), bus: a 12 m bus, roof: a roof_load.
TRACKS = {
    "c1": dict(x=10.0, length=4.5, subtype="sedan", points=400, distance=10.0),
    "c2": dict(x=60.0, length=4.5, subtype="sedan", points=40, distance=60.0),
    "bus": dict(x=-20.0, length=12.0, subtype="bus", points=900, distance=20.0),
    "roof": dict(x=30.0, length=4.8, subtype="roof_load", points=300, distance=30.0),
}


def _box(x: float, length: float, y: float = 0.0) -> dict:
    return dict(center_x=x, center_y=y, center_z=1.0, length=length, width=2.0, height=1.8,
                heading=0.0)  # fmt: skip


def make_pool() -> MiningPool:
    gt, det = [], []
    for frame in (0, 1):
        for track, t in TRACKS.items():
            gt.append(
                dict(
                    segment_id="s",
                    frame_index=frame,
                    track_id=track,
                    subtype=t["subtype"],
                    num_points=t["points"],
                    distance=t["distance"],
                    label_noise=(track == "roof" and frame == 1),
                    **{"class": "vehicle"},
                    **_box(t["x"], t["length"]),
                )  # fmt: skip
            )
            # a detection slightly off the box, predicted a little short
            det.append(
                dict(
                    segment_id="s",
                    frame_index=frame,
                    track_id=f"d-{track}",
                    num_points=t["points"],
                    distance=t["distance"],
                    score=0.9,
                    **{"class": "vehicle"},
                    **_box(t["x"] + 0.3, t["length"] * 0.9),
                )  # fmt: skip
            )
    # a false positive, far from everything
    det.append(
        dict(
            segment_id="s",
            frame_index=0,
            track_id="d-fp",
            num_points=250,
            distance=40.0,
            score=0.5,
            **{"class": "vehicle"},
            **_box(0.0, 4.0, y=40.0),
        )  # fmt: skip
    )
    detections = pd.DataFrame(det)
    gt = pd.DataFrame(gt)
    # rows: c1, c2, bus, roof (frame 0), the same (frame 1), fp
    log_prob = np.array([-1, -9, -6, -7, -1, -8, -6, -7, -20], float)
    variance = np.array([0.01, 0.2, 0.05, 0.1, 0.01, 0.2, 0.05, 0.1, 0.3])
    gt_log_prob = np.array([-1, -8, -6, -7, -1, -8, -6, -7], float)
    labels = detections.iloc[:8].assign(track_id=[f"a-{t}" for t in TRACKS] * 2)
    return MiningPool(
        detections=detections,
        log_prob=log_prob,
        variance=variance,
        gt=gt,
        gt_log_prob=gt_log_prob,
        autolabels=labels.reset_index(drop=True),
    )


def config(budget: int | str = 1, **mining) -> RemConfig:
    return RemConfig(mining=MiningConfig(budget=budget, **mining))


def test_pool_counts_tracks_and_checks_lengths():
    pool = make_pool()
    assert pool.num_tracks == 4
    with pytest.raises(ValueError, match="log_prob has 3 values for 9 rows"):
        dataclasses.replace(pool, log_prob=np.zeros(3))


def test_every_method_ranks_by_its_own_value():
    pool = make_pool()
    score = ScoreConfig()  # easy: > 200 points and < 50 m
    r = {m: rank_detections(pool, m, score=score, rank_by="detection") for m in MINING_METHODS}
    np.testing.assert_array_equal(r["d_rem"], -pool.log_prob)
    np.testing.assert_array_equal(r["ensemble"], pool.variance)
    easy = np.array([1, 0, 1, 1, 1, 0, 1, 1, 1], bool)  # c2 is far with few points
    np.testing.assert_array_equal(r["m_rem"], np.where(easy, pool.variance, 0))
    np.testing.assert_array_equal(r["md_rem"], np.where(easy, -pool.log_prob, -np.inf))
    np.testing.assert_allclose(r["predict_size"], [4.05, 4.05, 10.8, 4.32] * 2 + [4.0])
    # oracles: the fp is ranked last; size is the ground truth's, hard is 1 - IoU x score
    np.testing.assert_allclose(r["oracle_size"][:8], [4.5, 4.5, 12, 4.8] * 2)
    assert r["oracle_size"][8] == r["oracle_hard"][8] == -np.inf
    assert np.all((r["oracle_hard"][:8] > 0.1) & (r["oracle_hard"][:8] < 0.5))
    inter = (2.25 - (0.3 - 4.05 / 2)) * 2.0  # x overlap 3.975 m, width 2 m
    assert r["oracle_hard"][0] == pytest.approx(1 - 0.9 * inter / (4.5 * 2 + 4.05 * 2 - inter))
    rnd = rank_detections(pool, "random", seed=3, rank_by="detection")
    np.testing.assert_array_equal(rnd, rank_detections(pool, "random", seed=3, rank_by="detection"))
    assert not np.array_equal(rnd, rank_detections(pool, "random", seed=4, rank_by="detection"))
    with pytest.raises(ValueError, match="unknown 'rem'"):
        rank_detections(pool, "rem")
    nan_pool = dataclasses.replace(pool, variance=np.full(9, np.nan))
    with pytest.raises(ValueError, match="9 detections have no ensemble scores"):
        rank_detections(nan_pool, "m_rem")


def test_ranking_by_track_takes_the_mean_over_the_predicted_track():
    pool = make_pool()
    # Split c2's detections into two predicted tracks, and leave the bus untracked.
    det = pool.detections.copy()
    det.loc[5, "track_id"] = "d-c2b"
    det.loc[[2, 6], "track_id"] = None
    pool = dataclasses.replace(pool, detections=det)
    d = rank_detections(pool, "d_rem")
    np.testing.assert_array_equal(d, [1, 9, 6, 7, 1, 8, 6, 7, 20])
    pool.log_prob[4] = -3.0  # c1 now differs between its frames
    np.testing.assert_array_equal(rank_detections(pool, "d_rem")[[0, 4]], [2, 2])
    # MD-REM: hard detections are left out of the mean; a track of hard ones ranks last.
    det.loc[0, "num_points"] = 10
    md = rank_detections(pool, "md_rem")
    assert md[0] == md[4] == 3.0 and md[1] == md[5] == -np.inf
    # Random and the oracles rank detection by detection.
    for method in ("random", "oracle_size", "oracle_hard"):
        np.testing.assert_array_equal(
            rank_detections(pool, method, seed=1),
            rank_detections(pool, method, seed=1, rank_by="detection"),
        )
    with pytest.raises(ValueError, match="rank_by: must be"):
        rank_detections(pool, "d_rem", rank_by="frame")


def test_mine_and_compose_hand_case():
    pool = make_pool()
    # D-REM: the fp (rarest) is checked and yields nothing, then c2 is found.
    mined = mine(pool, "d_rem", config(budget=1))
    assert mined.result.tracks["track_id"].tolist() == ["c2"]
    c = mined.composition
    assert (c.tracks, c.boxes, c.checks, c.false_positives) == (1, 2, 2, 1)
    assert c.large_share == 0 and c.hard_share == 1.0 and c.mean_rareness == 8.0
    # MD-REM skips the hard c2: the roof_load (log p -7) comes next.
    mined = mine(pool, "md_rem", config(budget=2))
    assert mined.result.tracks["track_id"].tolist() == ["roof", "bus"]
    c = mined.composition
    assert c.large_share == 0.5 and c.irregular_share == 0.5
    assert c.label_noise_share == 0.25 and c.hard_share == 0.0
    assert c.mean_rareness == pytest.approx(6.5)
    # The merged label set: 2 tracks by hand, the 2 auto-labelled tracks they do not overlap.
    assert (mined.labels["source"] == "human").sum() == 4
    assert sorted(set(mined.labels.loc[mined.labels["source"] == "auto", "track_id"])) == [
        "a-c1",
        "a-c2",
    ]
    whole = describe_pool(pool)
    assert (whole.tracks, whole.boxes, whole.large_share) == (4, 8, 0.25)


def test_compare_methods_puts_the_pool_first_and_every_method_after():
    table = compare_methods(make_pool(), config(budget="50%"))
    assert table["method"].tolist() == ["pool", *MINING_METHODS]
    assert (table.loc[1:, "budget"] == 2).all() and (table.loc[1:, "tracks"] == 2).all()
    by = table.set_index("method")
    assert by.loc["oracle_size", "large_share"] == 0.5  # the bus first
    assert by.loc["predict_size", "large_share"] == 0.5
    assert by.loc["pool", "tracks"] == 4


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_write_mined_round_trips(tmp_path: Path, suffix: str):
    mined = mine(make_pool(), "md_rem", config(budget=2))
    table = mined.boxes
    assert list(table.columns) == MINED_COLUMNS
    assert table["rank"].tolist() == [1, 1, 2, 2] and table["method"].eq("md_rem").all()
    path = write_mined(table, tmp_path / f"mined{suffix}")
    back = read_mined(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    with pytest.raises(FileExistsError, match="exists"):
        write_mined(table, path)
    write_mined(table, path, force=True)


def test_json_nests_boxes_under_tracks(tmp_path: Path):
    mined = mine(make_pool(), "md_rem", config(budget=2))
    doc = json.loads(write_mined(mined.boxes, tmp_path / "m.json").read_text())
    assert doc["method"] == "md_rem" and doc["budget"] == 2
    assert [t["track_id"] for t in doc["tracks"]] == ["roof", "bus"]
    assert doc["tracks"][0]["frames"] == [0, 1]
    assert doc["tracks"][0]["boxes"][1]["label_noise"] is True
    assert set(BOX_COLUMNS) <= set(doc["tracks"][0]["boxes"][0])


def test_mined_tracks_are_one_row_a_track_in_rank_order():
    from rem_core.mining import mined_tracks

    boxes = mine(make_pool(), "md_rem", config(budget=2)).boxes
    tracks = mined_tracks(boxes)
    assert tracks["rank"].tolist() == [1, 2] and tracks["track_id"].tolist() == ["roof", "bus"]
    assert tracks["frames"].tolist() == [2, 2] and tracks["label_noise"].tolist()[0] == 1
    first = boxes[boxes["rank"] == 1]
    assert tracks["length"].iloc[0] == first["length"].median()
    assert tracks["track_rareness"].iloc[0] == first["track_rareness"].iloc[0]


def test_write_mined_rejects_bad_paths(tmp_path: Path):
    mined = mine(make_pool(), "d_rem", config(budget=1))
    with pytest.raises(ValueError, match="unknown format '.xlsx'"):
        write_mined(mined.boxes, tmp_path / "m.xlsx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_mined(mined.boxes, tmp_path / "no" / "m.csv")
    with pytest.raises(ValueError, match="missing columns"):
        write_mined(mined.boxes.drop(columns="rank"), tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_label_set_as_waymo_objects(tmp_path: Path):
    from rem_core.io import read_objects

    mined = mine(make_pool(), "md_rem", config(budget=2))
    frames = pd.DataFrame(
        {"segment_id": ["s", "s"], "frame_index": [0, 1], "timestamp_micros": [0, 100_000]}
    )
    path = write_label_set(mined.labels, frames, tmp_path / "labels.bin")
    back = read_objects(path)
    assert len(back) == len(mined.labels) == 8
    human = back["track_id"].isin(["roof", "bus"]).to_numpy()
    assert (back.loc[human, "score"] == 1.0).all()
    np.testing.assert_allclose(back.loc[~human, "score"], 0.9, rtol=1e-6)
    with pytest.raises(ValueError, match="must end in .bin"):
        write_label_set(mined.labels, frames, tmp_path / "labels.parquet")
