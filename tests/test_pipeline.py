from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from rem_core import pipeline
from rem_core.analysis import box_in_track
from rem_core.cli import main
from rem_core.config import RemConfig
from rem_core.detect import ensemble_scores
from rem_core.errors import InputError
from rem_core.mining import VARIANCE_METHODS, rank_detections
from rem_core.pipeline.sources import detector as detector_source
from rem_core.schema import BOX_COLUMNS


def _det(frame: int, boxes: list[list[float]], scores: list[float]) -> pd.DataFrame:
    df = pd.DataFrame(boxes, columns=BOX_COLUMNS)
    df.insert(0, "frame_index", frame)
    df.insert(0, "segment_id", "s")
    df["score"] = scores
    return df


def test_ensemble_scores_hand_case():
    car = [10.0, 0.0, 1.0, 4.5, 1.9, 1.5, 0.0]
    other = [20.0, 5.0, 1.0, 4.5, 1.9, 1.5, 0.0]
    main_det = pd.concat([_det(0, [car, other], [0.9, 0.6]), _det(1, [car], [0.8])])
    # Member 1 finds the car in frame 0 (shifted a little) and misses the rest;
    # member 2 has one box between two main boxes: one-to-one, the better overlap wins.
    member1 = _det(0, [[10.3, 0.1, 1.0, 4.4, 1.9, 1.5, 0.05]], [0.7])
    near_car = [10.2, 0.0, 1.0, 4.5, 1.9, 1.5, 0.0]
    member2 = pd.concat([_det(0, [near_car], [0.5]), _det(2, [car], [0.9])])
    scores = ensemble_scores(main_det, [member1, member2], match_iou=0.3)
    np.testing.assert_allclose(
        scores, [[0.9, 0.7, 0.5], [0.6, 0.0, 0.0], [0.8, 0.0, 0.0]], rtol=1e-6
    )
    variance = np.var(scores, axis=1)
    assert variance[0] == pytest.approx(np.var([0.9, 0.7, 0.5]))


