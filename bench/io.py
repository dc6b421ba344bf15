"""Benchmark: reading real data, one core.

- ``waymo_decode_frames_per_s``: Waymo v1 frames decoded to points per second: a frame
  (the real one-frame sample, its TFRecord container and protos) whose top LiDAR carries a
  first-return range image of a synthetic sweep laid out on the sample's own calibration
  (64 x 2650, about 110k points before the layout), re-serialised and decoded end to end:
  TFRecord, ``Frame`` proto, zlib, ``MatrixFloat``, range image to points;
  ``..._full``: the same with every pixel returning (169,600 points a frame).
- ``av2_import_s``: ``rem import av2`` of the sample log (12,078 cuboids, one sweep) into a
  data set folder.
- ``kitti_tracking_import_s``: ``rem import kitti-tracking`` of the 21 sequences (47,262
  boxes) into a data set folder.
- ``import_to_mined_s``: per sample, the commands a user types from the sample to a mined
  list and a Waymo label set (``rem import ...``, then ``rem mine ... --out mined.csv
  --labels labels.bin``, as ``tests/test_real_end_to_end.py`` runs them), each a fresh
  ``rem`` process on both cores with an empty cache; KITTI with ``--source-share 10%`` and
  ``--features geometry``, once with FFJORD and once with ``--estimator gaussian``.

Prints a summary, then (last line) JSON. Usage: ``python bench/io.py``
"""

from __future__ import annotations

import os

# The import-to-mined-list runs are separate `rem` processes on every core, as a user runs
# them: keep the environment and the cores before this process pins itself to one.
USER_ENV = dict(os.environ)
ALL_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def waymo_frames_per_s(repeats: int = 20, full: bool = False) -> tuple[float, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_waymo_lidar import world_points

    from rem_core.io import (
        encode_matrix,
        frame_points,
        points_to_range_image,
        read_frames,
        write_records,
    )

    (frame,) = list(read_frames(DATA / "waymo" / "frames" / "pvps_data_one_frame.tfrecord"))
    top = next(c for c in frame.context.laser_calibrations if c.name == 1)
    laser = frame.lasers[0]
    laser.name = 1
    image = points_to_range_image(world_points(), top, 64, 2650)
    if full:  # every pixel returns: 169,600 points, denser than any real sweep
        image[:, :, 0] = np.random.default_rng(0).uniform(2.0, 75.0, image.shape[:2])
    laser.ri_return1.range_image_compressed = encode_matrix(image)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_records(Path(tmp) / "seg.tfrecord", [frame.SerializeToString()] * repeats)
        start = time.perf_counter()
        n = 0
        for f in read_frames(path):
            n = len(frame_points(f, lasers=(1,)))
        seconds = time.perf_counter() - start
    return repeats / seconds, n


def av2_s() -> float:
    from rem_core.io import import_av2

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        import_av2(DATA / "av2" / "adcf7d18", Path(tmp) / "av2")
        return time.perf_counter() - start


def kitti_s() -> float:
    from rem_core.io import import_kitti_tracking

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        import_kitti_tracking(DATA / "kitti_tracking", Path(tmp) / "kitti")
        return time.perf_counter() - start


MINE = ["mine", "--data", "data", "--method", "d-rem", "--budget", "3%", "--out", "mined.csv",
        "--labels", "labels.bin"]  # fmt: skip
KITTI_IMPORT = ["import", "kitti-tracking", "{DATA}/kitti_tracking", "--out", "data",
                "--source-share", "10%", "--seed", "0"]  # fmt: skip
WO_IMPORT = ["import", "waymo-objects", "{DATA}/waymo/objects/fake_ground_truths.bin", "--out",
             "data"]  # fmt: skip
WO_DETECTIONS = ["import", "detections", "{DATA}/waymo/objects/fake_predictions.bin", "--data",
                 "data", "--format", "waymo-objects"]  # fmt: skip
RUNS = {
    "av2": [["import", "av2", "{DATA}/av2", "--out", "data"], MINE],
    "waymo_frames": [["import", "waymo", "{DATA}/waymo/frames", "--out", "data"], MINE],
    "waymo_objects_with_predictions": [WO_IMPORT, WO_DETECTIONS, MINE],
    "kitti_tracking": [KITTI_IMPORT, [*MINE, "--features", "geometry"]],
    "kitti_tracking_gaussian": [
        KITTI_IMPORT,
        [*MINE, "--features", "geometry", "--estimator", "gaussian"],
    ],
}


def import_to_mined_s() -> dict[str, float]:
    """Seconds from each sample to its mined list, through ``rem`` as typed."""
    import subprocess

    rem = Path(sys.executable).with_name("rem")

    def unpin() -> None:
        if ALL_CORES is not None:
            os.sched_setaffinity(0, ALL_CORES)

    out = {}
    for name, commands in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            env = {**USER_ENV, "REM_CACHE_DIR": str(Path(tmp) / "cache")}
            start = time.perf_counter()
            for command in commands:
                argv = [str(rem), *(part.replace("{DATA}", str(DATA)) for part in command)]
                done = subprocess.run(
                    argv, cwd=tmp, env=env, preexec_fn=unpin, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(argv)}: {done.stderr[-800:]}")
            out[name] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    rate, n = waymo_frames_per_s()
    full_rate, full_n = waymo_frames_per_s(full=True)
    result = {
        "waymo_decode_frames_per_s": rate,
        "waymo_points_per_frame": n,
        "waymo_decode_frames_per_s_full": full_rate,
        "waymo_points_per_frame_full": full_n,
        "av2_import_s": av2_s(),
        "kitti_tracking_import_s": kitti_s(),
        "import_to_mined_s": import_to_mined_s(),
    }
    print(
        f"Waymo: {rate:.1f} frames/s decoded ({n:,} points each), {full_rate:.1f} frames/s "
        f"with every pixel returning ({full_n:,} points; target >= 10)"
    )
    print(
        f"imports: AV2 sample {result['av2_import_s']:.2f} s; KITTI tracking, 21 sequences, "
        f"{result['kitti_tracking_import_s']:.2f} s"
    )
    print(
        "sample to mined list through `rem`: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result["import_to_mined_s"].items())
        + " (target for KITTI: 10 s)"
    )
    print(json.dumps(with_calibration(result)))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
