"""``rem pool``: a pool kept in parts of whole segments, scored and mined where it lies
(``rem_core.pool``), on a Dask cluster with ``--cluster``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from rem_core.cli._common import StageBars, cluster_arg, prepare, settings
from rem_core.config import PRESETS

__all__ = ["add_pool_commands"]


def add_pool_commands(
    sub: argparse._SubParsersAction,
    common: Callable[[argparse.ArgumentParser], None],
    estimator_args: Callable[[argparse.ArgumentParser, str], None],
) -> None:
    """``rem pool synth | export | mine`` (``common``, ``estimator_args``: the parser's
    shared argument groups)."""
    p = sub.add_parser(
        "pool",
        help="score and mine a pool kept in parts (for pools beyond one machine)",
        description="A pool folder holds the unlabelled pool's detections, features and "
        "ground truth in Parquet parts of whole segments; `rem pool mine` fits the density on "
        "a sample across the parts, scores every part where it lies and mines it exactly "
        "(docs/scale.md).",
    )
    psub = p.add_subparsers(dest="pool_command", required=True, metavar="ACTION")

    q = psub.add_parser(
        "synth",
        help="write a synthetic pool (to try a cluster)",
        description="Write a synthetic pool folder: vehicle tracks in lanes, 3%% of them long "
        "vehicles whose features are rare (rem_core.pool.synthetic).",
    )
    q.add_argument("out", type=Path, help="the pool folder to write")
    q.add_argument("--parts", type=int, default=20, help="parts (default 20)")
    q.add_argument("--segments", type=int, default=1000, help="segments in all (default 1000)")
    q.add_argument("--tracks", type=int, default=500, help="tracks per segment (default 500)")
    q.add_argument(
        "--detections", type=int, default=10_000_000, help="detections in all (default 10M)"
    )
    q.add_argument("--features", type=int, default=64, help="feature dimensions (default 64)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--force", action="store_true", help="replace an existing folder")
    cluster_arg(q)
    q.set_defaults(func=cmd_pool_synth)

    q = psub.add_parser(
        "export",
        help="write the pipeline's unlabelled pool as a pool folder",
        description="Run (or read) the detection stage and write the unlabelled pool that "
        "mining sees as a pool folder of parts of consecutive segments.",
    )
    q.add_argument("out", type=Path, help="the pool folder to write")
    common(q)
    q.add_argument("--parts", type=int, default=8, help="parts (default 8)")
    q.add_argument("--force", action="store_true", help="replace an existing folder")
    q.set_defaults(func=cmd_pool_export)

    q = psub.add_parser(
        "mine",
        help="fit, score and mine a pool folder part by part",
        description="Fit the preset's PCA and density model on a sample drawn across the "
        "parts, score every part (D-REM: -log p, by predicted track when the pool has "
        "tracks) and mine the budget by the exact partitioned Algorithm 1. Writes OUT: "
        "tracks.parquet (the mined tracks), part-NNNNN.parquet (log_prob, rareness, "
        "discarded_by per detection), meta.json.",
    )
    q.add_argument("pool", type=Path, help="a pool folder (rem pool synth / export)")
    q.add_argument("--out", type=Path, required=True, help="the output folder")
    q.add_argument(
        "--preset",
        default="demo",
        choices=PRESETS,
        help="settings preset of the density model and the mining (default demo)",
    )
    estimator_args(q, "density model")
    q.add_argument(
        "--budget", default=None, help="tracks to label: a count or a share (default: 3%%)"
    )
    q.add_argument("--fp-costs-budget", action="store_true")
    q.add_argument(
        "--sample", type=int, default=50_000, help="detections to fit on (default 50000)"
    )
    q.add_argument("--force", action="store_true", help="replace an existing --out folder")
    cluster_arg(q)
    q.set_defaults(func=cmd_pool_mine)


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists; pass --force to replace it")


def cmd_pool_synth(args: argparse.Namespace) -> int:
    from rem_core.pool import SyntheticPool, write_pool

    _refuse_existing(args.out, args.force)
    for name in ("parts", "segments", "tracks", "detections", "features"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if args.segments % args.parts or args.detections % args.parts:
        raise ValueError(
            f"--segments {args.segments} and --detections {args.detections} must be multiples "
            f"of --parts {args.parts}"
        )
    spec = SyntheticPool(
        parts=args.parts,
        segments=args.segments // args.parts,
        tracks=args.tracks,
        detections=args.detections // args.parts,
        features=args.features,
        seed=args.seed,
    )
    start = time.perf_counter()
    pool = write_pool(args.out, spec, spec.parts, client=args.client)
    print(
        f"wrote {args.out}: {pool.detections:,} detections, {pool.tracks:,} tracks in "
        f"{len(pool.parts)} parts ({time.perf_counter() - start:.1f} s)"
    )
    return 0


def cmd_pool_export(args: argparse.Namespace) -> int:
    from rem_core.pool import export_pool

    _refuse_existing(args.out, args.force)
    config, ds = prepare(args)
    pool = export_pool(
        config, ds, args.out, parts=args.parts, progress=StageBars(), client=args.client
    )
    print(
        f"wrote {args.out}: {pool.detections:,} detections, {pool.tracks:,} ground-truth "
        f"tracks in {len(pool.parts)} parts"
    )
    return 0


def cmd_pool_mine(args: argparse.Namespace) -> int:
    from rem_core.density import fit_density
    from rem_core.pool import Pool, sample_features, score_and_mine

    _refuse_existing(args.out, args.force)
    pool = Pool.open(args.pool)
    config = settings(args)
    rareness, mining = config.rareness, config.mining
    start = time.perf_counter()
    X = sample_features(
        pool,
        args.sample,
        min_score=rareness.min_score,
        seed=rareness.density.seed,
        client=args.client,
    )
    reducer, estimator = fit_density(X, rareness)
    fit_s = time.perf_counter() - start
    print(f"fitted {rareness.estimator} on {len(X):,} detections ({fit_s:.1f} s)")
    result = score_and_mine(
        pool,
        reducer,
        estimator,
        mining.budget,
        args.out,
        check_iou=mining.check_iou,
        fp_costs_budget=mining.fp_costs_budget,
        rank_by=mining.rank_by,
        client=args.client,
    )
    t = result.timings
    print(
        f"mined {len(result.tracks):,} tracks (budget {result.budget:,}) of {pool.tracks:,} "
        f"with {len(result.checked):,} checks; scoring {t['score']:.1f} s, mining "
        f"{t['mine']:.1f} s"
    )
    print(f"wrote {args.out}")
    return 0