@pytest.fixture(scope="module")
def run(tiny_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return pipeline.ensure_detections(RemConfig.tiny(), tiny_world, root=root), root


def test_detection_run_is_consistent(run, tiny_world):
    result, _ = run
    n = len(result.detections)
    config = RemConfig.tiny()
    assert n > 0 and result.features.shape == (n, config.detector.feature_channels)
    assert result.scores.shape == (n, config.detector.ensemble_size)
    unlabelled = set(tiny_world.segments.query("split == 'unlabelled'")["segment_id"])
    pool = result.detections["segment_id"].isin(unlabelled).to_numpy()
    assert np.isnan(result.scores[~pool]).all()
    np.testing.assert_allclose(result.scores[pool, 0], result.detections["score"][pool])
    assert (result.scores[pool] >= 0).all() and (result.variance[pool] >= 0).all()
    assert len(result.gt) == len(result.gt_features) == len(tiny_world.boxes)
    assert result.detections["detection_id"].is_unique


def test_second_run_comes_from_the_cache(run, tiny_world, monkeypatch):
    result, root = run

    def boom(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(detector_source, "train_detectors", boom)
    monkeypatch.setattr(detector_source, "detect", boom)
    again = pipeline.ensure_detections(RemConfig.tiny(), tiny_world, root=root)
    pd.testing.assert_frame_equal(again.detections, result.detections)
    assert np.array_equal(again.features, result.features)


def test_cli_detect_and_eval(tiny_world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["--preset", "tiny", "--data", str(tiny_world.root), "--members", "1"]
    assert main(["detect", "run", *args, "--out", str(out)]) == 0
    assert (out / "detections.parquet").is_file() and (out / "features.npy").is_file()
    assert main(["detect", "run", *args, "--out", str(out)]) == 2  # no --force
    assert main(["eval", *args]) == 0
    text = capsys.readouterr().out
    assert "AP at 3D IoU 0.5 on the validation split" in text
    assert "auto-labels" in text and "regular" in text


def test_rareness_stage_scores_every_object(run, tiny_world, capsys, tmp_path, monkeypatch):
    result, root = run
    config = RemConfig.tiny()
    rare = pipeline.ensure_rareness(config, tiny_world, root=root)
    assert rare.log_prob.shape == (len(result.detections),)
    assert rare.gt_log_prob.shape == (len(result.gt),)
    assert np.isfinite(rare.log_prob).all() and np.isfinite(rare.gt_log_prob).all()
    assert rare.meta["fit_rows"] > 0
    # Cached: loading gives the same numbers, and the fitted model reproduces them.
    again = pipeline.ensure_rareness(config, tiny_world, root=root)
    np.testing.assert_array_equal(again.log_prob, rare.log_prob)
    z = again.reducer.transform(result.features[:50])
    # An adaptive ODE solve depends a little on the batch it runs in.
    np.testing.assert_allclose(again.estimator.score_samples(z), rare.log_prob[:50], atol=1e-3)

    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    args = ["--preset", "tiny", "--data", str(tiny_world.root)]
    assert main(["score", *args, "--out", str(tmp_path / "scores")]) == 0
    scores = pd.read_parquet(tmp_path / "scores" / "detection_scores.parquet")
    np.testing.assert_allclose(scores["d_rem"], -rare.log_prob)
    in_track = box_in_track(result.detections, rare.log_prob).score
    np.testing.assert_array_equal(scores["box_in_track"].to_numpy(), in_track)
    tracks = pd.read_parquet(tmp_path / "scores" / "track_scores.parquet")
    assert tracks["rareness"].is_monotonic_decreasing
    assert "rarest tracks" in capsys.readouterr().out
    assert main(["score", *args, "--out", str(tmp_path / "scores")]) == 2  # exists, no --force


def test_mining_pool_and_the_mine_and_compare_commands(
    run, tiny_world, tmp_path, monkeypatch, capsys
):
    from rem_core.io import read_objects
    from rem_core.mining import read_mined

    _, root = run
    config = RemConfig.tiny()
    pool = pipeline.ensure_mining_pool(config, tiny_world, root=root)
    unlabelled = set(tiny_world.segments.query("split == 'unlabelled'")["segment_id"])
    assert set(pool.detections["segment_id"]) <= unlabelled and len(pool.detections) > 0
    assert (pool.detections["score"] >= config.rareness.min_score).all()
    assert set(pool.gt["segment_id"]) <= unlabelled and (pool.gt["class"] == "vehicle").all()
    assert np.isfinite(pool.variance).all() and len(pool.log_prob) == len(pool.detections)

    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    args = ["--preset", "tiny", "--data", str(tiny_world.root)]
    out, labels = tmp_path / "mined.json", tmp_path / "labels.bin"
    code = main(["mine", *args, "--method", "md-rem", "--budget", "2", "--out", str(out),
                 "--labels", str(labels)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "md-rem:" in text and f"wrote {out}" in text
    mined = read_mined(out)
    assert mined["rank"].max() <= 2 and (mined["method"] == "md_rem").all()
    label_set = read_objects(labels)
    assert set(mined["track_id"]) <= set(label_set["track_id"])
    # Existing outputs are kept unless --force; a bad suffix or method is refused up front.
    assert main(["mine", *args, "--budget", "2", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["mine", *args, "--out", str(tmp_path / "m.xlsx")]) == 2
    with pytest.raises(SystemExit):
        main(["mine", *args, "--method", "rem", "--out", str(tmp_path / "m.csv")])
    assert main(["mine", *args, "--budget", "2", "--out", str(out), "--force"]) == 0

    assert main(["compare", *args, "--budget", "50%", "--out", str(tmp_path / "cmp.csv")]) == 0
    text = capsys.readouterr().out
    for method in ("pool", "random", "predict-size", "m-rem", "md-rem", "oracle-size"):
        assert method in text
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert table["method"].tolist()[0] == "pool" and len(table) == 9


def test_geometry_features_run_rem_without_a_detector(tiny_world, tmp_path, monkeypatch):
    """The geometry source: no detector trained, descriptors as features, and every later
    stage (rareness, the mining pool, mining) runs as with detector features."""
    from dataclasses import replace

    from rem_core.config import FeatureConfig
    from rem_core.mining import mine

    config = replace(RemConfig.tiny(), features=FeatureConfig(source="geometry"))

    def boom(*args, **kwargs):
        raise AssertionError("no detector in the geometry source")

    monkeypatch.setattr(detector_source, "train_detectors", boom)
    monkeypatch.setattr(detector_source, "detect", boom)
    status = pipeline.pipeline_status(config, tiny_world, root=tmp_path)
    assert status["detectors"] and not status["detections"]
    run = pipeline.ensure_detections(config, tiny_world, root=tmp_path)
    vehicles = (run.gt["class"] == "vehicle").to_numpy()
    assert len(run.detections) == vehicles.sum() and len(run.gt) == len(tiny_world.boxes)
    assert run.gt_features.shape == (len(run.gt), 15)
    np.testing.assert_array_equal(run.features, run.gt_features[vehicles])
    rare = pipeline.ensure_rareness(config, tiny_world, root=tmp_path)
    assert np.isfinite(rare.gt_log_prob).all()
    pool = pipeline.ensure_mining_pool(config, tiny_world, root=tmp_path)
    assert (pool.variance == 0).all()
    mined = mine(pool, "d_rem", config)
    # every check finds its own ground-truth box: no false positives
    assert mined.composition.false_positives == 0 and mined.composition.tracks > 0
    assert pipeline.pipeline_status(config, tiny_world, root=tmp_path)["rareness"]


def test_the_exported_pool_mines_what_the_pipeline_mines(run, tiny_world, tmp_path):
    """`rem pool export`: the mining pool's rows, in order, with their features; scored and
    mined part by part with the pipeline's fitted models, D-REM's selection is the
    pipeline's (a Gaussian density scores each row on its own, whatever its part)."""
    from dataclasses import replace

    from rem_core.mining import mine
    from rem_core.pool import export_pool, score_and_mine

    _, root = run
    base = RemConfig.tiny()
    config = replace(base, rareness=replace(base.rareness, estimator="gaussian"))
    pool = pipeline.ensure_mining_pool(config, tiny_world, root=root)
    exported = export_pool(config, tiny_world, tmp_path / "pool", parts=3, root=root)
    assert len(exported.parts) == 3 and exported.tracked
    det = pd.concat([exported.read(p)[0] for p in range(3)], ignore_index=True)
    columns = list(det.columns)
    pd.testing.assert_frame_equal(det, pool.detections[columns], check_dtype=False)
    rare = pipeline.ensure_rareness(config, tiny_world, root=root)
    mined = mine(pool, "d_rem", config)
    m = config.mining
    result = score_and_mine(
        exported,
        rare.reducer,
        rare.estimator,
        m.budget,
        check_iou=m.check_iou,
        fp_costs_budget=m.fp_costs_budget,
        rank_by=m.rank_by,
    )
    assert len(result.tracks) > 0
    pd.testing.assert_frame_equal(
        result.tracks[["segment_id", "track_id"]], mined.result.tracks[["segment_id", "track_id"]]
    )


def test_retrain_removes_the_experiments_computed_from_the_old_ensemble(run, tiny_world, tmp_path):
    import json
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from rem_core.experiment import run_experiment
    from rem_core.pipeline import clear_pipeline, detector_entry

    _, cached = run
    root = tmp_path / "cache"
    for stage in ("detector", "detections"):  # the ensemble and its detections, not redone
        shutil.copytree(cached / stage, root / stage)
    base = RemConfig.tiny()
    exp = replace(base.experiment, rows=("partial",), seeds=1, steps=2)
    config = replace(base, experiment=exp)
    folder = run_experiment(config, tiny_world, root=root).path
    status = pipeline.pipeline_status(config, tiny_world, root)
    record = json.loads((folder / "meta.json").read_text())
    assert record == {
        "detections": str(status["detections_path"]),
        "rareness": str(status["rareness_path"]),
    }
    old = shutil.copytree(folder, tmp_path / "old")
    (old / "meta.json").unlink()  # as a folder made before the record was kept

    def other(key: str, meta: dict | None) -> Path:
        """An experiment folder of other detections, with one run of 2 steps."""
        (root / "experiment" / key / "runs").mkdir(parents=True)
        run_file = root / "experiment" / key / "runs" / "partial-seed0.json"
        run_file.write_text(json.dumps({"row": "partial", "seed": 0, "train_steps": 2}))
        if meta is not None:
            (root / "experiment" / key / "meta.json").write_text(json.dumps(meta))
        return root / "experiment" / key

    kept = [other("elsewhere", {"detections": "elsewhere", "rareness": "elsewhere"})]
    kept.append(other("0123456789abcdef", None))  # no record, and not this key
    removed = clear_pipeline(config, tiny_world, root)
    assert removed == [
        detector_entry(config, tiny_world, root).path,
        status["detections_path"],
        status["rareness_path"],
        folder,
    ]
    assert not folder.exists() and all(path.is_dir() for path in kept)
    # A folder without the record is matched by its key: this pipeline's experiment.
    shutil.copytree(old, folder)
    assert clear_pipeline(config, tiny_world, root) == [folder]
    assert all(path.is_dir() for path in kept)


def test_the_pipeline_shows_a_whole_analysis_before_the_members_and_the_flow(
    run, tiny_world, tmp_path
):
    # The trained ensemble copied into a fresh cache: everything after it is computed here.
    result, root = run
    fresh = tmp_path / "cache"
    shutil.copytree(root / "detector", fresh / "detector")
    config = RemConfig.tiny()
    first = pipeline.with_estimator(config, pipeline.FIRST_DENSITY)
    started: dict[str, dict] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in started:  # what is published when the stage starts
            started[stage] = pipeline.pipeline_status(config, tiny_world, fresh)

    final = pipeline.run_pipeline(config, tiny_world, root=fresh, progress=progress)
    names = list(started)

    def index(prefix: str) -> int:
        return next(i for i, name in enumerate(names) if name.startswith(prefix))

    members = index(pipeline.MEMBERS_STAGE)
    fast = index(pipeline.fitting_stage(pipeline.FIRST_DENSITY))
    flow = index(pipeline.fitting_stage(config.rareness.estimator))
    assert index("detecting") < fast < members < flow
    # When the members start, a whole analysis is there: the main model's part and the fast
    # density's rareness; neither the members' part nor the flow's rareness is.
    state = started[names[members]]
    assert state["detections_main"] and state["first_rareness"]
    assert not state["detections"] and not state["rareness"]
    # The two parts make the run the one-piece computation gives, and each density is an
    # entry of its own.
    whole = pipeline.ensure_detections(config, tiny_world, root=fresh)
    assert whole.members_scored
    pd.testing.assert_frame_equal(whole.detections, result.detections)
    np.testing.assert_array_equal(whole.scores, result.scores)
    gaussian = pipeline.ensure_rareness(first, tiny_world, root=fresh)
    assert gaussian.path != final.path
    assert gaussian.meta["config"]["estimator"] == "gaussian"
    assert final.meta["config"]["estimator"] == config.rareness.estimator


def test_a_run_without_its_members_mines_what_needs_no_ensemble(run, tiny_world, tmp_path):
    result, root = run
    config = RemConfig.tiny()
    entry = pipeline.DETECTION_STAGE.entry(config, tiny_world, root).path
    shutil.copytree(entry / "main", tmp_path / "entry" / "main")
    main = pipeline.load_detections(tmp_path / "entry")
    assert not main.members_scored and main.scores.shape == result.scores.shape
    unlabelled = set(tiny_world.split_ids("unlabelled"))
    pool = main.detections["segment_id"].isin(unlabelled).to_numpy()
    # The main model's own score is in; the members' columns and the variance wait.
    np.testing.assert_array_equal(main.scores[pool, 0], result.scores[pool, 0])
    assert np.isnan(main.scores[:, 1:]).all() and np.isnan(main.variance).all()
    rareness = pipeline.ensure_rareness(config, tiny_world, root=root)
    mining = pipeline.mining_pool(config, tiny_world, main, rareness)
    ranked = rank_detections(mining, "md_rem", score=config.score)
    assert len(ranked) > 0
    for method in VARIANCE_METHODS:
        with pytest.raises(InputError, match="no ensemble scores"):
            rank_detections(mining, method, score=config.score)
    # With its members' part, the entry loads whole.
    shutil.copytree(entry / "members", tmp_path / "entry" / "members")
    again = pipeline.load_detections(tmp_path / "entry")
    assert again.members_scored
    np.testing.assert_array_equal(again.scores, result.scores)


def test_an_entry_without_its_main_part_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match=r"main/meta.json missing"):
        pipeline.load_detections(tmp_path)


def test_compare_runs_command(run, tiny_world, monkeypatch, capsys, tmp_path):
    _, root = run
    world = tiny_world
    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    args = ["compare-runs", "--preset", "tiny", "--data", str(world.root), "--budget", "5"]
    out = tmp_path / "moved.csv"
    code = main([*args, "--against-estimator", "gaussian", "--tracks", "gt", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "A: ffjord, B: gaussian" in text and "Spearman's rank correlation" in text
    table = pd.read_csv(out)
    assert {"rank_a", "rank_b", "moved", "in_top_a", "in_top_b"} <= set(table.columns)
    assert (table["moved"] == table["rank_b"] - table["rank_a"]).all()
    assert main([*args, "--against-detector-seed", "3", "--tracks", "detected"]) == 2
    assert "cannot be matched" in capsys.readouterr().err
