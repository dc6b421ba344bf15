"""Per-segment results of experiment runs, their bootstrap intervals, and the paper's claims
(rem_core.experiment.segments, rem_core.experiment.stats, rem_core.experiment.claims)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rem_core.config import RemConfig
from rem_core.evaluation import (
    LEVEL_1_MIN_POINTS,
    REPORTED_SUBSETS,
    evaluate_detections,
    precision_recall,
)
from rem_core.experiment import (
    SegmentResults,
    paper_claims,
    plan_experiment,
    read_experiment,
    read_segment_results,
    resampled_ap,
    segment_results,
    write_experiment,
    write_segment_results,
)
from rem_core.experiment.stats import (
    AP_COLUMNS,
    bootstrap_intervals,
    experiment_intervals,
    with_intervals,
)


def fake_run(
    rng: np.random.Generator, n_segments: int, large_recall: float = 0.6
) -> SegmentResults:
    """A run on ``n_segments`` segments of about 30 Regular and 4 Large boxes each: found
    boxes score high, false positives low; ``large_recall`` of the Large boxes are found."""
    regular, large = rng.integers(20, 40, n_segments), rng.integers(2, 7, n_segments)
    gt_segment = np.r_[np.repeat(np.arange(n_segments), regular),
                       np.repeat(np.arange(n_segments), large)]  # fmt: skip
    gt_large = np.r_[np.zeros(regular.sum(), bool), np.ones(large.sum(), bool)]
    found = rng.random(len(gt_segment)) < np.where(gt_large, large_recall, 0.8)
    n_fp = rng.integers(5, 25, n_segments)
    segment = np.r_[gt_segment[found], np.repeat(np.arange(n_segments), n_fp)]
    tp = np.r_[np.ones(found.sum(), bool), np.zeros(n_fp.sum(), bool)]
    is_large = np.r_[gt_large[found], rng.random(n_fp.sum()) < 0.1]
    # scores on a 0.01 grid: ties across segments, as real detections have some
    score = np.round(np.where(tp, rng.beta(4, 1, len(tp)), rng.beta(1, 3, len(tp))), 2)
    order = rng.permutation(len(tp))
    counts = np.stack([np.bincount(gt_segment[m], minlength=n_segments)
                       for m in (np.ones_like(gt_large), ~gt_large, gt_large)], axis=1)  # fmt: skip
    return SegmentResults(
        segments=np.array([f"seg-{i:03d}" for i in range(n_segments)]),
        subsets=REPORTED_SUBSETS,
        pred_segment=segment[order],
        pred_score=score[order],
        pred_tp=tp[order],
        pred_in=np.stack([np.ones(len(tp), bool), ~is_large, is_large], axis=1)[order],
        gt_count=counts,
    )


def runs_of(frames: dict[tuple[str, int], SegmentResults]) -> pd.DataFrame:
    """The runs table of ``frames``: each run's AP as the experiment stores it."""
    records = []
    for (row, seed), f in frames.items():
        ap = f.ap()
        records.append({"row": row, "seed": seed, **{m: ap[m[3:]] for m in AP_COLUMNS}})
    return pd.DataFrame(records)


# --------------------------------------------------------------------------- stored results


def test_stored_arrays_reproduce_the_evaluation_exactly(tiny_world, tmp_path):
    rng = np.random.default_rng(3)
    gt = tiny_world.boxes[tiny_world.boxes["class"] == "vehicle"].reset_index(drop=True)
    gt = gt.assign(num_points=np.where(rng.random(len(gt)) < 0.1, 2, gt["num_points"]))
    hits = gt.sample(frac=0.8, random_state=1)
    hits = hits.assign(center_x=hits["center_x"] + rng.normal(0, 0.3, len(hits)))
    misses = gt.sample(frac=0.3, random_state=2)
    misses = misses.assign(center_y=misses["center_y"] + 30.0)
    det = pd.concat([hits, misses], ignore_index=True)
    det = det.assign(score=np.round(rng.random(len(det)), 2))  # ties too
    result = evaluate_detections(det, gt, 0.5, "3d", min_points=LEVEL_1_MIN_POINTS)
    assert result.predictions["ignored"].any()  # the sparse boxes' predictions are left out
    assert result.curve("large").n_gt > 0 and result.curve("large").n_tp > 0

    frames = segment_results(result, tiny_world.segments["segment_id"])
    path = write_segment_results(tmp_path / "run-seed0.npz", frames)
    assert [p.name for p in tmp_path.iterdir()] == ["run-seed0.npz"]  # no temporary left
    stored = read_segment_results(path)
    for subset, ap in stored.ap().items():
        assert ap == result.ap(subset), subset  # bit for bit
    again = resampled_ap(stored, np.ones((1, len(stored.segments))))[0]
    np.testing.assert_allclose(again, [result.ap(s) for s in REPORTED_SUBSETS], atol=1e-5)


