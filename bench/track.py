"""Benchmark: tracking and auto-labelling noisy detections of demo-world segments, one core.

Simulates the first ``--segments`` unlabelled segments of the demo world, makes noisy
single-frame detections from their ground truth (``rem_core.track.simulate_detections``),
tracks them and auto-labels the tracks.

Prints a human-readable summary, then (last line) JSON:
``{"track_frames_per_s", "autolabel_frames_per_s", "id_switches", "purity", "ap_raw",
"ap_autolabel", ...}``. ``*_frames_per_s`` time ``track_detections`` and ``auto_label``
alone. Tracking metrics use BEV IoU 0.1 (association, not localisation); ``ap_*`` are
BEV AP at IoU 0.5, mean over vehicle, pedestrian and cyclist (``rem_core.evaluation.evaluate``), and
``ap_*_vehicle_3d`` vehicle AP at 3D IoU 0.5, as the paper reports.

Usage: ``python bench/track.py [--segments N] [--seed S]``
"""

from __future__ import annotations

import os

# One core: pin the process and keep every thread pool to one thread.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import pandas as pd  # noqa: E402
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.config import AutoLabelConfig, TrackerConfig, WorldConfig  # noqa: E402
from rem_core.evaluation import evaluate_detections  # noqa: E402
from rem_core.track import (  # noqa: E402
    auto_label,
    simulate_detections,
    track_detections,
    tracking_metrics,
)
from rem_core.world import (  # noqa: E402
    Lidar,
    plan_segments,
    simulate_segment,
)

CLASSES = ("vehicle", "pedestrian", "cyclist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=4, help="unlabelled segments to use")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated detections")
    args = parser.parse_args()

    config = WorldConfig.demo()
    plan = plan_segments(config)
    indices = [i for i in range(len(plan)) if plan.iloc[i]["split"] == "unlabelled"]
    indices = indices[: args.segments]
    lidar = Lidar(config.lidar)
    segments = [simulate_segment(config, i, lidar) for i in indices]
    gt = pd.concat([s.boxes for s in segments], ignore_index=True)
    frames = pd.concat([s.frames for s in segments], ignore_index=True)
    detections = simulate_detections(gt, seed=args.seed)

    start = time.perf_counter()
    tracked = track_detections(detections, frames, TrackerConfig())
    track_s = time.perf_counter() - start
    start = time.perf_counter()
    labels = auto_label(tracked, frames, AutoLabelConfig())
    label_s = time.perf_counter() - start

    metrics = tracking_metrics(tracked, gt, iou_threshold=0.1)
    label_metrics = tracking_metrics(labels, gt, iou_threshold=0.1)
    ap = {
        name: evaluate_detections(table, gt, 0.5, iou="bev", classes=CLASSES).ap()
        for name, table in (("raw", detections), ("autolabel", labels))
    }
    ap3d = {
        name: evaluate_detections(table, gt, 0.5, iou="3d", classes=("vehicle",)).ap()
        for name, table in (("raw", detections), ("autolabel", labels))
    }
    n_frames = len(frames)
    result = {
        "segments": len(segments),
        "frames": n_frames,
        "gt_boxes": len(gt),
        "detections": len(detections),
        "track_frames_per_s": round(n_frames / track_s, 1),
        "autolabel_frames_per_s": round(n_frames / label_s, 1),
        "id_switches": metrics.id_switches,
        "gt_tracks": metrics.num_gt_tracks,
        "tracks": metrics.num_tracks,
        "purity": round(metrics.purity, 4),
        "mostly_tracked": round(metrics.mostly_tracked, 4),
        "mota": round(metrics.mota, 4),
        "fragmentations": metrics.fragmentations,
        "fragmentations_autolabel": label_metrics.fragmentations,
        "ap_raw": round(ap["raw"], 4),
        "ap_autolabel": round(ap["autolabel"], 4),
        "ap_raw_vehicle_3d": round(ap3d["raw"], 4),
        "ap_autolabel_vehicle_3d": round(ap3d["autolabel"], 4),
        "interpolated_boxes": int(labels["interpolated"].sum()),
    }
    print(
        f"{len(segments)} segments, {n_frames} frames, {len(gt)} GT boxes, "
        f"{len(detections)} detections"
    )
    print(
        f"tracking {result['track_frames_per_s']} frames/s, auto-labelling "
        f"{result['autolabel_frames_per_s']} frames/s on one core"
    )
    print(
        f"{metrics.id_switches} ID switches over {metrics.num_gt_tracks} GT tracks, purity "
        f"{metrics.purity:.4f}; BEV AP@0.5 {ap['raw']:.3f} raw -> {ap['autolabel']:.3f} "
        f"auto-labelled; vehicle 3D AP@0.5 {ap3d['raw']:.3f} -> {ap3d['autolabel']:.3f}"
    )
    print(json.dumps(with_calibration(result)))


if __name__ == "__main__":
    main()
