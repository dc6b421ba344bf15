"""Benchmark: the pipeline's two detection passes on the demo world, with the demo's detectors.

Times, on the first ``--segments`` segments of the preset's world (default 24 of the demo's
216; the world and the ensemble come from the cache, built or copied if missing):

* **main**: the main model (member 0) with ROI features of its detections and of the
  ground-truth boxes of every class, as the pipeline's ``detecting`` stage runs it;
* **members**: members 2-5 on the unlabelled segments among them (``detect_ensemble``
  without counting points, as the pipeline's members stage runs it).

Each pass runs once to warm up on one segment, then ``--repeats`` times; the median is kept.
A profile of where a pass spends its time: ``py-spy record -r 50 -- python
bench/inference.py``.

Prints a summary, then (last line) JSON: ``{"main_ms_per_frame", "members_ms_per_frame",
"main_frames", "member_frames", "segments", "threads", "calibration_s", ...}``
(``members_ms_per_frame``: per frame and member).

Usage: ``python bench/inference.py [--preset demo] [--segments 24] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from calibrate import with_calibration

from rem_core.config import PRESETS, RemConfig
from rem_core.detect import detect, detect_ensemble
from rem_core.pipeline import ensure_detectors, ensure_world


def _timed(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument("--segments", type=int, default=24, help="first N segments")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each pass")
    args = parser.parse_args()
    if args.segments < 1 or args.repeats < 1:
        parser.error("--segments and --repeats must be at least 1")
    config = RemConfig.preset(args.preset)
    dataset = ensure_world(config.world)
    models = ensure_detectors(config, dataset)
    segments = dataset.segments["segment_id"].tolist()[: args.segments]
    unlabelled = set(dataset.split_ids("unlabelled"))
    pool = [s for s in segments if s in unlabelled]
    frames = dataset.frames
    n_main = int(frames["segment_id"].isin(segments).sum())
    n_pool = int(frames["segment_id"].isin(pool).sum())
    classes = ("vehicle", "pedestrian", "cyclist")

    detect(models[0], dataset, segments[:1], gt_classes=classes)  # warm up
    main_s = _timed(lambda: detect(models[0], dataset, segments, gt_classes=classes), args.repeats)
    members_s = float("nan")
    if pool and len(models) > 1:
        members_s = _timed(
            lambda: detect_ensemble(models[1:], dataset, pool, count_points=False), args.repeats
        )
    result = {
        "main_ms_per_frame": round(1000 * main_s / n_main, 1),
        "members_ms_per_frame": round(1000 * members_s / max(n_pool, 1) / (len(models) - 1), 1),
        "main_frames": n_main,
        "member_frames": n_pool,
        "members": len(models) - 1,
        "segments": len(segments),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    print(
        f"main model with ROI features: {result['main_ms_per_frame']} ms a frame "
        f"({n_main} frames); members: {result['members_ms_per_frame']} ms a frame and member "
        f"({n_pool} frames x {len(models) - 1}), median of {args.repeats}"
    )
    print(json.dumps(with_calibration(result)))


if __name__ == "__main__":
    main()
