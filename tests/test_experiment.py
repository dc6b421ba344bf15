"""The active-learning experiment (rem_core.experiment.runs) on the tiny world."""

from __future__ import annotations

import dataclasses
import fcntl
import json

import numpy as np
import pandas as pd
import pytest

from rem_core.config import EXPERIMENT_ROW_NAMES, ExperimentConfig, RemConfig
from rem_core.evaluation import match_frames
from rem_core.experiment import (
    EXPERIMENT_ROWS,
    label_set,
    plan_experiment,
    read_segment_results,
    results_table,
    run_experiment,
)
from rem_core.experiment import runs as runs_module
from rem_core.mining import mine
from rem_core.pipeline import ensure_mining_pool
from rem_core.schema import BOX_COLUMNS


def tiny(**settings) -> RemConfig:
    config = RemConfig.tiny()
    # The tiny detector is barely trained: let every detection be a self-label.
    exp = dataclasses.replace(
        config.experiment, self_label_score=0.0, auto_label_score=0.0, **settings
    )
    return dataclasses.replace(config, experiment=exp)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pool(tiny_world, root):
    pool = ensure_mining_pool(tiny(), tiny_world, root=root)
    # The tiny detector's tracks are too short to auto-label: stand-in auto-labels, the
    # detections shifted 0.1 m, tell AL rows from SL rows.
    assert len(pool.detections) > 20
    autolabels = pool.detections.assign(center_x=pool.detections["center_x"] + 0.1)
    return dataclasses.replace(pool, autolabels=autolabels.assign(interpolated=False))


def test_rows_match_the_config_and_the_paper_rows():
    assert tuple(EXPERIMENT_ROWS) == EXPERIMENT_ROW_NAMES
    assert {r.group for r in EXPERIMENT_ROWS.values()} == {
        "reference", "oracle", "baseline", "ours", "budget"
    }  # fmt: skip
    assert EXPERIMENT_ROWS["md-rem++"].fill == "al" and EXPERIMENT_ROWS["d-rem"].fill == "sl"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rows": ("partial", "nope")}, "experiment.rows: unknown row 'nope'"),
        ({"rows": ("full", "full")}, "experiment.rows: a row appears twice"),
        ({"seeds": -1}, "experiment.seeds"),
        ({"steps": 0}, "experiment.steps"),
        ({"self_label_score": 1.5}, "experiment.self_label_score"),
        ({"iou": "2d"}, "experiment.iou"),
        ({"curve_bin_width": 3.0}, "experiment.curve_bin_width"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**settings)


