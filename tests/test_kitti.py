"""KITTI tracking labels and detections (rem_core.io.kitti): a hand-worked frame change and
the real samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.io import camera_to_lidar, read_calib, read_kitti_detections, read_labels
from rem_core.schema import DataError

KITTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_tracking"
needs_kitti = pytest.mark.skipif(not KITTI.is_dir(), reason=f"no KITTI samples at {KITTI}")

# The canonical axes: camera x = -lidar y, camera y = -lidar z, camera z = lidar x.
CANONICAL = "R0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n"


def test_a_hand_worked_box(tmp_path: Path):
    (tmp_path / "calib.txt").write_text(CANONICAL)
    to_lidar = read_calib(tmp_path / "calib.txt")
    boxes = pd.DataFrame(
        {"h": [1.5, 1.5], "w": [1.8, 1.8], "l": [4.0, 4.0], "x": [2.0, 2.0], "y": [1.5, 1.5],
         "z": [10.0, 10.0], "rotation_y": [0.0, np.pi / 2]}
    )  # fmt: skip
    out = camera_to_lidar(boxes, to_lidar)
    # bottom centre 1.5 m below the camera's y = 0 -> centre 0.75 m below the LiDAR origin
    np.testing.assert_allclose(out[0, :6], [10.0, -2.0, -0.75, 4.0, 1.8, 1.5], atol=1e-12)
    assert out[0, 6] == pytest.approx(-np.pi / 2)  # facing camera x (right) = lidar -y
    assert abs(out[1, 6]) == pytest.approx(np.pi)  # facing the camera = lidar -x


def test_bad_files_are_named(tmp_path: Path):
    (tmp_path / "calib.txt").write_text("R0_rect: 1 0 0\n")
    with pytest.raises(DataError, match="calib.txt: R0_rect has 3 values, not 9"):
        read_calib(tmp_path / "calib.txt")
    (tmp_path / "calib.txt").write_text(CANONICAL)
    (tmp_path / "0000.txt").write_text("0 1 Car 0 0 0 1 1 2 2 1.5 1.8 4.0 2.0 1.5 nan 0.0\n")
    with pytest.raises(DataError, match=r"0000.txt: line 1, column 'z' is not a number"):
        read_labels(tmp_path / "0000.txt", tmp_path / "calib.txt")
    (tmp_path / "det.txt").write_text("0,7,1,1,2,2,0.5,1.5,1.8,4.0,2.0,1.5,10.0,0.0,0.0\n")
    with pytest.raises(DataError, match="unknown class codes \\[7\\]"):
        read_kitti_detections(tmp_path / "det.txt", tmp_path / "calib.txt")


@needs_kitti
def test_the_real_sequences():
    labels = pd.concat(
        read_labels(path, KITTI / "training" / "calib" / path.name)
        for path in sorted((KITTI / "training" / "label_02").glob("*.txt"))
    )
    assert len(labels) == 47_262 and labels["segment_id"].nunique() == 21
    first = labels[labels["segment_id"] == "0000"]
    assert first["frame_index"].nunique() == 154 and first["track_id"].nunique() == 15
    assert len(first) == 711
    counts = labels["subtype"].value_counts()
    assert counts["car"] == 27_300 and counts["van"] == 3_301 and counts["tram"] == 595
    # In the LiDAR frame, cars sit on the ground about 1.7 m below the sensor, in front.
    cars = labels[labels["subtype"] == "car"]
    assert cars["center_z"].median() == pytest.approx(-1.73 + 1.5 / 2, abs=0.3)
    assert (cars["center_x"] > 0).mean() > 0.95


@needs_kitti
def test_the_real_detections_keep_their_scores():
    frames = []
    for kind in ("Car", "Pedestrian", "Cyclist"):
        folder = KITTI / "detections" / f"pointrcnn_{kind}_val"
        for path in sorted(folder.glob("*.txt")):
            if path.stat().st_size:
                frames.append(read_kitti_detections(path, KITTI / "training" / "calib" / path.name))
    dets = pd.concat(frames)
    assert dets["class"].value_counts().to_dict() == {
        "vehicle": 48_553, "pedestrian": 23_462, "cyclist": 8_456
    }  # fmt: skip
    assert dets["score"].min() < 0 < dets["score"].max()
