"""Every real sample end to end, through the CLI as a user types it: import, score, mine,
export the mined list and the label set, and read both back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rem_core.cli import main
from rem_core.dataset import Dataset
from rem_core.io import read_objects

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# sample -> the import commands, as typed (DATA is where the samples are), and what the
# automatic feature choice says for it. The KITTI sample mines with the Gaussian density:
# FFJORD takes 46 s on its 32,385 boxes (docs/io.md), the others use the default, FFJORD
# (the AV2 log with fewer epochs).
SAMPLES = {
    "av2": (
        [["import", "av2", "{DATA}/av2", "--out", "data"]],
        "geometric descriptors of its labelled boxes",
        # FFJORD as the default, with a fifth of its epochs: 40 took 65 s of the suite
        ["--estimator-setting", "max_epochs=8"],
    ),
    "waymo-frames": (
        [["import", "waymo", "{DATA}/waymo/frames/*.tfrecord", "--out", "data"]],
        "geometric descriptors of its labelled boxes",
        [],
    ),
    "waymo-objects-with-predictions": (
        [
            [
                "import",
                "waymo-objects",
                "{DATA}/waymo/objects/fake_ground_truths.bin",
                "--out",
                "data",
            ],
            [
                "import",
                "detections",
                "{DATA}/waymo/objects/fake_predictions.bin",
                "--data",
                "data",
                "--format",
                "waymo-objects",
            ],
        ],  # fmt: skip
        "geometric descriptors of its own detections",
        [],
    ),
    "kitti-tracking": (
        [
            [
                "import",
                "kitti-tracking",
                "{DATA}/kitti_tracking",
                "--out",
                "data",
                "--source-share",
                "10%",
                "--seed",
                "0",
            ]
        ],  # fmt: skip
        "geometric descriptors of its labelled boxes",
        ["--estimator", "gaussian"],
    ),
}


@pytest.mark.skipif(not DATA.is_dir(), reason=f"no real samples at {DATA}")
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_a_real_sample_from_import_to_a_mined_list_read_back(
    sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    imports, reason, options = SAMPLES[sample]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    for command in imports:
        assert main([part.replace("{DATA}", str(DATA)) for part in command]) == 0, command
    ds = Dataset.open("data")
    capsys.readouterr()

    assert main(["score", "--data", "data", *options, "--out", "scores"]) == 0
    out, err = capsys.readouterr()
    assert f"rem: features: geometry ({reason}" in err
    scores = pd.read_parquet("scores/track_scores.parquet")
    assert len(scores) > 0 and scores["segment_id"].isin(ds.segments["segment_id"]).all()

    mine = ["mine", "--data", "data", "--method", "md-rem", "--budget", "10%", *options]
    assert main([*mine, "--out", "mined.csv", "--labels", "labels.bin"]) == 0
    out, err = capsys.readouterr()
    assert f"rem: features: geometry ({reason}" in err
    mined = pd.read_csv("mined.csv", dtype={"segment_id": str, "track_id": str})
    assert len(mined) > 0
    assert set(mined["segment_id"]) <= set(ds.segments["segment_id"])
    assert set(mined["method"]) == {"md_rem"}
    tracks = mined[["segment_id", "track_id"]].drop_duplicates()
    assert f"{len(tracks)} of " in out
    labels = read_objects("labels.bin")
    assert set(labels["segment_id"]) <= set(ds.segments["segment_id"])
    humans = int(out.split("(")[-1].split(" human")[0].replace(",", ""))
    assert humans == len(mined)  # every mined box is in the label set, as a human label
    assert f"wrote labels.bin: {len(labels):,} boxes" in out