def _overlaps(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Pairs of boxes of ``a`` and ``b`` that overlap in a frame."""
    return len(match_frames(a, b, "best").pair_a)


def test_label_sets_of_the_reference_rows(tiny_world, pool):
    config = tiny()
    segments = tiny_world.segments
    source = segments.loc[segments["split"] == "source", "segment_id"].tolist()
    unlabelled = segments.loc[segments["split"] == "unlabelled", "segment_id"].tolist()
    vehicles = tiny_world.boxes[tiny_world.boxes["class"] == "vehicle"]

    ids, labels, stats = label_set(EXPERIMENT_ROWS["partial"], config, tiny_world, pool)
    assert ids == source and (labels["source"] == "source").all()
    assert len(labels) == vehicles["segment_id"].isin(source).sum()

    ids, labels, stats = label_set(EXPERIMENT_ROWS["full"], config, tiny_world, pool)
    assert ids == source + unlabelled
    assert len(labels) == vehicles["segment_id"].isin(source + unlabelled).sum()
    assert stats["human_boxes"] == (labels["source"] == "truth").sum() > 0

    ids, labels, stats = label_set(EXPERIMENT_ROWS["semi-sl"], config, tiny_world, pool)
    pseudo = labels[labels["source"] == "pseudo"]
    assert len(pseudo) == len(pool.detections) == stats["pseudo_boxes"] > 0
    _, labels, _ = label_set(EXPERIMENT_ROWS["semi-al"], config, tiny_world, pool)
    pseudo = labels[labels["source"] == "pseudo"]
    assert len(pseudo) == len(pool.autolabels)
    np.testing.assert_allclose(pseudo["center_x"], pool.autolabels["center_x"])

    strict = dataclasses.replace(
        config, experiment=dataclasses.replace(config.experiment, self_label_score=0.99)
    )
    _, labels, _ = label_set(EXPERIMENT_ROWS["semi-sl"], strict, tiny_world, pool)
    assert (labels["source"] == "pseudo").sum() == (pool.detections["score"] >= 0.99).sum()


@pytest.mark.parametrize("name", ["d-rem", "md-rem++", "md-rem++-9%", "random"])
def test_mined_rows_label_whole_tracks_and_drop_what_overlaps_them(tiny_world, pool, name):
    config = tiny()
    row = EXPERIMENT_ROWS[name]
    _, labels, stats = label_set(row, config, tiny_world, pool)
    budget = row.budget or config.mining.budget
    mined = mine(pool, row.method, dataclasses.replace(
        config, mining=dataclasses.replace(config.mining, budget=budget)
    ))  # fmt: skip
    human = labels[labels["source"] == "human"]
    tracks = mined.result.tracks[["segment_id", "track_id"]]
    assert stats["human_tracks"] == len(tracks) > 0
    key = pd.MultiIndex.from_frame(pool.gt[["segment_id", "track_id"]])
    whole = pool.gt[key.isin(pd.MultiIndex.from_frame(tracks))]
    assert len(human) == len(whole) == stats["human_boxes"]  # every box of every mined track
    pseudo = labels[labels["source"] == "pseudo"]
    assert 0 < len(pseudo) < len(pool.detections if row.fill == "sl" else pool.autolabels)
    assert _overlaps(pseudo, human) == 0


def test_random_draws_per_seed(tiny_world, pool):
    config = tiny()
    row = EXPERIMENT_ROWS["random"]
    a = label_set(row, config, tiny_world, pool, seed=0)[1]
    b = label_set(row, config, tiny_world, pool, seed=1)[1]
    c = label_set(EXPERIMENT_ROWS["d-rem"], config, tiny_world, pool, seed=1)[1]
    d = label_set(EXPERIMENT_ROWS["d-rem"], config, tiny_world, pool, seed=0)[1]
    human = lambda t: set(map(tuple, t.loc[t["source"] == "human", BOX_COLUMNS].to_numpy()))  # noqa: E731
    assert human(a) != human(b) and human(c) == human(d)


def test_the_loop_runs_caches_and_resumes(tiny_world, root, monkeypatch):
    config = tiny(rows=("partial", "full", "md-rem++"), seeds=2)
    calls = []
    real = runs_module._run_one

    def flaky(row, seed, *args):
        calls.append((row.name, seed))
        # A run is trained under its own lock: another process asking for it would wait.
        runs = plan_experiment(config, tiny_world).entry(root).path / "runs"
        with open(runs / f".{row.name}-seed{seed}.json.lock") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if len(calls) == 4:
            raise KeyboardInterrupt  # an interruption mid-way
        return real(row, seed, *args)

    monkeypatch.setattr(runs_module, "_run_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tiny_world, root=root)
    calls.clear()
    seen = []
    result = run_experiment(config, tiny_world, root=root, progress=lambda *a: seen.append(a))
    assert calls == [("full", 1), ("md-rem++", 0), ("md-rem++", 1)]  # the rest was cached
    assert any(stage.startswith("training MD-REM++") for stage, _, _ in seen)

    table = result.table.set_index("row")
    assert list(table.index) == ["partial", "full", "md-rem++"]
    assert (table["seeds"] == 2).all()
    assert table.loc["md-rem++", "human_labels"] == "25%;3%"
    assert table.loc["full", "human_labels"] == "100%"
    assert table.loc["partial", "paper_ap_large"] == pytest.approx(0.378)
    runs = result.runs
    assert len(runs) == 6 and set(runs["seed"]) == {0, 1}
    assert runs["ap_all"].between(0, 1).all()
    md = runs[runs["row"] == "md-rem++"]
    assert np.isclose(table.loc["md-rem++", "ap_all"], md["ap_all"].mean())
    assert (result.path / "results.csv").is_file()
    saved = json.loads((result.path / "results.json").read_text())
    assert [r["row"] for r in saved] == ["partial", "full", "md-rem++"]
    curve = result.curves["full"][0]
    assert {"lower", "upper", "n_gt", "recall"} <= set(curve.columns)
    # beside each run's JSON, the per-segment results that give back its AP bit for bit
    val = tiny_world.segments.loc[tiny_world.segments["split"] == "validation", "segment_id"]
    for run in runs.itertuples():
        frames = read_segment_results(result.path / "runs" / f"{run.row}-seed{run.seed}.npz")
        assert frames.segments.tolist() == val.tolist()
        assert frames.gt_count[:, 0].sum() > 0
        ap = frames.ap()
        np.testing.assert_array_equal(
            [ap["all"], ap["regular"], ap["large"]], [run.ap_all, run.ap_regular, run.ap_large]
        )

    # every run cached: nothing retrains, and fewer seeds reuse them
    monkeypatch.setattr(runs_module, "_run_one", lambda *a: pytest.fail("retrained"))
    again = run_experiment(tiny(rows=("full",), seeds=1), tiny_world, root=root)
    assert again.path == result.path and len(again.runs) == 1


def test_training_steps_are_fixed_whatever_the_labels(tiny_world):
    from rem_core.detect import train_detector

    config = RemConfig.tiny().detector
    steps = []
    labels = tiny_world.boxes.iloc[:0]
    train_detector(
        config, tiny_world, tiny_world.segments["segment_id"].tolist(),
        progress=lambda done, total: steps.append((done, total)), labels=labels, steps=7,
    )  # fmt: skip
    assert steps[-1] == (7, 7) and len(steps) == 7


def test_rem_experiment_writes_the_table(tiny_world, root, tmp_path, monkeypatch, capsys):
    from rem_core.cli import main

    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    out = tmp_path / "exp"
    args = ["experiment", "--preset", "tiny", "--rows", "partial,random", "--seeds", "1"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Partial-supervised" in text and "25%;3%" in text
    table = pd.read_csv(out / "experiment.csv")
    assert table["row"].tolist() == ["partial", "random"]
    assert json.loads((out / "experiment.json").read_text())[1]["label"] == "Random"
    assert len(pd.read_csv(out / "runs.csv")) == 2
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["row"]) == {"partial", "random"} and "recall" in curves
    assert {"ap_large_low", "ap_large_high", "gap_closed_low"} <= set(table.columns)
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert comparisons[["row", "other"]].drop_duplicates().values.tolist() == [
        ["random", "partial"]
    ]
    assert list(comparisons.columns) == [
        "row", "other", "metric", "seeds", "segments", "diff", "low", "high", "holds", "verdict"
    ]  # fmt: skip
    # one seed and one validation segment in the tiny world: no interval to give
    assert (comparisons["verdict"] == "not enough runs").all()
    assert "MD-REM++ beats Random on Large AP: not enough runs" in text
    assert main([*args, "--out", str(out)]) == 2  # exists: --force replaces
    assert "exists; pass --force" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--force"]) == 0
    assert main([*args[:4], "partial,nope"]) == 2
    assert "unknown row 'nope'" in capsys.readouterr().err


def test_the_demo_experiment_mines_with_the_app_pipeline_and_retrains_longer():
    from rem_core.experiment import experiment_config, plan_experiment

    class World:  # 6 source segments of 20 frames
        segments = pd.DataFrame(
            {"segment_id": list("abcdefg"), "split": ["source"] * 6 + ["unlabelled"]}
        )
        frames = pd.DataFrame({"segment_id": np.repeat(list("abcdefg"), 20)})
        manifest = {"config_hash": "0123456789abcdef"}

        @classmethod
        def content_key(cls) -> str:
            return "0123456789abcdef"

        @classmethod
        def split_ids(cls, split: str) -> list[str]:
            return cls.segments.loc[cls.segments["split"] == split, "segment_id"].tolist()

    demo = RemConfig.preset("demo")
    # The demo experiment mines from the app's own pipeline (same detector, fp32) ...
    assert experiment_config(demo) is demo
    assert demo.detector.precision == "fp32"
    # ... and retrains every row for a fixed 4,800 steps, longer than the app's recipe.
    plan = plan_experiment(demo, World)
    assert plan.config is demo and not plan.own_recipe
    assert plan.steps == 4800 > 30 * demo.detector.epochs
    # A recipe of its own: epochs and precision replace the pipeline's, the seed stays.
    own = dataclasses.replace(
        demo,
        experiment=ExperimentConfig(detector_epochs=32, detector_precision="auto"),
    )
    recipe = experiment_config(own)
    assert recipe.detector.epochs == 32 != demo.detector.epochs
    assert recipe.detector.seed == demo.detector.seed
    assert recipe.detector.precision == "auto"
    assert plan_experiment(own, World).steps == 30 * 32
    assert plan_experiment(own, World).own_recipe
    fixed = dataclasses.replace(own, experiment=dataclasses.replace(own.experiment, steps=5))
    assert plan_experiment(fixed, World).steps == 5
    with pytest.raises(ValueError, match="experiment.detector_epochs"):
        ExperimentConfig(detector_epochs=0)
    with pytest.raises(ValueError, match="experiment.detector_precision: must be one of"):
        ExperimentConfig(detector_precision="fp16")


def test_gap_closed_compares_a_row_with_the_references_at_its_own_seeds(tiny_world):
    large = {
        ("partial", 0): 0.1, ("partial", 1): 0.1, ("partial", 2): 0.4,
        ("full", 0): 0.3, ("full", 1): 0.3, ("full", 2): 0.4,
        ("md-rem++", 0): 0.2,
        ("random", 0): 0.1, ("random", 1): 0.3, ("random", 2): 0.4,
    }  # fmt: skip
    runs = pd.DataFrame(
        [
            {"row": r, "seed": s, "ap_all": 0.5, "ap_regular": 0.6, "ap_large": v,
             "human_tracks": 1, "pseudo_boxes": 2, "seconds": 3.0}
            for (r, s), v in large.items()
        ]
    )  # fmt: skip
    table = results_table(runs, tiny(), tiny_world).set_index("row")
    # At seed 0, MD-REM++ sits halfway between the references. The references' means over
    # three seeds (0.2 and 0.333) would make that 0%.
    assert table.loc["md-rem++", "gap_closed"] == pytest.approx(0.5)
    assert table.loc["md-rem++", "ap_large"] == pytest.approx(0.2)
    assert table.loc["random", "gap_closed"] == pytest.approx((0.8 / 3 - 0.2) / (1.0 / 3 - 0.2))
    assert table.loc["partial", "gap_closed"] == 0 and table.loc["full", "gap_closed"] == 1
    without_full = results_table(runs[runs["row"] != "full"], tiny(), tiny_world)
    assert without_full["gap_closed"].isna().all()
