"""Benchmark: the BEV detector on the demo world, and where its boxes of long vehicles fail.

For each seed (``--seeds``, default 3; seed ``s`` sets the weights' and the data's seeds):

* **partial supervision**: one detector of the app's recipe (``RemConfig.detector``) trained
  from scratch on the source pool, timed;
* **full supervision**: the same recipe trained on the source and the unlabelled pool with
  every label, for the experiment's step count (``plan_experiment(...).steps``), timed;

each evaluated on validation at 3D IoU 0.5 (Waymo LEVEL_1: ground truth with more than 5
points; All / Regular / Large) and at BEV IoU 0.5, with the errors of its Large boxes
(``rem_core.detect.diagnose``: predicted / true length, width and height, z and heading
error, fragments per Large box, by subtype) on validation and on the source frames it was
trained on. Lengths right on the source frames but short on validation mean the data is
the limit; short on both, the model. The partial model of the first seed is also run over
the unlabelled pool: tracks and auto-labels against raw detections.

``--curve 960,1920,...`` trains the full-supervision model (first seed) at each step count
instead, to choose the experiment's steps from Large AP against steps. For ablations,
``--set NAME=VALUE`` (repeatable) changes a ``DetectorConfig`` setting (JSON values:
``--set paste_large=0 --set paste_stretch=[1,1]``), ``--steps N`` the partial model's
steps, and ``--train-extra N`` adds the first N unlabelled segments, with their labels, to
the partial model's training segments (more distinct long vehicles to learn from).

Prints a summary, then (last line) JSON with ``ap_regular, ap_large, ap_large_std,
ap_regular_full, ap_large_full, ap_large_full_std, ap_large_bev, length_ratio_large_median,
length_ratio_by_subtype, heading_err_large_deg_median, fragments_per_large_box,
distinct_large_in_source, train_s, infer_frames_per_s`` (means over seeds; ``*_std`` the
standard deviation), the per-seed figures and the diagnoses; ``length_ratio_by_subtype_full``
(the full model's) and ``distinct_large_by_subtype_source`` / ``_pool`` tell a subtype the
model cannot box from one the source pool lacks.

Usage: ``python bench/detector.py [--preset demo] [--seeds 3] [--no-full] [--curve STEPS]
[--set NAME=VALUE ...] [--steps N] [--train-extra N]``
Targets (issue 14): partial Large AP >= 0.25 and Regular AP >= 0.75, at least 0.2 apart;
full Large AP >= 0.5 and Regular AP >= 0.85; median Large length ratio >= 0.9 on validation,
>= 0.8 for every subtype; one detector trained in <= 120 s; inference >= 10 frames/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import pandas as pd
import torch
from calibrate import calibrate, with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.config import PRESETS, RemConfig
from rem_core.dataset import Dataset
from rem_core.detect import BevDetector, box_errors, detect, summarize_box_errors, train_detector
from rem_core.evaluation import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.experiment import plan_experiment
from rem_core.geometry import LARGE_MIN_M
from rem_core.pipeline import ensure_world
from rem_core.track import auto_label, track_detections, tracking_metrics


def large_tracks(ds: Dataset, segments: list[str], min_points: int) -> pd.DataFrame:
    """Boxes of vehicles at least 7 m long with ``min_points`` points."""
    b = ds.boxes
    b = b[(b["class"] == "vehicle") & b["segment_id"].isin(segments)]
    return b[(b["length"] >= LARGE_MIN_M) & (b["num_points"] >= min_points)]


def distinct_large(ds: Dataset, segments: list[str], min_points: int) -> int:
    """Distinct vehicles at least 7 m long with ``min_points`` points in some frame."""
    return int(large_tracks(ds, segments, min_points).groupby(["segment_id", "track_id"]).ngroups)


def distinct_large_by_subtype(ds: Dataset, segments: list[str], min_points: int) -> dict:
    """``distinct_large`` per subtype."""
    b = large_tracks(ds, segments, min_points)
    if "subtype" not in b:
        return {}
    tracks = b.drop_duplicates(["segment_id", "track_id"])
    return {str(k): int(v) for k, v in tracks["subtype"].value_counts().sort_index().items()}


def evaluate(model: BevDetector, ds: Dataset, segments: list[str]) -> dict:
    """AP at 3D and BEV IoU 0.5 and the diagnosis of Large boxes over some segments."""
    run = detect(model, ds, segments, with_features=True)
    gt = ds.boxes[ds.boxes["segment_id"].isin(segments)]
    ev = evaluate_detections(run.detections, gt, min_points=LEVEL_1_MIN_POINTS)
    bev = evaluate_detections(run.detections, gt, iou="bev", min_points=LEVEL_1_MIN_POINTS)
    errors = box_errors(run.detections, gt)
    large = summarize_box_errors(errors, "large")
    return {
        "ap_all": round(ev.ap("all"), 4),
        "ap_regular": round(ev.ap("regular"), 4),
        "ap_large": round(ev.ap("large"), 4),
        "ap_large_bev": round(bev.ap("large"), 4),
        "n_gt_regular": ev.curve("regular").n_gt,
        "n_gt_large": ev.curve("large").n_gt,
        "large": large,
        "regular_length_ratio": summarize_box_errors(errors, "regular")["length_ratio"],
        "frames_per_s": round(run.frames_per_s, 1),
        "detections": run.detections,
    }


def train(config: RemConfig, ds: Dataset, segments: list[str], steps: int | None, seed: int):
    detector = dataclasses.replace(config.detector, seed=seed, data_seed=seed)
    start = time.perf_counter()
    model = train_detector(detector, ds, segments, steps=steps)
    return model, time.perf_counter() - start


def mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return round(float(a.mean()), 4), round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4)


def subtype_lengths(runs: list[dict]) -> dict[str, float]:
    """Median length ratio per subtype on validation, the median over seeds."""
    names = sorted({name for r in runs for name in r["val"]["large"]["by_subtype"]})
    out = {}
    for name in names:
        ratios = [
            r["val"]["large"]["by_subtype"][name]["length_ratio"]
            for r in runs
            if name in r["val"]["large"]["by_subtype"]
        ]
        n = runs[0]["val"]["large"]["by_subtype"].get(name, {}).get("n_boxes", 0)
        out[name] = {"length_ratio": round(float(np.nanmedian(ratios)), 4), "n_boxes": n}
    return out


def curve(config: RemConfig, ds: Dataset, steps: list[int], seed: int) -> None:
    segments = ds.split_ids("source") + ds.split_ids("unlabelled")
    val = ds.split_ids("validation")
    points = []
    for n in steps:
        model, seconds = train(config, ds, segments, n, seed)
        r = evaluate(model, ds, val)
        point = {
            "steps": n,
            "train_s": round(seconds, 1),
            "ap_regular": r["ap_regular"],
            "ap_large": r["ap_large"],
            "ap_large_bev": r["ap_large_bev"],
            "length_ratio_large_median": r["large"]["length_ratio"],
        }
        points.append(point)
        print(
            f"full supervision, {n} steps ({seconds:.0f} s): Regular {r['ap_regular']:.3f}, "
            f"Large {r['ap_large']:.3f} (BEV {r['ap_large_bev']:.3f}), "
            f"length ratio {r['large']['length_ratio']:.2f}",
            flush=True,
        )
    print(json.dumps({"seed": seed, "curve": points}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-full", action="store_true", help="skip full supervision")
    parser.add_argument("--curve", default="", help="comma-separated step counts")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--steps", type=int, default=None, help="steps of the partial model")
    parser.add_argument("--train-extra", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    calibrated = calibrate()  # and again at the end: the machine drifts over a long run
    config = RemConfig.preset(args.preset)
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        changes[name] = json.loads(value)
        if isinstance(changes[name], list):
            changes[name] = tuple(changes[name])
    if changes:
        config = dataclasses.replace(
            config, detector=dataclasses.replace(config.detector, **changes)
        )
    ds = ensure_world(config.world)
    if args.curve:
        curve(config, ds, [int(s) for s in args.curve.split(",")], seed=0)
        return
    source, pool = ds.split_ids("source"), ds.split_ids("unlabelled")
    val = ds.split_ids("validation")
    full_steps = plan_experiment(config, ds).steps
    partial_segments = source + pool[: args.train_extra]

    partial, full = [], []
    for seed in range(args.seeds):
        model, seconds = train(config, ds, partial_segments, args.steps, seed)
        run = {"seed": seed, "train_s": round(seconds, 1), "val": evaluate(model, ds, val)}
        run["source"] = evaluate(model, ds, source)
        if seed == 0:
            first = model
        partial.append(run)
        v = run["val"]
        print(
            f"partial, seed {seed} ({seconds:.0f} s): Regular {v['ap_regular']:.3f}, "
            f"Large {v['ap_large']:.3f} (BEV {v['ap_large_bev']:.3f}); Large length ratio "
            f"{v['large']['length_ratio']:.2f} on validation, "
            f"{run['source']['large']['length_ratio']:.2f} on the source frames",
            flush=True,
        )
        if args.no_full:
            continue
        model, seconds = train(config, ds, source + pool, full_steps, seed)
        run = {"seed": seed, "train_s": round(seconds, 1), "val": evaluate(model, ds, val)}
        full.append(run)
        v = run["val"]
        print(
            f"full, seed {seed} ({full_steps} steps, {seconds:.0f} s): Regular "
            f"{v['ap_regular']:.3f}, Large {v['ap_large']:.3f}; Large length ratio "
            f"{v['large']['length_ratio']:.2f}",
            flush=True,
        )

    # Tracks and auto-labels of the unlabelled pool, from the first partial model.
    on_pool = detect(first, ds, pool, with_features=False)
    gt_pool = ds.boxes[ds.boxes["segment_id"].isin(pool)]
    start = time.perf_counter()
    tracked = track_detections(on_pool.detections, ds.frames, config.tracker)
    labels = auto_label(tracked, ds.frames, config.auto_label)
    track_s = time.perf_counter() - start
    raw = evaluate_detections(on_pool.detections, gt_pool, min_points=LEVEL_1_MIN_POINTS)
    auto = evaluate_detections(labels, gt_pool, min_points=LEVEL_1_MIN_POINTS)
    metrics = tracking_metrics(tracked, gt_pool[gt_pool["class"] == "vehicle"], iou_threshold=0.1)

    ap_regular, ap_regular_std = mean_std([r["val"]["ap_regular"] for r in partial])
    ap_large, ap_large_std = mean_std([r["val"]["ap_large"] for r in partial])
    large_val = [r["val"]["large"] for r in partial]
    result = {
        "preset": args.preset,
        "seeds": args.seeds,
        "ap_regular": ap_regular,
        "ap_regular_std": ap_regular_std,
        "ap_large": ap_large,
        "ap_large_std": ap_large_std,
        "ap_all": mean_std([r["val"]["ap_all"] for r in partial])[0],
        "ap_large_bev": mean_std([r["val"]["ap_large_bev"] for r in partial])[0],
        "length_ratio_large_median": mean_std([x["length_ratio"] for x in large_val])[0],
        "length_ratio_large_median_source": mean_std(
            [r["source"]["large"]["length_ratio"] for r in partial]
        )[0],
        "length_ratio_by_subtype": subtype_lengths(partial),
        "height_ratio_large_median": mean_std([x["height_ratio"] for x in large_val])[0],
        "z_err_large_median": mean_std([x["z_error"] for x in large_val])[0],
        "heading_err_large_deg_median": mean_std([x["heading_error_deg"] for x in large_val])[0],
        "fragments_per_large_box": mean_std([x["fragments_per_box"] for x in large_val])[0],
        "large_found_bev_0_1": mean_std([x["found"] for x in large_val])[0],
        "distinct_large_in_source": distinct_large(ds, source, config.detector.min_train_points),
        "distinct_large_in_partial_training": distinct_large(
            ds, partial_segments, config.detector.min_train_points
        ),
        "detector_changes": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
        "distinct_large_in_pool": distinct_large(ds, pool, config.detector.min_train_points),
        "distinct_large_by_subtype_source": distinct_large_by_subtype(
            ds, source, config.detector.min_train_points
        ),
        "distinct_large_by_subtype_pool": distinct_large_by_subtype(
            ds, pool, config.detector.min_train_points
        ),
        "n_gt_regular": partial[0]["val"]["n_gt_regular"],
        "n_gt_large": partial[0]["val"]["n_gt_large"],
        "train_s": mean_std([r["train_s"] for r in partial])[0],
        "infer_frames_per_s": mean_std([r["val"]["frames_per_s"] for r in partial])[0],
        "ap_large_by_seed": [r["val"]["ap_large"] for r in partial],
        "ap_regular_by_seed": [r["val"]["ap_regular"] for r in partial],
        "ap_large_source": mean_std([r["source"]["ap_large"] for r in partial])[0],
        "ap_detections_unlabelled_all": round(raw.ap("all"), 4),
        "ap_autolabel_all": round(auto.ap("all"), 4),
        "ap_autolabel_large": round(auto.ap("large"), 4),
        "track_and_autolabel_s": round(track_s, 2),
        "tracker_id_switches": metrics.id_switches,
        "tracker_purity": round(metrics.purity, 4),
        "gt_vehicle_tracks": metrics.num_gt_tracks,
        "torch_threads": torch.get_num_threads(),
    }
    if full:
        result["full_steps"] = full_steps
        result["ap_regular_full"] = mean_std([r["val"]["ap_regular"] for r in full])[0]
        ap, std = mean_std([r["val"]["ap_large"] for r in full])
        result["ap_large_full"], result["ap_large_full_std"] = ap, std
        result["ap_large_full_by_seed"] = [r["val"]["ap_large"] for r in full]
        result["length_ratio_large_median_full"] = mean_std(
            [r["val"]["large"]["length_ratio"] for r in full]
        )[0]
        result["length_ratio_by_subtype_full"] = subtype_lengths(full)
        result["train_s_full"] = mean_std([r["train_s"] for r in full])[0]
    result["diagnosis"] = {
        "validation": pd.DataFrame(large_val).drop(columns="by_subtype").to_dict("list"),
        "source": pd.DataFrame([r["source"]["large"] for r in partial])
        .drop(columns="by_subtype")
        .to_dict("list"),
    }
    print(
        f"partial: Regular {ap_regular:.3f} +- {ap_regular_std:.3f}, Large {ap_large:.3f} +- "
        f"{ap_large_std:.3f} over {args.seeds} seeds; train {result['train_s']:.0f} s, "
        f"inference {result['infer_frames_per_s']:.1f} frames/s"
    )
    if full:
        print(
            f"full: Regular {result['ap_regular_full']:.3f}, Large {result['ap_large_full']:.3f}"
            f" +- {result['ap_large_full_std']:.3f}"
        )
    print(
        f"unlabelled pool: detections AP {result['ap_detections_unlabelled_all']:.3f} -> "
        f"auto-labels {result['ap_autolabel_all']:.3f}; {metrics.id_switches} ID switches "
        f"over {metrics.num_gt_tracks} vehicle tracks"
    )
    print(json.dumps(with_calibration(result, calibrated)))


if __name__ == "__main__":
    main()
