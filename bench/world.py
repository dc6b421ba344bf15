"""Benchmark: simulating the demo world on one core.

Prints a human-readable summary, then (last line) JSON:
``{"frames_per_s", "points_per_frame", "objects_per_frame", "large_track_share", ...}``;
``s_per_segment`` and ``ood_s_per_segment`` are the mean seconds of a segment of the main
region and of the other (hilly) region.
``frames_per_s`` times simulation alone (scene layout, ray casting, labels, point counts);
``write_frames_per_s`` times writing the same frames as Parquet.

Usage: ``python bench/world.py [--preset demo] [--segments N]``
Target (issue 2): >= 20 frames/s with ~100k points per frame.
"""

from __future__ import annotations

import os

# One core: pin the process and keep every thread pool to one thread.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.config import PRESETS, RemConfig  # noqa: E402
from rem_core.dataset import DatasetWriter, summarize_tracks  # noqa: E402
from rem_core.geometry import size_subset  # noqa: E402
from rem_core.world import Lidar, simulate_segment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument(
        "--segments",
        type=int,
        default=None,
        help="simulate only the first N segments (default: all)",
    )
    args = parser.parse_args()
    config = RemConfig.preset(args.preset).world
    n = min(args.segments or config.n_total_segments, config.n_total_segments)

    lidar = Lidar(config.lidar)
    simulate_segment(dataclasses.replace(config, frames_per_segment=1), 0, lidar)  # warm up
    segments, took = [], []
    for index in range(n):
        start = time.perf_counter()
        segments.append(simulate_segment(config, index, lidar))
        took.append(time.perf_counter() - start)
    seconds = sum(took)
    timed = list(zip(segments, took, strict=True))
    frames = sum(len(s.frames) for s in segments)
    points = sum(len(s.points) for s in segments)
    boxes = pd.concat([s.boxes for s in segments], ignore_index=True)
    tracks = summarize_tracks(boxes)
    ood = {s.segment_id for s in segments if s.split == "ood"}
    vehicles = tracks[tracks["class"] == "vehicle"]
    subset = size_subset(vehicles["length"], vehicles["width"], vehicles["height"])
    in_domain = ~vehicles["segment_id"].isin(ood).to_numpy()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with DatasetWriter(f"{tmp}/w", {"source": "bench"}) as writer:
            for s in segments[: min(4, n)]:
                writer.add_segment(
                    s.segment_row(),
                    s.frames,
                    s.boxes,
                    (s.frame_points(f) for f in range(len(s.frames))),
                )
        written = sum(len(s.frames) for s in segments[: min(4, n)])
        write_s = time.perf_counter() - start

    result = {
        "preset": args.preset,
        "segments": n,
        "frames": frames,
        "frames_per_s": round(frames / seconds, 2),
        "points_per_frame": round(points / frames),
        "objects_per_frame": round(len(boxes) / frames, 1),
        "vehicle_tracks": len(vehicles),
        "large_tracks": int((subset == "large").sum()),
        # The share in the source, unlabelled and validation pools; the out-of-distribution
        # region has its own, heavier mix.
        "large_track_share": round(float(np.mean(subset[in_domain] == "large")), 4),
        "large_track_share_ood": round(float(np.mean(subset[~in_domain] == "large")), 4)
        if (~in_domain).any()
        else None,
        "write_frames_per_s": round(written / write_s, 2),
        # the other region's hills make its segments the slowest (the ray-ground search)
        "s_per_segment": _mean(t for seg, t in timed if seg.split != "ood"),
        "ood_s_per_segment": _mean(t for seg, t in timed if seg.split == "ood"),
    }
    print(f"simulated {frames} frames of {n} segments in {seconds:.1f} s on one core")
    print(
        f"{result['points_per_frame']:,} points and {result['objects_per_frame']} labelled "
        f"objects per frame; {len(vehicles)} vehicle tracks, {result['large_tracks']} large"
    )
    print(json.dumps(with_calibration(result)))


def _mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 3) if values else None


if __name__ == "__main__":
    main()
