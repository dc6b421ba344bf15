"""The feature source is a choice; the automatic one explains itself, an impossible one says
what is missing and how to add it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rem_core.cli import main
from rem_core.config import RemConfig
from rem_core.pipeline import MIN_DETECTOR_FRAMES, choose_features, features_for
from rem_core.schema import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AV2_LOG = SHARED / "av2" / "adcf7d18"


def test_auto_picks_our_detector_when_the_source_split_has_point_clouds(tiny_world):
    choice = choose_features(tiny_world)
    assert choice.source == "detector"
    assert f"our detector needs {MIN_DETECTOR_FRAMES}" in choice.reason
    assert "has a point cloud in 8 frames" in choice.reason


def test_auto_falls_back_to_geometry_and_says_why(tiny_world, tmp_path):
    import shutil

    import pandas as pd

    # The same world with every segment unlabelled: no source split to train a detector on.
    root = tmp_path / "all-unlabelled"
    shutil.copytree(tiny_world.root, root)
    segments = pd.read_parquet(root / "segments.parquet")
    segments["split"] = "unlabelled"
    segments.to_parquet(root / "segments.parquet")
    from rem_core.dataset import Dataset

    ds = Dataset.open(root)
    choice = choose_features(ds)
    assert choice.source == "geometry"
    assert "its labelled boxes" in choice.reason
    assert "the source split (0 segments) has a point cloud in 0 frames" in choice.reason
    with pytest.raises(DataError, match=r"--features detector: the source split \(0 segments\)"):
        choose_features(ds, "detector")
    with pytest.raises(DataError, match="rem import detections PATH --data"):
        choose_features(ds, "imported")
    assert choose_features(ds, "geometry").source == "geometry"
    assert features_for(RemConfig.tiny(), ds).features.source == "geometry"
    with pytest.raises(ValueError, match="features: unknown 'lidar'"):
        choose_features(ds, "lidar")


def test_stored_detector_features_win_under_auto(tiny_world, tmp_path):
    import shutil

    from rem_core.dataset import Dataset
    from rem_core.io import attach_detections

    root = tmp_path / "with-detections"
    shutil.copytree(tiny_world.root, root)
    boxes = Dataset.open(root).boxes.head(20)
    table = boxes.assign(score=np.float32(0.9))[
        ["segment_id", "frame_index", "class", "center_x", "center_y", "center_z", "length",
         "width", "height", "heading", "score"]
    ]  # fmt: skip
    attach_detections(root, table, np.ones((len(table), 3), np.float32))
    choice = choose_features(Dataset.open(root))
    assert choice.source == "imported"
    assert "holds a detector's detections with their features" in choice.reason
    # asked for, our detector still trains on the source split
    assert choose_features(Dataset.open(root), "detector").source == "detector"


@pytest.mark.skipif(not AV2_LOG.is_dir(), reason=f"no Argoverse 2 sample at {AV2_LOG}")
def test_an_av2_log_mines_from_the_cli_and_says_which_features(tmp_path, monkeypatch, capsys):
    # The session, as typed: every segment of an AV2 import is unlabelled and two
    # of its sweeps have points; REM runs on geometry and says so.
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["import", "av2", str(AV2_LOG), "--out", "data/av2"]) == 0
    capsys.readouterr()
    # the Gaussian density: the choice of features is under test here, and FFJORD on a real
    # sample is in tests/test_real_end_to_end.py (it took 70 s more here)
    args = ["mine", "--data", "data/av2", "--method", "d-rem", "--budget", "10%"]
    args += ["--estimator", "gaussian"]
    assert main([*args, "--out", "mined.csv", "--labels", "mined.bin"]) == 0
    out, err = capsys.readouterr()
    assert "rem: features: geometry (geometric descriptors of its labelled boxes" in err
    assert "wrote mined.csv" in out
    assert Path("mined.csv").stat().st_size > 0 and Path("mined.bin").stat().st_size > 0
    assert main([*args, "--features", "detector", "--out", "m2.csv"]) == 2
    err = capsys.readouterr().err
    assert "rem: error: data/av2: --features detector: the source split (0 segments)" in err
    assert "--split source" in err and not Path("m2.csv").exists()
