"""Benchmark: rotated-box IoU and detection evaluation on one core.

Prints a human-readable summary, then (last line) JSON:
``{"iou_pairs_per_s", "clip_pairs_per_s", "eval_frames_per_s", ...}``.
``iou_pairs_per_s`` is ``bev_iou`` over a dense N x M grid of scene-like boxes (most pairs
are skipped by the prefilter); ``clip_pairs_per_s`` is ``bev_iou_pairs`` on pairs that all
overlap (every pair clipped); ``eval_frames_per_s`` is ``evaluate_detections`` (3D IoU) on
synthetic frames of 40 ground-truth boxes and 60 predictions.

Usage: ``python bench/evaluate.py [--frames 1000] [--gt 40] [--pred 60]``
Target: 1,000 frames x 40 GT x 60 predictions in a few seconds.
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.evaluation import evaluate_detections  # noqa: E402
from rem_core.geometry import bev_iou, bev_iou_pairs  # noqa: E402
from rem_core.schema import BOX_COLUMNS  # noqa: E402


def random_boxes(rng: np.random.Generator, n: int, extent: float = 75.0) -> np.ndarray:
    """``(n, 7)`` vehicle-like boxes scattered over ``[-extent, extent]^2`` metres."""
    large = rng.random(n) < 0.05
    length = np.where(large, rng.uniform(7, 18, n), rng.uniform(3.5, 6, n))
    width = np.where(large, rng.uniform(2.4, 2.6, n), rng.uniform(1.7, 2.1, n))
    height = np.where(large, rng.uniform(3, 4, n), rng.uniform(1.4, 2.0, n))
    return np.column_stack(
        [
            rng.uniform(-extent, extent, (n, 2)),
            height / 2,
            length,
            width,
            height,
            rng.uniform(-np.pi, np.pi, n),
        ]
    )


def synthetic_tables(
    n_frames: int, n_gt: int, n_pred: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detections and ground truth: ~85 % of objects found with small errors, the rest FPs."""
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, n_frames * n_gt)
    found = rng.random(len(gt)) < 0.85
    hits = gt[found].copy()
    hits[:, :3] += rng.normal(0, 0.15, (len(hits), 3))
    hits[:, 3:6] *= rng.normal(1, 0.05, (len(hits), 3))
    hits[:, 6] += rng.normal(0, 0.05, len(hits))
    hit_frame = np.repeat(np.arange(n_frames), n_gt)[found]
    per_frame = np.bincount(hit_frame, minlength=n_frames)
    n_fp = np.maximum(n_pred - per_frame, 0)
    fps = random_boxes(rng, int(n_fp.sum()))
    pred = np.concatenate([hits, fps])
    pred_frame = np.concatenate([hit_frame, np.repeat(np.arange(n_frames), n_fp)])
    score = np.concatenate([rng.beta(5, 2, len(hits)), rng.beta(2, 5, len(fps))])

    def table(boxes: np.ndarray, frame: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(boxes, columns=BOX_COLUMNS)
        df.insert(0, "class", "vehicle")
        df.insert(0, "frame_index", (frame % 50).astype(np.int32))
        df.insert(0, "segment_id", [f"s{f // 50:04d}" for f in frame])
        return df

    det = table(pred, pred_frame).assign(score=score.astype(np.float32))
    truth = table(gt, np.repeat(np.arange(n_frames), n_gt)).assign(num_points=100)
    return det, truth


def best_of(fn, repeats: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--gt", type=int, default=40)
    parser.add_argument("--pred", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    a, b = random_boxes(rng, 2000), random_boxes(rng, 2000)
    dense_s = best_of(lambda: bev_iou(a, b))
    pa = random_boxes(rng, 200_000, extent=1.0)
    pb = pa.copy()
    pb[:, :2] += rng.normal(0, 0.5, (len(pb), 2))
    pb[:, 6] = rng.uniform(-np.pi, np.pi, len(pb))
    clip_s = best_of(lambda: bev_iou_pairs(pa, pb))

    det, truth = synthetic_tables(args.frames, args.gt, args.pred)
    result = None

    def run() -> None:
        nonlocal result
        result = evaluate_detections(det, truth)

    eval_s = best_of(run)
    out = {
        "iou_pairs_per_s": round(len(a) * len(b) / dense_s),
        "clip_pairs_per_s": round(len(pa) / clip_s),
        "eval_frames_per_s": round(args.frames / eval_s, 1),
        "eval_seconds": round(eval_s, 3),
        "frames": args.frames,
        "gt_per_frame": args.gt,
        "pred_per_frame": round(len(det) / args.frames, 1),
        "ap_all": round(result.ap("all"), 4),
        "ap_large": round(result.ap("large"), 4),
    }
    print(f"bev_iou {len(a)} x {len(b)}: {dense_s * 1e3:.0f} ms")
    print(f"bev_iou_pairs on {len(pa):,} overlapping pairs: {clip_s * 1e3:.0f} ms")
    print(
        f"evaluate_detections, {args.frames} frames x {args.gt} GT x ~{out['pred_per_frame']} "
        f"predictions: {eval_s:.2f} s (AP all {out['ap_all']}, large {out['ap_large']})"
    )
    print(json.dumps(with_calibration(out)))


if __name__ == "__main__":
    main()