def test_a_file_without_an_array_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, format=np.int64(1), segments=np.array(["a"]))
    with pytest.raises(ValueError, match=r"broken\.npz: .*'subsets'"):
        read_segment_results(path)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_segments=st.integers(1, 6))
def test_resampled_ap_is_the_ap_of_the_segments_drawn(seed, n_segments):
    rng = np.random.default_rng(seed)
    frames = fake_run(rng, n_segments)
    weights = rng.integers(0, 3, size=(5, n_segments)).astype(float)
    fast = resampled_ap(frames, weights)
    for b, w in enumerate(weights.astype(int)):
        times = w[frames.pred_segment]  # each segment taken w[s] times
        for k in range(len(REPORTED_SUBSETS)):
            m = frames.pred_in[:, k]
            slow = precision_recall(
                np.repeat(frames.pred_score[m], times[m]),
                np.repeat(frames.pred_tp[m], times[m]),
                int(w @ frames.gt_count[:, k]),
            ).ap
            np.testing.assert_allclose(fast[b, k], slow, atol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------- bootstrap


def test_interval_contains_the_estimate_and_narrows_with_more_segments():
    widths = []
    for n_segments in (8, 64):
        rng = np.random.default_rng(0)
        frames = {("partial", s): fake_run(rng, n_segments) for s in range(2)}
        runs = runs_of(frames)
        rows = bootstrap_intervals(runs, frames, resamples=500).rows.iloc[0]
        assert rows["segments"] == n_segments and rows["seeds"] == 2
        for metric in AP_COLUMNS:
            assert rows[f"{metric}_low"] <= runs[metric].mean() <= rows[f"{metric}_high"]
        widths.append(rows["ap_large_high"] - rows["ap_large_low"])
    assert widths[1] < widths[0] / 1.5


def test_identical_runs_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    frames = {}
    for seed in range(3):
        frames["random", seed] = frames["md-rem++", seed] = fake_run(rng, 12)
    intervals = bootstrap_intervals(runs_of(frames), frames, resamples=300)
    pair = intervals.comparisons[intervals.comparisons["row"] == "md-rem++"]
    assert len(pair) == 3 and (pair["segments"] == 12).all()
    assert (pair["diff"] == 0).all() and (pair["low"] == 0).all() and (pair["high"] == 0).all()
    assert (pair["verdict"] == "not distinguished").all() and not pair["holds"].any()


def test_a_clearly_better_row_is_above_and_the_claims_say_so():
    rng = np.random.default_rng(2)
    frames = {}
    for seed in range(3):
        frames["partial", seed] = fake_run(rng, 20, large_recall=0.3)
        frames["random", seed] = fake_run(rng, 20, large_recall=0.3)
        frames["ensemble", seed] = fake_run(rng, 20, large_recall=0.3)
        frames["full", seed] = fake_run(rng, 20, large_recall=0.95)
        frames["md-rem++", seed] = fake_run(rng, 20, large_recall=0.95)
    intervals = bootstrap_intervals(runs_of(frames), frames, resamples=500)
    table = intervals.comparisons.set_index(["row", "other", "metric"])
    better = table.loc["md-rem++", "random", "ap_large"]
    assert better["low"] > 0.1 and better["holds"] and better["verdict"] == "above"
    worse = table.loc["random", "partial", "ap_large"]
    assert worse["low"] < 0 < worse["high"]  # the same recipe: no difference shown
    rows = intervals.rows.set_index("row")
    assert rows.loc["md-rem++", "gap_closed_low"] > 0.5 > rows.loc["random", "gap_closed_low"]

    claims = {c.claim: c for c in paper_claims(intervals)}
    assert claims["MD-REM++ beats Random on Large AP"].verdict == "holds"
    assert claims["MD-REM++ beats Ensemble on Large AP"].verdict == "holds"
    assert "holds with 95% confidence" in claims["MD-REM++ beats Random on Large AP"].sentence
    # the budget claim needs the 6% and 9% rows
    assert not any("3% to 6%" in c for c in claims)


def test_same_seed_same_intervals_and_bad_settings_are_named():
    rng = np.random.default_rng(4)
    frames = {("partial", s): fake_run(rng, 6) for s in range(2)}
    runs = runs_of(frames)
    a = bootstrap_intervals(runs, frames, resamples=200, seed=7).rows
    b = bootstrap_intervals(runs, frames, resamples=200, seed=7).rows
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_intervals(runs, frames, resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals(runs, frames, level=95)
    with pytest.raises(ValueError, match="runs: missing column"):
        bootstrap_intervals(runs.drop(columns="ap_large"), frames)


def test_claims_without_shared_seeds_need_more_runs():
    rng = np.random.default_rng(5)
    frames = {
        ("random", 0): fake_run(rng, 8),
        ("md-rem++", 1): fake_run(rng, 8),
        ("md-rem++-6%", 1): fake_run(rng, 8),
        ("md-rem++-9%", 1): fake_run(rng, 8),
    }
    intervals = bootstrap_intervals(runs_of(frames), frames, resamples=200)
    claims = {c.claim: c for c in paper_claims(intervals)}
    random = claims["MD-REM++ beats Random on Large AP"]
    assert random.verdict == "not enough runs" and "no seed both ran" in random.detail
    assert claims["MD-REM++ beats Ensemble on Large AP"].verdict == "not enough runs"
    assert "ensemble" in claims["MD-REM++ beats Ensemble on Large AP"].detail
    budget = claims["MD-REM++'s Large AP does not fall from 3% to 6% to 9%"]
    assert budget.verdict != "not enough runs"  # one shared seed, 8 segments to draw


# --------------------------------------------------------------------------- cached runs


def test_runs_cached_without_per_segment_results_still_get_a_table(tiny_world, tmp_path):
    config = RemConfig.tiny()
    config = dataclasses.replace(
        config,
        experiment=dataclasses.replace(config.experiment, rows=("partial", "random"), seeds=3),
    )
    folder = tmp_path / "experiment" / plan_experiment(config, tiny_world).key
    (folder / "runs").mkdir(parents=True)
    curve = {"lower": [0.0], "upper": [100.0], "n_gt": [4], "n_detected": [2], "recall": [0.5]}
    for row, base in (("partial", 0.5), ("random", 0.6)):
        for seed in range(3):
            record = {
                "row": row, "seed": seed, "ap_all": base + 0.01 * seed,
                "ap_regular": base + 0.02 * seed, "ap_large": base - 0.03 * seed,
                "human_tracks": 1, "human_boxes": 5, "pseudo_boxes": 9, "train_steps": 3,
                "seconds": 1.0, "spearman": 0.0, "curve": curve,
            }  # fmt: skip
            (folder / "runs" / f"{row}-seed{seed}.json").write_text(json.dumps(record))
    result = read_experiment(config, tiny_world, root=tmp_path)
    intervals = experiment_intervals(result, resamples=300)
    assert (intervals.rows["segments"] == 0).all()  # over seeds only
    rows = intervals.rows.set_index("row")
    low, high = rows.loc["random", ["ap_large_low", "ap_large_high"]]
    assert 0.54 <= low < rows.loc["random", "ap_large"] < high <= 0.60  # within the seeds'
    pair = intervals.comparisons.set_index("metric").loc["ap_all"]
    assert (pair["row"], pair["other"]) == ("random", "partial")
    assert pair["diff"] == pytest.approx(0.1) and pair["low"] == pytest.approx(0.1)

    table = with_intervals(result.table, intervals)
    assert list(table.columns[: len(result.table.columns)]) == list(result.table.columns)
    assert {"ap_large_low", "gap_closed_high", "interval_segments"} <= set(table.columns)
    written = write_experiment(result, tmp_path / "out", intervals=intervals)
    assert [p.name for p in written][-1] == "comparisons.csv"
    comparisons = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert len(comparisons) == 3 and set(comparisons["metric"]) == set(AP_COLUMNS)
    saved = pd.read_csv(tmp_path / "out" / "experiment.csv")
    assert saved.loc[1, "ap_large_high"] == pytest.approx(high)
