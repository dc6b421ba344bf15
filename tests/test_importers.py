"""Imports of the real samples into data sets (rem_core.io.importers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.geometry import count_points_in_boxes
from rem_core.io import import_av2, import_kitti_tracking, import_waymo, import_waymo_objects
from rem_core.schema import BOX_COLUMNS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no real samples at {DATA}")


def test_av2_log(tmp_path: Path):
    ds = import_av2(DATA / "av2" / "adcf7d18", tmp_path / "av2")
    assert len(ds.frames) == 156 and len(ds.tracks) == 146 and len(ds.boxes) == 12_078
    assert ds.segments["split"].tolist() == ["unlabelled"]
    points = ds.points("adcf7d18", 0)
    assert len(points) == 100_660 and ds.frames["num_points"].iloc[0] == 100_660
    assert (ds.frames["num_points"].iloc[1:] == 0).all()  # one sweep in the sample
    boxes = ds.frame_boxes("adcf7d18", 0)
    counts = count_points_in_boxes(points[:, :3].astype(np.float64), boxes[BOX_COLUMNS].to_numpy())
    np.testing.assert_array_equal(counts, boxes["num_points"].to_numpy())
    assert ds.frames["pose_qw"].abs().max() > 0 and ds.frames["pose_x"].std() > 0  # real poses
    with pytest.raises(FileExistsError, match="pass --force"):
        import_av2(DATA / "av2" / "adcf7d18", tmp_path / "av2")


def test_waymo_objects_form_tracks(tmp_path: Path):
    ds = import_waymo_objects(DATA / "waymo" / "objects" / "fake_ground_truths.bin", tmp_path / "w")
    assert len(ds.segments) == 2 and len(ds.frames) == 20 and len(ds.boxes) == 1_010
    assert ds.tracks["track_id"].nunique() == 104
    # tracks run across the 10 frames of their segment
    assert (ds.tracks["num_boxes"] == 10).mean() > 0.8
    steps = ds.frames.groupby("segment_id")["timestamp_micros"].diff().dropna()
    assert ((steps - 100_000).abs() < 1_000).all()  # 10 Hz


def test_kitti_tracking_sequences(tmp_path: Path):
    ds = import_kitti_tracking(DATA / "kitti_tracking", tmp_path / "k", split="source")
    assert len(ds.segments) == 21 and len(ds.boxes) == 47_262
    assert len(ds.frames) == 8_008  # up to each sequence's last label, DontCare included
    assert (ds.segments["split"] == "source").all()
    first = ds.tracks[ds.tracks["segment_id"] == "0000"]
    assert len(first) == 15


def test_waymo_frames_without_range_images(tmp_path: Path):
    frames = DATA / "waymo" / "frames"
    ds = import_waymo(
        [frames / "pvps_data_one_frame.tfrecord", frames / "mmdet3d_val.tfrecord"], tmp_path / "w"
    )
    assert len(ds.segments) == 2 and len(ds.boxes) == 75 + 18
    assert (ds.frames["num_points"] == 0).all()
    assert set(ds.boxes["class"]) == {"vehicle", "sign", "pedestrian", "cyclist"}


def test_a_bad_split_and_a_failed_import_leave_nothing(tmp_path: Path):
    with pytest.raises(ValueError, match="split: must be one of"):
        import_kitti_tracking(DATA / "kitti_tracking", tmp_path / "k", split="train")
    with pytest.raises(Exception, match="not a kitti-tracking input, and holds none"):
        import_kitti_tracking(tmp_path, tmp_path / "k")
    assert not (tmp_path / "k").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_rem_import_then_rem_info(tmp_path: Path, capsys: pytest.CaptureFixture):
    from rem_core.cli import main

    out = tmp_path / "av2"
    assert main(["import", "av2", str(DATA / "av2" / "adcf7d18"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "segments   1" in text and "frames     156" in text
    assert main(["import", "av2", str(DATA / "av2" / "adcf7d18"), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["info", str(out)]) == 0
    assert main(["import", "av2", "a", "b", "--out", str(tmp_path / "x")]) == 2
    assert "a: no such file or folder" in capsys.readouterr().err


def test_rem_runs_on_imported_labels(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch):
    from rem_core.cli import main

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "w"
    objects = DATA / "waymo" / "objects" / "fake_ground_truths.bin"
    assert main(["import", "waymo-objects", str(objects), "--out", str(out)]) == 0
    args = ["--preset", "tiny", "--data", str(out)]
    assert main(["score", *args]) == 0
    assert "rarest tracks" in capsys.readouterr().out
    assert main(["compare", *args, "--budget", "10%"]) == 0
    text = capsys.readouterr().out
    assert "d-rem" in text and "oracle-size" in text


def test_detections_attach_to_an_imported_data_set(tmp_path: Path, capsys, monkeypatch):
    from rem_core.cli import main
    from rem_core.dataset import Dataset

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "w"
    objects = DATA / "waymo" / "objects"
    assert main(["import", "waymo-objects", str(objects / "fake_ground_truths.bin"),
                 "--out", str(out)]) == 0  # fmt: skip
    args = ["import", "detections", str(objects / "fake_predictions.bin"), "--data", str(out)]
    assert main([*args, "--format", "waymo-objects"]) == 0
    assert "2,263 detections over 20 frames" in capsys.readouterr().out
    assert main([*args, "--format", "waymo-objects"]) == 2  # stored already; --force replaces
    stored = pd.read_parquet(out / "detections.parquet")
    assert stored["score"].between(0, 1).all() and len(stored) == 2_263
    # REM now mines the predictions: some checks find nothing
    assert main(["compare", "--preset", "tiny", "--data", str(out), "--budget", "20%"]) == 0
    assert "d-rem" in capsys.readouterr().out
    assert len(Dataset.open(out).frames) == 20
    # and `rem eval` scores those predictions themselves against the ground truth
    assert main(["eval", "--preset", "tiny", "--data", str(out), "--split", "unlabelled"]) == 0
    text = capsys.readouterr().out
    assert "detections vehicle     all" in text and "659" in text  # the predictions' boxes


def test_kitti_detections_keep_their_scores(tmp_path: Path, capsys):
    from rem_core.cli import main

    out = tmp_path / "k"
    assert main(["import", "kitti-tracking", str(DATA / "kitti_tracking"), "--out", str(out)]) == 0
    folder = DATA / "kitti_tracking" / "detections"
    calib = DATA / "kitti_tracking" / "training" / "calib"
    assert main(["import", "detections", str(folder), "--data", str(out), "--format", "kitti"]) == 2
    assert "give --calib" in capsys.readouterr().err
    code = main(["import", "detections", str(folder), "--data", str(out), "--format", "kitti",
                 "--calib", str(calib)])  # fmt: skip
    assert code == 0
    stored = pd.read_parquet(out / "detections.parquet")
    assert len(stored) == 80_471 and stored["score"].min() < 0 < stored["score"].max()
    assert set(stored["class"]) == {"vehicle", "pedestrian", "cyclist"}


def test_imported_features_are_scored(tmp_path: Path, capsys, monkeypatch):
    """A detector's own features drive D-REM; ground truth borrows its matched detection's."""
    import dataclasses

    from rem_core.cli import main
    from rem_core.config import RemConfig
    from rem_core.dataset import Dataset
    from rem_core.io import DETECTION_FEATURES_FILE
    from rem_core.mining import best_overlap
    from rem_core.pipeline import ensure_detections, ensure_rareness, features_for

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "w"
    objects = DATA / "waymo" / "objects"
    assert main(["import", "waymo-objects", str(objects / "fake_ground_truths.bin"),
                 "--out", str(out)]) == 0  # fmt: skip
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2_263, 6)).astype(np.float32)
    odd = rng.random(2_263) < 0.05
    features[odd] += 6.0  # a cluster the density model must find rare
    np.save(tmp_path / "short.npy", features[:100])
    args = ["import", "detections", str(objects / "fake_predictions.bin"), "--data", str(out),
            "--format", "waymo-objects"]  # fmt: skip
    assert main([*args, "--features", str(tmp_path / "short.npy")]) == 2
    assert "short.npy: features of shape (100, 6) for 2263 detections" in capsys.readouterr().err
    assert not (out / "detections.parquet").exists()  # a refused import stores nothing
    np.save(tmp_path / "f.npy", features)
    assert main([*args, "--features", str(tmp_path / "f.npy")]) == 0
    assert "their 6-D features" in capsys.readouterr().out

    ds = Dataset.open(out)
    base = RemConfig.preset("tiny")
    gaussian = dataclasses.replace(base.rareness, estimator="gaussian")
    config = features_for(dataclasses.replace(base, rareness=gaussian), ds)
    assert config.features.source == "imported"
    det = ensure_detections(config, ds)
    np.testing.assert_array_equal(det.features, features)
    run = ensure_rareness(config, ds)
    rarest = np.argsort(run.log_prob)[: odd.sum()]
    assert odd[rarest].mean() > 0.95
    match, iou = best_overlap(det.gt, det.detections)
    hit = (match >= 0) & (iou >= config.detector.match_iou)
    assert 0 < hit.sum() < len(hit)
    assert np.isnan(run.gt_log_prob[~hit]).all()
    np.testing.assert_allclose(run.gt_log_prob[hit], run.log_prob[match[hit]], rtol=1e-6)
    assert run.meta["gt_described"] == hit.sum()

    # Detections stored again without features: the stale features go, geometry takes over.
    assert main([*args, "--force"]) == 0
    assert not (out / DETECTION_FEATURES_FILE).exists()
    assert features_for(base, ds).features.source == "geometry"


def test_bad_imported_features_are_named(tmp_path: Path):
    from rem_core.io import check_features
    from rem_core.schema import DataError

    bad = np.zeros((4, 3))
    bad[2, 1] = np.inf
    with pytest.raises(DataError, match=r"f.npy: row 2, column 1 holds a non-finite feature"):
        check_features(bad, 4, "f.npy")
    with pytest.raises(DataError, match=r"features of shape \(4,\) for 4 detections"):
        check_features(np.zeros(4), 4, "f.npy")
    with pytest.raises(DataError, match="features of type <U1"):
        check_features(np.array([["a"]]), 1, "f.npy")
