"""``rem pool``: a pool kept in parts of whole segments, scored and mined where it lies
(``rem_core.pool``), on a Dask cluster with ``--cluster``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rem_core.cli.prepare import prepare, settings
from rem_core.cli.progress import StageBars
from rem_core.density import fit_density
from rem_core.errors import InputError
from rem_core.pool import (
    Pool,
    SyntheticPool,
    export_pool,
    sample_features,
    score_and_mine,
    write_pool,
)

__all__ = ["cmd_pool_export", "cmd_pool_mine", "cmd_pool_synth"]


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists; pass --force to replace it")


def cmd_pool_synth(args: argparse.Namespace) -> int:
    _refuse_existing(args.out, args.force)
    for name in ("parts", "segments", "tracks", "detections", "features"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if args.segments % args.parts or args.detections % args.parts:
        raise InputError(
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
