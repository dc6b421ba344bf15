"""KITTI tracking: ground truth (``label_02``), calibration, and detections in the AB3DMOT
text format, converted to boxes in the LiDAR frame.

KITTI boxes live in the rectified camera frame (x right, y down, z forward), with the
*bottom* centre of the box and ``rotation_y`` about the camera's y axis (0: the object's
length along camera x). The LiDAR (Velodyne) frame is x forward, y left, z up, as Waymo's
vehicle frame. A rectified point maps to the LiDAR by
``p_velo = inv(R0_rect @ Tr_velo_to_cam) @ p_rect`` (homogeneous 4 x 4); a box's centre is
its bottom centre raised by half its height, and its heading is the direction of its
length carried through the same rotation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.geometry import wrap_angle
from rem_core.schema import BOX_COLUMNS, DataError

__all__ = [
    "KITTI_CLASSES",
    "camera_to_lidar",
    "read_calib",
    "read_kitti_detections",
    "read_labels",
    "sequence_length",
]

#: KITTI types -> (class, subtype) of the project.
KITTI_CLASSES: dict[str, tuple[str, str]] = {
    "Car": ("vehicle", "car"),
    "Van": ("vehicle", "van"),
    "Truck": ("vehicle", "truck"),
    "Tram": ("vehicle", "tram"),
    "Pedestrian": ("pedestrian", "pedestrian"),
    "Person": ("pedestrian", "person_sitting"),
    "Person_sitting": ("pedestrian", "person_sitting"),
    "Cyclist": ("cyclist", "cyclist"),
    "Misc": ("other", "misc"),
}

#: Class codes of the AB3DMOT detection files.
AB3DMOT_TYPES = {1: "Pedestrian", 2: "Car", 3: "Cyclist"}

_LABEL_COLUMNS = [
    "frame", "track", "type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2",
    "h", "w", "l", "x", "y", "z", "rotation_y",
]  # fmt: skip
_DETECTION_COLUMNS = [
    "frame", "type", "x1", "y1", "x2", "y2", "score", "h", "w", "l", "x", "y", "z",
    "rotation_y", "alpha",
]  # fmt: skip


def read_calib(path: str | Path) -> np.ndarray:
    """The 4 x 4 transform from the rectified camera frame to the LiDAR frame.

    Reads ``R0_rect`` (or ``R_rect``) and ``Tr_velo_to_cam`` (or ``Tr_velo_cam``).

    Raises:
        DataError: naming the file and the missing or malformed key.
    """
    path = Path(path)
    values: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.strip():
            try:
                values[key.strip()] = np.array(rest.split(), dtype=np.float64)
            except ValueError:
                raise DataError(f"{path}: key {key.strip()!r} holds non-numbers") from None

    def get(*names: str, size: int) -> np.ndarray:
        for name in names:
            if name in values:
                if values[name].size != size:
                    raise DataError(f"{path}: {name} has {values[name].size} values, not {size}")
                return values[name]
        raise DataError(f"{path}: no {' or '.join(names)}")

    rect = np.eye(4)
    rect[:3, :3] = get("R0_rect", "R_rect", size=9).reshape(3, 3)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :] = get("Tr_velo_to_cam", "Tr_velo_cam", size=12).reshape(3, 4)
    return np.linalg.inv(rect @ velo_to_cam)


def camera_to_lidar(boxes: pd.DataFrame, cam_to_lidar: np.ndarray) -> np.ndarray:
    """KITTI boxes (``h, w, l, x, y, z, rotation_y`` in the rectified camera frame, bottom
    centre) as ``(N, 7)`` ``BOX_COLUMNS`` rows in the LiDAR frame (geometric centre)."""
    h, w, length = (boxes[c].to_numpy(np.float64) for c in ("h", "w", "l"))
    bottom = boxes[["x", "y", "z"]].to_numpy(np.float64)
    centre = bottom - np.column_stack([np.zeros_like(h), h / 2, np.zeros_like(h)])  # y is down
    homo = np.column_stack([centre, np.ones(len(centre))])
    centre_lidar = (homo @ cam_to_lidar.T)[:, :3]
    ry = boxes["rotation_y"].to_numpy(np.float64)
    forward_cam = np.column_stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)])
    forward = forward_cam @ cam_to_lidar[:3, :3].T
    heading = wrap_angle(np.arctan2(forward[:, 1], forward[:, 0]))
    return np.column_stack([centre_lidar, length, w, h, heading])


def _read_table(path: Path, columns: list[str], sep: str | None) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep=sep or r"\s+", header=None, names=columns)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a KITTI tracking text file ({exc})") from None
    numeric = [c for c in columns if c != "type"]
    bad = table[numeric].apply(pd.to_numeric, errors="coerce").isna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}: line {row + 1}, column {numeric[col]!r} is not a number")
    return table


def _to_boxes(table: pd.DataFrame, cam_to_lidar: np.ndarray, segment_id: str) -> pd.DataFrame:
    boxes = camera_to_lidar(table, cam_to_lidar)
    cls = table["type"].map(lambda t: KITTI_CLASSES.get(t, ("other", str(t).lower())))
    out = pd.DataFrame(boxes, columns=BOX_COLUMNS)
    out.insert(0, "segment_id", segment_id)
    out.insert(1, "frame_index", table["frame"].to_numpy(np.int32))
    out.insert(2, "class", [c for c, _ in cls])
    out.insert(3, "subtype", [s for _, s in cls])
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    return out


def read_labels(label_path: str | Path, calib_path: str | Path) -> pd.DataFrame:
    """A sequence's ground truth (``label_02/NNNN.txt``) as boxes in the LiDAR frame.

    ``DontCare`` regions are left out. The segment id is the file's stem.

    Returns:
        ``segment_id, frame_index, class, subtype``, the box columns, ``distance``,
        ``track_id`` (the sequence's integer id as text), ``truncated``, ``occluded``.
    """
    label_path = Path(label_path)
    table = _read_table(label_path, _LABEL_COLUMNS, None)
    table = table[table["type"] != "DontCare"].reset_index(drop=True)
    out = _to_boxes(table, read_calib(calib_path), label_path.stem)
    out.insert(2, "track_id", table["track"].astype(int).astype(str).to_numpy())
    out["truncated"] = table["truncated"].to_numpy(np.float32)
    out["occluded"] = table["occluded"].to_numpy(np.int32)
    return out


def sequence_length(label_path: str | Path) -> int:
    """Frames of a sequence: one more than the last frame its labels name (``DontCare``
    regions included)."""
    table = _read_table(Path(label_path), _LABEL_COLUMNS, None)
    return int(table["frame"].max()) + 1 if len(table) else 0


def read_kitti_detections(path: str | Path, calib_path: str | Path) -> pd.DataFrame:
    """A sequence's detections in the AB3DMOT format (comma-separated ``frame, type, x1, y1,
    x2, y2, score, h, w, l, x, y, z, rotation_y, alpha``) as boxes in the LiDAR frame, with
    their ``score`` (raw detector logits in PointRCNN's files, not probabilities)."""
    path = Path(path)
    table = _read_table(path, _DETECTION_COLUMNS, ",")
    unknown = sorted(set(table["type"].astype(int)) - set(AB3DMOT_TYPES))
    if unknown:
        raise DataError(f"{path}: column 'type' has unknown class codes {unknown}")
    table["type"] = table["type"].astype(int).map(AB3DMOT_TYPES)
    out = _to_boxes(table, read_calib(calib_path), path.stem)
    out["score"] = table["score"].to_numpy(np.float32)
    return out
