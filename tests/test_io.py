"""Output files (rem_core.files) and Waymo Objects (rem_core.io.waymo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.files import clean_stale, publish_file, publish_folder, publishing
from rem_core.io import read_objects, write_objects
from rem_core.schema import BOX_COLUMNS, DataError, SchemaError


def test_publish_file_is_atomic_and_never_overwrites_silently(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    publish_file(path, lambda tmp: tmp.write_text("one"))
    assert path.read_text() == "one"
    with pytest.raises(FileExistsError, match="out.txt: exists"):
        publish_file(path, lambda tmp: tmp.write_text("two"))

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_file(path, fail, force=True)
    assert path.read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left
    publish_file(path, lambda tmp: tmp.write_text("two"), force=True)
    assert path.read_text() == "two"


def test_publish_folder_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "entry"
    publish_folder(path, lambda tmp: (tmp / "a").write_text("one"))
    publish_folder(path, lambda tmp: (tmp / "b").write_text("two"))  # replaced, not merged
    assert sorted(p.name for p in path.iterdir()) == ["b"]

    def fail(tmp: Path) -> None:
        (tmp / "c").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_folder(path, fail)
    assert sorted(p.name for p in path.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]  # no sibling left
    with pytest.raises(FileExistsError, match="entry: exists and is not empty"):
        publish_folder(path, lambda tmp: None, force=False)
    with publishing(tmp_path / "new", force=False) as tmp:
        (tmp / "x").write_text("1")
        assert not (tmp_path / "new").exists()  # only on a clean exit
    assert (tmp_path / "new" / "x").read_text() == "1"


def test_a_copy_left_aside_by_a_killed_swap_goes_back(tmp_path: Path) -> None:
    from rem_core import files

    # a writer killed between its two renames: the old copy aside, the new one not in place
    dead = 2**22 + 7  # above Linux's largest pid_max: no process has it
    aside = tmp_path / f".entry.old-{files._host()}-{dead}-ab"
    aside.mkdir()
    (aside / "a").write_text("old")
    half = tmp_path / f".entry.tmp-{files._host()}-{dead}-cd"
    half.mkdir()
    assert clean_stale(tmp_path / "entry") == [half]
    assert (tmp_path / "entry" / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_publishing_over_a_symlink_replaces_the_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    publish_folder(tmp_path / "link", lambda tmp: (tmp / "x").write_text("1"))
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link" / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_a_killed_writer_leaves_nothing_the_next_one_keeps(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    # a writer killed (SIGKILL) in the middle of writing its entry
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from rem_core.files import publishing\n"
        "with publishing(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'half').write_text('x')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "entry")], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".entry.tmp-")
    # a live writer's folder and another machine's are kept
    from rem_core import files

    live = tmp_path / f".entry.tmp-{files._host()}-{os.getpid()}-abc"
    other = tmp_path / ".entry.tmp-elsewhere-1-abc"
    live.mkdir()
    other.mkdir()
    publish_folder(tmp_path / "entry", lambda tmp: (tmp / "whole").write_text("y"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["entry", live.name, other.name])
    assert sorted(p.name for p in (tmp_path / "entry").iterdir()) == ["whole"]
    assert clean_stale(tmp_path / "entry") == []


def test_a_published_file_is_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    import stat

    from rem_core import files

    path = publish_file(tmp_path / "mined.csv", lambda tmp: tmp.write_text("x"))
    # not mkstemp's private 0600: what a plain open() would have made
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~files._UMASK


def test_publish_file_validates_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        publish_file(tmp_path / "missing" / "x.csv", lambda tmp: tmp.write_text(""))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        publish_file(tmp_path, lambda tmp: tmp.write_text(""), force=True)


def boxes_and_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = pd.DataFrame(
        {"segment_id": ["a", "a", "b"], "frame_index": [0, 1, 0],
         "timestamp_micros": [1_000_000, 1_100_000, 5_000_000]}
    )  # fmt: skip
    rng = np.random.default_rng(0)
    boxes = pd.DataFrame(rng.normal(size=(4, 7)) + [0, 0, 1, 5, 2, 1.6, 0], columns=BOX_COLUMNS)
    boxes["segment_id"] = ["a", "a", "b", "b"]
    boxes["frame_index"] = [0, 1, 0, 0]
    boxes["track_id"] = ["t1", "t1", "t7", "p2"]
    boxes["class"] = ["vehicle", "vehicle", "vehicle", "pedestrian"]
    boxes["num_points"] = [250, 120, 30, 12]
    boxes["score"] = [1.0, 1.0, 0.8, 0.55]
    return boxes, frames


def test_waymo_objects_round_trip(tmp_path: Path) -> None:
    from waymo_open_dataset.protos import metrics_pb2

    boxes, frames = boxes_and_frames()
    path = write_objects(boxes, frames, tmp_path / "labels.bin")
    raw = metrics_pb2.Objects.FromString(path.read_bytes())
    assert len(raw.objects) == 4
    assert raw.objects[1].frame_timestamp_micros == 1_100_000
    assert raw.objects[3].object.type == 2  # TYPE_PEDESTRIAN
    back = read_objects(path)
    assert back["segment_id"].tolist() == ["a", "a", "b", "b"]
    assert back["track_id"].tolist() == ["t1", "t1", "t7", "p2"]
    assert back["class"].tolist() == boxes["class"].tolist()
    np.testing.assert_allclose(back[BOX_COLUMNS], boxes[BOX_COLUMNS])
    np.testing.assert_allclose(back["score"], boxes["score"], rtol=1e-6)
    assert back["num_points"].tolist() == [250, 120, 30, 12]


def test_waymo_objects_errors_name_the_problem(tmp_path: Path) -> None:
    boxes, frames = boxes_and_frames()
    with pytest.raises(SchemaError, match="'heading'"):
        write_objects(boxes.drop(columns="heading"), frames, tmp_path / "x.bin")
    with pytest.raises(SchemaError, match="no Waymo type.*'tram'"):
        write_objects(boxes.assign(**{"class": "tram"}), frames, tmp_path / "x.bin")
    with pytest.raises(SchemaError, match="frame 1 of segment 'b'"):
        write_objects(boxes.assign(frame_index=[0, 1, 1, 0]), frames, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()
    (tmp_path / "bad.bin").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="bad.bin: not a metrics_pb2.Objects file"):
        read_objects(tmp_path / "bad.bin")


WAYMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "waymo"
needs_waymo = pytest.mark.skipif(not WAYMO.is_dir(), reason=f"no Waymo samples at {WAYMO}")


@needs_waymo
def test_waymo_frame_labels_become_boxes_with_persistent_ids():
    from rem_core.io import frame_boxes, frame_row, read_frames

    (frame,) = list(read_frames(WAYMO / "frames" / "pvps_data_one_frame.tfrecord"))
    boxes = frame_boxes(frame, 0)
    assert len(boxes) == 75
    assert boxes["class"].value_counts().to_dict() == {
        "vehicle": 37, "sign": 25, "pedestrian": 12, "cyclist": 1
    }  # fmt: skip
    assert boxes["track_id"].is_unique and boxes["track_id"].str.len().min() > 10
    label = frame.laser_labels[0]
    assert boxes["num_points"].iloc[0] == label.num_lidar_points_in_box
    assert boxes["center_x"].iloc[0] == label.box.center_x
    row = frame_row(frame, 0)
    pose = np.asarray(frame.pose.transform).reshape(4, 4)
    assert (row["pose_x"], row["pose_y"], row["pose_z"]) == tuple(pose[:3, 3])
    assert row["segment_id"] == frame.context.name
    # The quaternion gives back the pose's rotation.
    from scipy.spatial.transform import Rotation

    q = [row["pose_qx"], row["pose_qy"], row["pose_qz"], row["pose_qw"]]
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), pose[:3, :3], atol=1e-9)


@needs_waymo
def test_waymo_reader_refuses_the_wrong_proto(tmp_path: Path):
    from rem_core.io import read_frames, write_records

    objects = (WAYMO / "objects" / "fake_ground_truths.bin").read_bytes()
    path = write_records(tmp_path / "objects.tfrecord", [objects])
    with pytest.raises(DataError, match=r"objects.tfrecord: record 0 is not a dataset_pb2.Frame"):
        list(read_frames(path))


@needs_waymo
def test_waymo_objects_files_read_as_tracks():
    gt = read_objects(WAYMO / "objects" / "fake_ground_truths.bin")
    assert len(gt) == 1010 and gt["track_id"].nunique() == 104
    assert gt.groupby("segment_id")["timestamp_micros"].nunique().tolist() == [10, 10]
    preds = read_objects(WAYMO / "objects" / "fake_predictions.bin")
    assert len(preds) == 2263 and preds["score"].between(0, 1).all()
