"""Many logs, one data set: several inputs per import, a data set that grows, a source pool
drawn by segment, each log imported once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rem_core.cli import main
from rem_core.dataset import Dataset
from rem_core.io import import_data
from rem_core.schema import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AV2_LOG = DATA / "av2" / "adcf7d18"
KITTI = DATA / "kitti_tracking"
WAYMO_FRAMES = DATA / "waymo" / "frames"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no real samples at {DATA}")


@pytest.fixture
def av2_logs(tmp_path: Path) -> Path:
    """A folder of three AV2 "logs": the sample under three names (annotations and poses
    copied, no sweeps: fast)."""
    logs = tmp_path / "logs"
    for name in ("log-a", "log-b", "log-c"):
        (logs / name).mkdir(parents=True)
        for file in ("annotations.feather", "city_SE3_egovehicle.feather"):
            shutil.copyfile(AV2_LOG / file, logs / name / file)
    return logs


def test_a_folder_of_logs_a_glob_and_a_list_are_the_same_import(av2_logs: Path, tmp_path: Path):
    by_folder = import_data("av2", [av2_logs], tmp_path / "a")
    by_glob = import_data("av2", [str(av2_logs / "log-*")], tmp_path / "b")
    by_list = import_data("av2", sorted(av2_logs.iterdir()), tmp_path / "c")
    for ds in (by_folder, by_glob, by_list):
        assert ds.segments["segment_id"].tolist() == ["log-a", "log-b", "log-c"]
        assert len(ds.frames) == 3 * 156
        assert ds.manifest["imports"][0]["segments"] == 3


def test_a_data_set_grows_and_refuses_a_log_twice(av2_logs: Path, tmp_path: Path):
    out = tmp_path / "data"
    first = import_data("av2", [av2_logs / "log-a"], out, split="source")
    boxes_a = first.boxes
    grown = import_data("av2", [av2_logs / "log-b", av2_logs / "log-c"], out, into=True)
    assert dict(zip(grown.segments["segment_id"], grown.segments["split"], strict=True)) == {
        "log-a": "source",
        "log-b": "unlabelled",
        "log-c": "unlabelled",
    }
    assert len(grown.boxes) == 3 * len(boxes_a)
    assert [e["segments"] for e in grown.manifest["imports"]] == [1, 2]
    assert grown.points("log-a", 0).shape == (0, 4)  # the old segment's points file carried
    with pytest.raises(DataError, match="log-b: already imported into"):
        import_data("av2", [av2_logs / "log-b"], out, into=True)
    # the same log under another folder has the same segment id: refused by its name
    other = tmp_path / "elsewhere" / "log-a"
    shutil.copytree(av2_logs / "log-a", other)
    with pytest.raises(DataError, match="segment 'log-a' is already in"):
        import_data("av2", [other], out, into=True)
    # a failed import leaves the data set as it was, and no temporary folder
    again = Dataset.open(out)
    assert again.segments["segment_id"].tolist() == ["log-a", "log-b", "log-c"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["data", "elsewhere", "logs"]


def test_the_source_pool_is_drawn_by_segment_with_a_seed(tmp_path: Path):
    ds = import_data("kitti-tracking", [KITTI], tmp_path / "k0", source_share=0.1, seed=0)
    source = ds.segments.loc[ds.segments["split"] == "source", "segment_id"].tolist()
    assert len(ds.segments) == 21 and len(source) == 2  # 10% of 21, rounded
    assert ds.manifest["imports"][0]["source_segments"] == source
    same = import_data("kitti-tracking", [KITTI], tmp_path / "k1", source_share=0.1, seed=0)
    assert same.segments["split"].tolist() == ds.segments["split"].tolist()
    draws = set()
    for seed in range(4):
        drawn = import_data(
            "kitti-tracking", [KITTI], tmp_path / f"s{seed}", source_share=0.1, seed=seed
        )
        draws.add(tuple(drawn.segments.query("split == 'source'")["segment_id"]))
    assert len(draws) > 1
    one = import_data("kitti-tracking", [KITTI], tmp_path / "k2", source_share=0.01)
    assert (one.segments["split"] == "source").sum() == 1  # at least one
    with pytest.raises(ValueError, match=r"source share: must be in \(0, 1\]"):
        import_data("kitti-tracking", [KITTI], tmp_path / "k3", source_share=1.5)


def test_bad_inputs_are_named(tmp_path: Path):
    with pytest.raises(DataError, match="matches no file or folder"):
        import_data("waymo", [str(tmp_path / "*.tfrecord")], tmp_path / "w")
    with pytest.raises(DataError, match="not a av2 input, and holds none"):
        import_data("av2", [WAYMO_FRAMES], tmp_path / "w")
    with pytest.raises(DataError, match="given twice"):
        import_data("av2", [AV2_LOG, AV2_LOG], tmp_path / "w")
    objects = DATA / "waymo" / "objects"  # ground truth and predictions of one segment
    with pytest.raises(DataError, match="fake_predictions.bin: segment .* was read from"):
        import_data("waymo-objects", [objects], tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_the_cli_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    frames = sorted(WAYMO_FRAMES.glob("*.tfrecord"))
    assert main(["import", "waymo", str(frames[0]), "--out", "data/w"]) == 0
    assert main(["import", "waymo", str(frames[1]), "--into", "data/w"]) == 0
    out = capsys.readouterr().out
    assert "imported 1 segment from 1 input into data/w as unlabelled" in out
    assert len(Dataset.open("data/w").segments) == 2
    assert main(["import", "waymo", str(frames[1]), "--into", "data/w"]) == 2
    assert "already imported into data/w" in capsys.readouterr().err
    assert main(["import", "kitti-tracking", str(KITTI), "--out", "data/k",
                 "--source-share", "10%", "--seed", "0"]) == 0  # fmt: skip
    assert "2 drawn into the source split (seed 0)" in capsys.readouterr().out
    args = ["mine", "--data", "data/k", "--features", "geometry", "--estimator", "gaussian"]
    assert main([*args, "--method", "d-rem", "--budget", "3%", "--out", "mined.csv"]) == 0
    assert "wrote mined.csv" in capsys.readouterr().out
    for bad, message in [
        (["--out", "x", "--into", "data/k"], "give --out (a data set folder to create) or"),
        (["--into", "data/k", "--force"], "--force replaces an --out folder"),
        (["--out", "x", "--source-share", "150%"], "--source-share: must be in (0, 100%]"),
        (["--out", "x", "--source-share", "ten"], "expected a share such as 10%"),
    ]:
        assert main(["import", "kitti-tracking", str(KITTI), *bad]) == 2
        assert message in capsys.readouterr().err
