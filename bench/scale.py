"""Benchmark: the detection stage on a Dask cluster of 1 and of 2 single-threaded workers.

Runs the demo world's main detector (with ROI features for detections and ground truth, as
the pipeline's detection stage does) over ``--segments`` segments (default: all 216) three
ways: in this process with one torch thread, and as one Dask task per segment on a
``LocalCluster`` of 1 and of 2 single-threaded worker processes (``rem_core.cluster``; the
weights sent once per worker). The detectors and the world come from the cache
(``REM_CACHE_DIR``; the shipped demo ensemble otherwise).

Prints a human-readable summary, then (last line) JSON: ``{"detect_s_inprocess",
"detect_s_1w", "detect_s_2w", "speedup_2w", "frames", "segments", "equal_1w", "equal_2w",
"peak_worker_mem_mb_1w", "peak_worker_mem_mb_2w", "cluster_start_s"}``. ``equal_*`` is
true when the detections, features and ground-truth features equal the in-process run's
bit for bit; ``peak_worker_mem_mb`` is the largest resident set a worker reached.

Usage: ``python bench/scale.py [--segments N]``

Not measured yet (issue 19): the score-and-mine figures on a synthetic Waymo-scale pool
(distributed mining is not built).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from rem_core.artifacts import ensure_world  # noqa: E402
from rem_core.cluster import dask_client  # noqa: E402
from rem_core.config import RemConfig  # noqa: E402
from rem_core.detect import detect  # noqa: E402
from rem_core.sources.detector import ensure_detectors  # noqa: E402

GT_CLASSES = ("vehicle", "pedestrian", "cyclist")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _same(a, b) -> bool:
    return (
        a.detections.equals(b.detections)
        and np.array_equal(a.features, b.features)
        and np.array_equal(a.gt_features, b.gt_features)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=None, help="segments to detect on")
    args = parser.parse_args()
    config = RemConfig.demo()
    dataset = ensure_world(config.world)
    model = ensure_detectors(config, dataset)[0]
    segments = dataset.segments["segment_id"].tolist()[: args.segments]
    frames = int(dataset.frames["segment_id"].isin(segments).sum())
    model.config = dataclasses.replace(model.config, num_threads=1)  # the engine, not torch

    start = time.perf_counter()
    here = detect(model, dataset, segments, gt_classes=GT_CLASSES)
    out = {"detect_s_inprocess": round(time.perf_counter() - start, 2)}
    for workers in (1, 2):
        start = time.perf_counter()
        with dask_client(f"local:{workers}") as client:
            client.wait_for_workers(workers)
            out["cluster_start_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            there = detect(model, dataset, segments, gt_classes=GT_CLASSES, client=client)
            out[f"detect_s_{workers}w"] = round(time.perf_counter() - start, 2)
            peaks = client.run(_peak_mb)
        out[f"equal_{workers}w"] = _same(here, there)
        out[f"peak_worker_mem_mb_{workers}w"] = round(max(peaks.values()), 1)
    out["speedup_2w"] = round(out["detect_s_1w"] / out["detect_s_2w"], 2)
    out.update(frames=frames, segments=len(segments))
    print(
        f"detection of {frames} frames ({len(segments)} segments): in process "
        f"{out['detect_s_inprocess']} s, 1 worker {out['detect_s_1w']} s, 2 workers "
        f"{out['detect_s_2w']} s (x{out['speedup_2w']}); equal: {out['equal_1w']}, "
        f"{out['equal_2w']}; peak worker memory {out['peak_worker_mem_mb_2w']} MB"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
