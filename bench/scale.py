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

Mining (``--mine-detections``, default 1,000,000, in ``--mine-tracks`` tracks of 20 per
segment, ``bench/mine.py``'s synthetic pool, random rareness, a 3% budget): Algorithm 1 in
process (``select_tracks``) and over one partition of segments per worker on a LocalCluster of
1 and of 2 workers (``select_tracks_partitioned``, exact): ``mine_s_inprocess``,
``mine_s_1w``, ``mine_s_2w``, ``mine_speedup_2w`` and ``mine_equal`` (the same tracks,
checks and discards as in process). ``--skip-detect`` skips the detection part.

Scoring (``--score-rows``, default every detection of the demo pipeline; ``--skip-score``):
the cached FFJORD density scoring the detections' features in process on one torch thread
and on 1 and 2 workers in chunks of whole batches (``rem_core.density.spread``):
``score_s_inprocess``, ``score_s_1w``, ``score_s_2w``, ``score_speedup_2w``,
``score_equal_1w/2w`` (bit for bit).

A Waymo-scale pool (``--pool-detections``, default 10,000,000, over ``--pool-segments``
1,000 in ``--pool-parts`` 20; ``rem_core.pool.SyntheticPool``, 500 tracks a segment, 64
features; written once into ``--pool-dir`` and reused), scored by the demo preset's FFJORD
fitted on ``--pool-sample`` detections drawn across the parts, and mined at 3%
(``rem_core.pool.score_and_mine``) in process and on 1 and 2 workers: ``score_mine_s_1w``,
``score_mine_s_2w``, ``score_mine_speedup_2w``, ``score_mine_s_inprocess``,
``peak_worker_mem_mb`` (the largest of both runs), ``mined_equal`` (the mined tracks and
checks of every run equal ``select_tracks`` on the whole pool, and the parts' written
scores equal the in-process run's bit for bit), and ``pool_*``: the parts' scoring and
mining seconds, the workers' task compute and process CPU seconds (to tell a slow host from
idle workers), the client's peak memory (meaningful with ``--only-pool``), the sample's and
the fit's seconds, the Large share of the pool and of the mined tracks.

Usage: ``python bench/scale.py [--segments N] [--mine-detections N] [--mine-tracks T]
[--skip-detect] [--skip-score] [--skip-pool | --only-pool] [--pool-dir DIR]``
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
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.cluster import dask_client  # noqa: E402
from rem_core.config import RemConfig  # noqa: E402
from rem_core.detect import detect  # noqa: E402
from rem_core.mining import select_tracks, select_tracks_partitioned  # noqa: E402
from rem_core.pipeline import ensure_detectors, ensure_world  # noqa: E402

GT_CLASSES = ("vehicle", "pedestrian", "cyclist")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _compute_s(stream: list[dict]) -> float:
    """Seconds the tasks of a task stream spent computing."""
    return sum(
        part["stop"] - part["start"]
        for task in stream
        for part in task["startstops"]
        if part["action"] == "compute"
    )


def _same(a, b) -> bool:
    return (
        a.detections.equals(b.detections)
        and np.array_equal(a.features, b.features)
        and np.array_equal(a.gt_features, b.gt_features)
    )


def bench_detect(segments_limit: int | None) -> dict:
    """The main detector over the demo world, in process and on 1 and 2 workers."""
    config = RemConfig.demo()
    dataset = ensure_world(config.world)
    model = ensure_detectors(config, dataset)[0]
    model.config = dataclasses.replace(model.config, num_threads=1)  # the engine, not torch
    segments = dataset.segments["segment_id"].tolist()[:segments_limit]
    frames = int(dataset.frames["segment_id"].isin(segments).sum())
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
    return out


def bench_mine(n_detections: int, n_tracks: int) -> dict:
    """Algorithm 1 on a synthetic pool in process, and over partitions on 1 and 2 workers."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mine import synthetic_pool

    det, rareness, gt = synthetic_pool(n_detections, n_tracks)
    budget = round(0.03 * n_tracks)
    start = time.perf_counter()
    whole = select_tracks(det, rareness, gt, budget)
    out = {"mine_s_inprocess": round(time.perf_counter() - start, 2)}
    equal = True
    for workers in (1, 2):
        with dask_client(f"local:{workers}") as client:
            client.wait_for_workers(workers)
            start = time.perf_counter()
            parts = select_tracks_partitioned(
                det, rareness, gt, budget, partitions=workers, client=client
            )
            out[f"mine_s_{workers}w"] = round(time.perf_counter() - start, 2)
            out[f"mine_peak_worker_mem_mb_{workers}w"] = round(
                max(client.run(_peak_mb).values()), 1
            )
        equal &= (
            whole.tracks.equals(parts.tracks)
            and np.array_equal(whole.checked, parts.checked)
            and np.array_equal(whole.discarded, parts.discarded)
        )
    out["mine_speedup_2w"] = round(out["mine_s_1w"] / out["mine_s_2w"], 2)
    out.update(
        mine_equal=bool(equal),
        mine_detections=len(det),
        mine_tracks=n_tracks,
        mine_budget=budget,
        mine_mined=len(whole.tracks),
    )
    print(
        f"mining {len(det):,} detections at {budget} tracks: in process "
        f"{out['mine_s_inprocess']} s, 1 worker {out['mine_s_1w']} s, 2 workers "
        f"{out['mine_s_2w']} s (x{out['mine_speedup_2w']}); equal: {equal}"
    )
    return out


def bench_score(rows: int | None) -> dict:
    """The demo pipeline's fitted density scoring its detections (the first ``rows``), in
    process on one torch thread and on 1 and 2 workers (``density.spread``)."""
    import torch

    from rem_core.density import score_on_cluster
    from rem_core.pipeline import ensure_detections, ensure_rareness

    config = RemConfig.demo()
    dataset = ensure_world(config.world)
    run = ensure_rareness(config, dataset)
    X = run.reducer.transform(ensure_detections(config, dataset).features[:rows])
    torch.set_num_threads(1)
    start = time.perf_counter()
    here = run.estimator.score_samples(X)
    out = {"score_s_inprocess": round(time.perf_counter() - start, 2), "score_rows": len(X)}
    for workers in (1, 2):
        with dask_client(f"local:{workers}") as client:
            client.wait_for_workers(workers)
            start = time.perf_counter()
            there = score_on_cluster(run.estimator, X, client)
            out[f"score_s_{workers}w"] = round(time.perf_counter() - start, 2)
        out[f"score_equal_{workers}w"] = bool(np.array_equal(here, there))
    out["score_speedup_2w"] = round(out["score_s_1w"] / out["score_s_2w"], 2)
    print(
        f"scoring {len(X):,} detections ({config.rareness.estimator}): in process "
        f"{out['score_s_inprocess']} s, 1 worker {out['score_s_1w']} s, 2 workers "
        f"{out['score_s_2w']} s (x{out['score_speedup_2w']}); equal: "
        f"{out['score_equal_1w']}, {out['score_equal_2w']}"
    )
    return out


def _pool_reference(pool, out) -> tuple:
    """The whole pool and the in-process run's rareness, for ``select_tracks`` here."""
    import pandas as pd
    import pyarrow.parquet as pq

    det = pd.concat([pool.read(p, features=False)[0] for p in range(len(pool.parts))])
    gt = pd.concat([pool.read_gt(p) for p in range(len(pool.parts))], ignore_index=True)
    rareness = np.concatenate(
        [
            pq.read_table(out / f"part-{p:05d}.parquet", columns=["rareness"])[
                "rareness"
            ].to_numpy()
            for p in range(len(pool.parts))
        ]
    )
    return det.reset_index(drop=True), rareness, gt


def bench_pool(detections: int, segments: int, parts: int, folder, sample: int) -> dict:
    """A synthetic Waymo-scale pool (``rem_core.pool``), written by partition, scored by the
    demo preset's density model fitted on a sample across partitions, and mined at 3%: in
    process and on 1 and 2 workers."""
    import shutil
    import tempfile
    from pathlib import Path

    import torch
    from distributed import get_task_stream

    from rem_core.density import fit_density
    from rem_core.pool import Pool, SyntheticPool, sample_features, score_and_mine, write_pool

    spec = SyntheticPool(
        parts=parts,
        segments=segments // parts,
        tracks=500,
        detections=detections // parts,
        features=64,
    )
    folder = Path(folder or tempfile.mkdtemp(prefix="rem-pool-"))
    out: dict = {}
    stamp = folder / "spec.txt"
    pool_dir = folder / "pool"
    if stamp.exists() and stamp.read_text() == repr(spec) and (pool_dir / "pool.json").exists():
        pool = Pool.open(pool_dir)
    else:
        start = time.perf_counter()
        with dask_client("local:2") as client:
            pool = write_pool(pool_dir, spec, spec.parts, client=client)
        out["pool_write_s_2w"] = round(time.perf_counter() - start, 1)
        stamp.write_text(repr(spec))
    config = RemConfig.demo().rareness
    torch.set_num_threads(1)  # the engine, as the workers run it
    start = time.perf_counter()
    with dask_client("local:2") as client:
        X = sample_features(pool, sample, min_score=config.min_score, client=client)
    out["pool_sample_s_2w"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    reducer, estimator = fit_density(X, config)
    out["pool_fit_s"] = round(time.perf_counter() - start, 1)
    runs = {}
    for workers in (1, 2):
        with dask_client(f"local:{workers}") as client:
            client.wait_for_workers(workers)
            cpu0 = sum(client.run(_cpu_s).values())
            start = time.perf_counter()
            with get_task_stream(client) as stream:
                runs[workers] = score_and_mine(
                    pool, reducer, estimator, "3%", folder / f"out-{workers}w", client=client
                )
            out[f"score_mine_s_{workers}w"] = round(time.perf_counter() - start, 1)
            # Whether the workers were busy or waiting: their tasks' compute seconds and
            # their processes' CPU seconds (a slower host shows in both; idle time, not).
            out[f"pool_task_compute_s_{workers}w"] = round(_compute_s(stream.data), 1)
            out[f"pool_worker_cpu_s_{workers}w"] = round(sum(client.run(_cpu_s).values()) - cpu0, 1)
            out[f"pool_peak_worker_mem_mb_{workers}w"] = round(
                max(client.run(_peak_mb).values()), 1
            )
        timings = runs[workers].timings
        out[f"pool_score_s_{workers}w"] = round(timings["score"], 1)
        out[f"pool_mine_s_{workers}w"] = round(timings["mine"], 1)
    # The client held the sample, the models and the checks, never the pool.
    out["pool_client_peak_mem_mb"] = round(_peak_mb(), 1)
    start = time.perf_counter()
    here = score_and_mine(pool, reducer, estimator, "3%", folder / "out-inprocess")
    out["score_mine_s_inprocess"] = round(time.perf_counter() - start, 1)
    det, rareness, gt = _pool_reference(pool, folder / "out-inprocess")
    start = time.perf_counter()
    whole = select_tracks(det, rareness, gt, here.budget)
    out["pool_mine_s_whole_inprocess"] = round(time.perf_counter() - start, 1)
    equal = whole.tracks.equals(here.tracks) and np.array_equal(whole.checked, here.checked)
    for workers, run in runs.items():
        equal &= whole.tracks.equals(run.tracks) and np.array_equal(whole.checked, run.checked)
        for p in range(len(pool.parts)):
            a = folder / "out-inprocess" / f"part-{p:05d}.parquet"
            b = folder / f"out-{workers}w" / f"part-{p:05d}.parquet"
            equal &= _same_table(a, b)
    large = gt.drop_duplicates(["segment_id", "track_id"]).set_index(["segment_id", "track_id"])
    large = large["length"] > 7
    mined_large = large.reindex(pd_index(whole.tracks)).to_numpy()
    out.update(
        score_mine_speedup_2w=round(out["score_mine_s_1w"] / out["score_mine_s_2w"], 2),
        peak_worker_mem_mb=max(
            out["pool_peak_worker_mem_mb_1w"], out["pool_peak_worker_mem_mb_2w"]
        ),
        mined_equal=bool(equal),
        pool_detections=pool.detections,
        pool_tracks=pool.tracks,
        pool_segments=sum(p["segments"] for p in pool.parts),
        pool_parts=len(pool.parts),
        pool_budget=here.budget,
        pool_mined=len(here.tracks),
        mined_large_share=round(float(mined_large.mean()), 3),
        pool_large_share=round(float(large.mean()), 3),
        pool_estimator=config.estimator,
        pool_sample_rows=len(X),
    )
    print(
        f"pool of {pool.detections:,} detections ({pool.tracks:,} tracks, {len(pool.parts)} "
        f"parts): score+mine at {here.budget} tracks: in process "
        f"{out['score_mine_s_inprocess']} s, 1 worker {out['score_mine_s_1w']} s, 2 workers "
        f"{out['score_mine_s_2w']} s (x{out['score_mine_speedup_2w']}); equal: {equal}; "
        f"peak worker memory {out['peak_worker_mem_mb']} MB; "
        f"client {out['pool_client_peak_mem_mb']} MB"
    )
    for name in ("out-1w", "out-2w", "out-inprocess"):
        shutil.rmtree(folder / name, ignore_errors=True)
    return out


def pd_index(tracks):
    import pandas as pd

    return pd.MultiIndex.from_frame(tracks[["segment_id", "track_id"]])


def _same_table(a, b) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(a).equals(pq.read_table(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=None, help="segments to detect on")
    parser.add_argument("--mine-detections", type=int, default=1_000_000)
    parser.add_argument("--mine-tracks", type=int, default=50_000)
    parser.add_argument("--skip-detect", action="store_true")
    parser.add_argument("--score-rows", type=int, default=None, help="detections to score")
    parser.add_argument("--skip-score", action="store_true")
    parser.add_argument("--pool-detections", type=int, default=10_000_000)
    parser.add_argument("--pool-segments", type=int, default=1000)
    parser.add_argument("--pool-parts", type=int, default=20)
    parser.add_argument("--pool-sample", type=int, default=50_000)
    parser.add_argument("--pool-dir", default=None, help="where the synthetic pool is kept")
    parser.add_argument("--only-pool", action="store_true", help="only the pool part")
    parser.add_argument("--skip-pool", action="store_true", help="skip the pool part")
    args = parser.parse_args()
    if args.only_pool:
        pool = bench_pool(
            args.pool_detections,
            args.pool_segments,
            args.pool_parts,
            args.pool_dir,
            args.pool_sample,
        )
        print(json.dumps(pool))
        return
    out = {} if args.skip_detect else bench_detect(args.segments)
    if not args.skip_score:
        out.update(bench_score(args.score_rows))
    out.update(bench_mine(args.mine_detections, args.mine_tracks))
    if not args.skip_pool:
        out.update(
            bench_pool(
                args.pool_detections,
                args.pool_segments,
                args.pool_parts,
                args.pool_dir,
                args.pool_sample,
            )
        )
    print(json.dumps(with_calibration(out)))


if __name__ == "__main__":
    main()
