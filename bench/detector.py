"""Benchmark: the BEV detector on the demo world.

Trains one detector from scratch on the source pool (timed), runs it over the validation and
unlabelled pools, evaluates AP at 3D IoU 0.5 on validation (All / Regular / Large, Waymo
LEVEL_1: ground truth with more than 5 points), tracks and auto-labels the unlabelled pool,
and compares the auto-labels' AP with the raw detections' there.

Prints a summary, then (last line) JSON: ``{"ap_all", "ap_regular", "ap_large",
"ap_autolabel_all", "train_s", "infer_frames_per_s", "tracker_id_switches", ...}``.

Usage: ``python bench/detector.py [--preset demo]``
Targets (issue 3): Regular AP >= 0.7 with a clear gap to Large; auto-labels above raw
detections; one detector trained within 2 minutes; inference >= 10 frames/s.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rem_core.artifacts import ensure_world
from rem_core.config import RemConfig
from rem_core.detect import detect, train_detector
from rem_core.evaluate import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.track import auto_label, track_detections, tracking_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=["tiny", "demo", "full"])
    args = parser.parse_args()
    config = RemConfig.preset(args.preset)
    ds = ensure_world(config.world)
    seg = ds.segments
    val = seg.loc[seg["split"] == "validation", "segment_id"].tolist()
    pool = seg.loc[seg["split"] == "unlabelled", "segment_id"].tolist()

    start = time.perf_counter()
    model = train_detector(config.detector, ds)
    train_s = time.perf_counter() - start

    on_val = detect(model, ds, val, with_features=True)
    gt_val = ds.boxes[ds.boxes["segment_id"].isin(val)]
    ev = evaluate_detections(on_val.detections, gt_val, min_points=LEVEL_1_MIN_POINTS)

    on_pool = detect(model, ds, pool, with_features=False)
    gt_pool = ds.boxes[ds.boxes["segment_id"].isin(pool)]
    start = time.perf_counter()
    tracked = track_detections(on_pool.detections, ds.frames, config.tracker)
    labels = auto_label(tracked, ds.frames, config.auto_label)
    track_s = time.perf_counter() - start
    raw = evaluate_detections(on_pool.detections, gt_pool, min_points=LEVEL_1_MIN_POINTS)
    auto = evaluate_detections(labels, gt_pool, min_points=LEVEL_1_MIN_POINTS)
    metrics = tracking_metrics(tracked, gt_pool[gt_pool["class"] == "vehicle"], iou_threshold=0.1)
    frames = on_val.detections[["segment_id", "frame_index"]].drop_duplicates().shape[0]

    result = {
        "preset": args.preset,
        "ap_all": round(ev.ap("all"), 4),
        "ap_regular": round(ev.ap("regular"), 4),
        "ap_large": round(ev.ap("large"), 4),
        "n_gt_regular": ev.curve("regular").n_gt,
        "n_gt_large": ev.curve("large").n_gt,
        "ap_detections_unlabelled_all": round(raw.ap("all"), 4),
        "ap_autolabel_all": round(auto.ap("all"), 4),
        "ap_autolabel_large": round(auto.ap("large"), 4),
        "train_s": round(train_s, 1),
        "train_frames": int(
            ds.frames["segment_id"].isin(seg.loc[seg["split"] == "source", "segment_id"]).sum()
        ),
        "infer_frames_per_s": round(on_val.frames_per_s, 1),
        "track_and_autolabel_s": round(track_s, 2),
        "tracker_id_switches": metrics.id_switches,
        "tracker_purity": round(metrics.purity, 4),
        "gt_vehicle_tracks": metrics.num_gt_tracks,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"validation: {frames} frames; AP 3D@0.5 LEVEL_1 all {result['ap_all']:.3f}, "
        f"regular {result['ap_regular']:.3f}, large {result['ap_large']:.3f}"
    )
    print(
        f"unlabelled pool: detections AP {result['ap_detections_unlabelled_all']:.3f} -> "
        f"auto-labels {result['ap_autolabel_all']:.3f}; {metrics.id_switches} ID switches "
        f"over {metrics.num_gt_tracks} vehicle tracks"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
