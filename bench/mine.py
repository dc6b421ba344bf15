"""Benchmark: track-level mining (Algorithm 1), one core, and what each method mines.

Timing: synthetic detections of a driving log, ``--tracks`` ground-truth tracks (20 per
segment, every one in all 20 frames of its segment, moving along a lane), one noisy
detection per ground-truth box with probability 0.9 plus false positives up to
``--detections`` in all; random rareness. ``mine_1m_s`` is the best of 3 runs of
``select_tracks`` at ``K = --budget`` from the tables to the result (frame index, IoU checks,
discards: everything); ``reference_1m_s`` is the plain reference implementation of the tests
(``tests/test_mining_algorithm.py``) on a slice of the segments, scaled linearly to the full pool.

Demo world (``--world demo``, default; ``none`` skips it): every selection method at a 3%
budget on the cached pipeline (building it from an empty cache takes long, see
docs/detector.md), and the share of Large vehicles among the mined tracks; D-REM and MD-REM
also with each density model. Random is the
mean over ``--random-seeds`` seeds (one draw of 72 tracks is too noisy to compare with).

Prints a human-readable summary, then (last line) JSON:
``{"mine_1m_s", "reference_1m_s", "detections", "tracks", "budget", "large_share": {...},
"large_share_random_std", ...}``.

Usage: ``python bench/mine.py [--detections N] [--tracks T] [--budget K] [--world demo|none]
[--world-seed S]``

``--world-seed S`` mines the preset's world with ``world.seed = S`` (a new world: its
pipeline is built from scratch unless cached); the JSON then also holds ``world_seed``.
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
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.mining import select_tracks  # noqa: E402

FRAMES, PER_SEGMENT = 20, 20


def synthetic_pool(
    n_detections: int, n_tracks: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Detections, their rareness and the ground truth of a synthetic driving log."""
    rng = np.random.default_rng(seed)
    n_seg = n_tracks // PER_SEGMENT
    seg = np.repeat(np.arange(n_seg), PER_SEGMENT)  # per track
    # Tracks on a 5 x 4 grid of lanes 12 m apart, moving up to 10 m/s along x.
    slot = np.tile(np.arange(PER_SEGMENT), n_seg)
    x0 = (slot % 5) * 12.0 - 24 + rng.uniform(-2, 2, n_tracks)
    y0 = (slot // 5) * 12.0 - 18 + rng.uniform(-1, 1, n_tracks)
    vx = rng.uniform(-10, 10, n_tracks)
    large = rng.random(n_tracks) < 0.03
    length = np.where(large, rng.uniform(8, 14, n_tracks), rng.uniform(3.8, 5.2, n_tracks))
    width = np.where(large, 2.6, rng.uniform(1.7, 2.0, n_tracks))
    t = np.repeat(np.arange(FRAMES), n_tracks)  # frame-major
    k = np.tile(np.arange(n_tracks), FRAMES)
    seg_names = np.array([f"seg{i:05d}" for i in range(n_seg)], dtype=object)
    gt = pd.DataFrame(
        {
            "segment_id": seg_names[seg[k]],
            "frame_index": t,
            "track_id": np.array([f"t{i:02d}" for i in range(PER_SEGMENT)], object)[slot[k]],
            "center_x": x0[k] + vx[k] * t * 0.1,
            "center_y": y0[k],
            "center_z": 0.9,
            "length": length[k],
            "width": width[k],
            "height": 1.7,
            "heading": 0.0,
        }
    )
    seen = np.flatnonzero(rng.random(len(gt)) < 0.9)[:n_detections]
    det = gt.iloc[seen].drop(columns="track_id").reset_index(drop=True)
    m = len(det)
    det["center_x"] += rng.normal(0, 0.3, m)
    det["center_y"] += rng.normal(0, 0.2, m)
    det["length"] *= rng.uniform(0.85, 1.1, m)
    det["heading"] = rng.normal(0, 0.05, m)
    n_fp = n_detections - m
    fp = pd.DataFrame(
        {
            "segment_id": seg_names[rng.integers(0, n_seg, n_fp)],
            "frame_index": rng.integers(0, FRAMES, n_fp),
            "center_x": rng.uniform(-40, 40, n_fp),
            "center_y": rng.uniform(-40, 40, n_fp),
            "center_z": 0.9,
            "length": rng.uniform(3, 6, n_fp),
            "width": 1.9,
            "height": 1.6,
            "heading": rng.uniform(-np.pi, np.pi, n_fp),
        }
    )
    det = pd.concat([det, fp], ignore_index=True)
    return det, rng.random(len(det)), gt


def time_synthetic(n_detections: int, n_tracks: int, budget: int, repeats: int = 3) -> dict:
    """Seconds to mine the synthetic pool (best of ``repeats``), and the reference's."""
    det, rareness, gt = synthetic_pool(n_detections, n_tracks)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = select_tracks(det, rareness, gt, budget)
        best = min(best, time.perf_counter() - start)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_mining_algorithm import reference_select_tracks

    # The reference on the first segments, holding about 1/50 of the detections.
    segments = sorted(set(gt["segment_id"]))[: max(1, len(set(gt["segment_id"])) // 50)]
    part = det["segment_id"].isin(segments).to_numpy()
    sub_gt = gt[gt["segment_id"].isin(segments)].reset_index(drop=True)
    start = time.perf_counter()
    reference_select_tracks(det[part].reset_index(drop=True), rareness[part], sub_gt, budget)
    reference_s = (time.perf_counter() - start) * len(det) / max(part.sum(), 1)
    return {
        "mine_1m_s": best,
        "reference_1m_s": reference_s,
        "detections": len(det),
        "tracks": n_tracks,
        "budget": budget,
        "mined": len(result.tracks),
        "checks": len(result.checked),
    }


def world_shares(preset: str, random_seeds: int, world_seed: int | None = None) -> dict:
    """Share of Large vehicles among the tracks each method mines at a 3% budget, on the
    preset's world (with ``world.seed = world_seed`` when given)."""
    from dataclasses import replace

    from rem_core.config import ESTIMATORS, MINING_METHODS, RemConfig
    from rem_core.mining import compare_methods, mine
    from rem_core.pipeline import ensure_mining_pool, ensure_world

    config = RemConfig.preset(preset)
    if world_seed is not None:
        config = replace(config, world=replace(config.world, seed=world_seed))
    pool = ensure_mining_pool(config, ensure_world(config.world))
    table = compare_methods(pool, config).set_index("method")
    shares = {m: float(table.loc[m, "large_share"]) for m in MINING_METHODS}
    randoms = [
        mine(
            pool, "random", replace(config, mining=replace(config.mining, seed=s))
        ).composition.large_share
        for s in range(random_seeds)
    ]
    shares["random"] = float(np.mean(randoms))
    # D-REM and MD-REM with every density model (fitted and cached as `bench/density.py` does).
    by_estimator = {}
    for name in ESTIMATORS:
        cfg = replace(config, rareness=replace(config.rareness, estimator=name))
        other = ensure_mining_pool(cfg, ensure_world(config.world))
        by_estimator[name] = {
            m: mine(other, m, cfg).composition.large_share for m in ("d_rem", "md_rem")
        }
    return {
        "world_seed": config.world.seed,
        "large_share_by_estimator": by_estimator,
        "large_share": shares,
        "large_share_random_std": float(np.std(randoms)),
        "large_share_pool": float(table.loc["pool", "large_share"]),
        "world_budget": int(table.loc["random", "budget"]),
        "world_tracks": int(table.loc["pool", "tracks"]),
        "composition": table.reset_index().to_dict(orient="records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--budget", type=int, default=1_500)
    parser.add_argument("--world", default="demo", help="preset, or 'none' to skip")
    parser.add_argument("--random-seeds", type=int, default=50)
    parser.add_argument(
        "--world-seed", type=int, default=None, help="the world's seed (default: the preset's)"
    )
    args = parser.parse_args()

    result = time_synthetic(args.detections, args.tracks, args.budget)
    print(
        f"mining {result['detections']:,} detections in {result['tracks']:,} tracks at "
        f"K = {args.budget}: {result['mine_1m_s']:.3f} s (target <= 1 s); the reference "
        f"would take about {result['reference_1m_s']:.0f} s"
    )
    if args.world != "none":
        result.update(world_shares(args.world, args.random_seeds, args.world_seed))
        s = result["large_share"]
        print(
            f"{args.world} world (seed {result['world_seed']}) at a 3% budget "
            f"({result['world_budget']} of "
            f"{result['world_tracks']} tracks), share of Large among mined tracks: "
            + ", ".join(f"{k} {v:.1%}" for k, v in s.items())
            + f" (random: mean of {args.random_seeds} seeds, std "
            f"{result['large_share_random_std']:.1%}; pool {result['large_share_pool']:.1%})"
        )
        print(
            f"D-REM / Random {s['d_rem'] / s['random']:.1f}x (target >= 10x); "
            f"M-REM {'>' if s['m_rem'] > s['ensemble'] else '<='} Ensemble; "
            f"MD-REM {'>=' if s['md_rem'] >= s['d_rem'] else '<'} D-REM"
        )
        for name, v in result["large_share_by_estimator"].items():
            print(
                f"  with {name}: D-REM {v['d_rem']:.1%} ({v['d_rem'] / s['random']:.1f}x "
                f"Random), MD-REM {v['md_rem']:.1%}"
            )
    print(json.dumps(with_calibration(result)))


if __name__ == "__main__":
    main()
