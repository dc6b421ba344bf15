"""The ``rem`` command: build, inspect and (in later stages) mine REM data sets.

Run ``rem --help`` or ``rem COMMAND --help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.boxes import size_subset
from rem_core.config import ESTIMATORS, EXPERIMENT_ROW_NAMES, PRESETS, SPLITS, RemConfig
from rem_core.dataset import Dataset
from rem_core.schema import DataError

__all__ = ["main"]

log = logging.getLogger("rem")


def _progress_bar(total: int, desc: str, unit: str):
    """A tqdm bar and a ``(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=None)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, update


def cmd_world(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rem_core.world import write_world

    config = RemConfig.preset(args.preset).world
    config = replace(config, seed=args.seed)
    if args.segments is not None:
        config = replace(config, n_segments=args.segments)
    if args.frames is not None:
        config = replace(config, frames_per_segment=args.frames)
    bar, update = _progress_bar(config.n_total_segments, "simulating", "segment")
    with bar:
        ds = write_world(
            config, args.out, progress=update, overwrite=args.force, workers=args.workers
        )
    print(
        f"wrote {ds.root} ({len(ds.segments)} segments, {len(ds.frames)} frames, "
        f"{len(ds.boxes)} boxes)"
    )
    return 0


def describe(ds: Dataset) -> str:
    """The text of ``rem info``: segments, frames, points, objects and tracks of a data set."""
    seg, frames, boxes, tracks = ds.segments, ds.frames, ds.boxes, ds.tracks
    lines = [f"data set   {ds.root}", f"source     {ds.manifest.get('source', '?')}"]
    by_split = seg.groupby("split", sort=False).agg(
        segments=("segment_id", "size"), frames=("num_frames", "sum")
    )
    lines.append(
        f"segments   {len(seg)}  ("
        + ", ".join(f"{split} {row.segments}" for split, row in by_split.iterrows())
        + ")"
    )
    lines.append(f"frames     {len(frames)}")
    n = frames["num_points"].to_numpy()
    if len(n):
        lines.append(
            f"points     {n.sum():,} in all; per frame mean {n.mean():,.0f}, "
            f"min {n.min():,}, max {n.max():,}"
        )
    per_frame = boxes.groupby(["segment_id", "frame_index"]).size()
    lines.append(
        f"boxes      {len(boxes):,}; per frame mean {per_frame.mean():.1f}"
        if len(boxes)
        else "boxes      0"
    )
    lines.append(f"tracks     {len(tracks):,}")
    lines.append("")
    lines.append("objects by class and subtype (tracks / boxes / mean points per box):")
    table = (
        boxes.groupby(["class", "subtype"])
        .agg(boxes=("track_id", "size"), points=("num_points", "mean"))
        .join(tracks.groupby(["class", "subtype"]).size().rename("tracks"))
        .fillna(0)
    )
    for (cls, sub), row in table.sort_values("tracks", ascending=False).iterrows():
        lines.append(
            f"  {cls:<11} {sub:<16} {int(row.tracks):>6} / {int(row.boxes):>8} / {row.points:>7.1f}"
        )
    vehicles = tracks[tracks["class"] == "vehicle"]
    if len(vehicles):
        subset = pd.Series(size_subset(vehicles["length"], vehicles["width"], vehicles["height"]))
        shares = subset.value_counts(normalize=True)
        lines.append("")
        lines.append(
            f"vehicle tracks {len(vehicles):,}: large (>= 7 m) {shares.get('large', 0):.1%}, "
            f"regular [3, 7) m {shares.get('regular', 0):.1%}, small {shares.get('small', 0):.1%}"
        )
        noisy = int((boxes["label_noise"]).sum())
        lines.append(f"label-noise boxes {noisy:,} ({noisy / max(len(boxes), 1):.2%} of boxes)")
    if len(tracks):
        length = tracks["num_boxes"].to_numpy()
        q = np.percentile(length, [0, 25, 50, 75, 100])
        lines.append(
            "track length (frames): mean {:.1f}; min {:.0f}, q25 {:.0f}, median {:.0f}, "
            "q75 {:.0f}, max {:.0f}".format(length.mean(), *q)
        )
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    print(describe(Dataset.open(args.path)))
    return 0


def _config(args: argparse.Namespace) -> RemConfig:
    from dataclasses import replace

    config = RemConfig.preset(args.preset)
    detector = config.detector
    if getattr(args, "members", None) is not None:
        detector = replace(detector, ensemble_size=args.members)
    if getattr(args, "epochs", None) is not None:
        detector = replace(detector, epochs=args.epochs)
    return replace(config, detector=detector)


def _dataset(args: argparse.Namespace, config: RemConfig) -> Dataset:
    """The data set named by --data, or the preset's built-in world (built if missing)."""
    if args.data is not None:
        return Dataset.open(args.data)
    from rem_core.artifacts import ensure_world

    bar, update = _progress_bar(config.world.n_total_segments, "world", "segment")
    with bar:
        return ensure_world(config.world, progress=update)


def _features_for(config: RemConfig, ds: Dataset, args: argparse.Namespace) -> RemConfig:
    """The features REM scores on an opened data set: ``--features`` (default ``auto``),
    checked against the data, and one line on stderr saying which and why."""
    from rem_core.pipeline import choose_features, features_for

    wanted = getattr(args, "features", None) or "auto"
    choice = choose_features(ds, wanted)
    print(f"rem: features: {choice.source} ({choice.reason})", file=sys.stderr)
    return features_for(config, ds, wanted)


class _StageBars:
    """One tqdm bar per pipeline stage, driven by ``progress(stage, done, total)``."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def cmd_detect_train(args: argparse.Namespace) -> int:
    from rem_core.pipeline import clear_pipeline, detector_key, detector_origin, ensure_detectors

    config = _config(args)
    ds = _dataset(args, config)
    if args.retrain:
        for path in clear_pipeline(config, ds):
            print(f"removed {path}")
    models = ensure_detectors(config, ds, progress=_StageBars(), shipped=not args.retrain)
    origin = detector_origin(config, ds)
    how = f"shipped, commit {origin['commit']}" if origin["origin"] == "shipped" else "trained"
    print(f"{len(models)} detector(s) ready ({how}; cache key {detector_key(config, ds)})")
    return 0


def cmd_detect_ship(args: argparse.Namespace) -> int:
    import time

    from rem_core.artifacts import cache_root
    from rem_core.config import config_to_dict
    from rem_core.pipeline import (
        DETECTOR_VERSION,
        detector_key,
        detector_origin,
        ensure_detectors,
    )
    from rem_core.shipped import SHIPPED, ship_detectors

    config = _config(args)
    ds = _dataset(args, config)
    key = detector_key(config, ds)
    if detector_origin(config, ds).get("origin") == "shipped":
        raise SystemExit(
            f"rem detect ship: the cached ensemble {key} is itself a shipped copy; train it "
            "first with `rem detect train --retrain`"
        )
    start = time.perf_counter()
    ensure_detectors(config, ds, progress=_StageBars(), shipped=False)
    trained_s = round(time.perf_counter() - start, 1)
    out = args.out or SHIPPED / args.preset
    settings = {"detector": config_to_dict(config.detector), "preset": args.preset}
    ship_detectors(
        cache_root() / "detector" / key,
        ds,
        key,
        out,
        settings,
        trained_s if trained_s > 5 else None,  # None: it was cached, its time unknown
        DETECTOR_VERSION,
    )
    print(f"shipped the ensemble {key} to {out}")
    return 0


def cmd_detect_run(args: argparse.Namespace) -> int:
    import shutil

    from rem_core.pipeline import ensure_detections

    config = _config(args)
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    run = ensure_detections(config, ds, progress=_StageBars())
    det = run.detections
    n_frames = det[["segment_id", "frame_index"]].drop_duplicates().shape[0]
    n_tracks = (
        det.dropna(subset=["track_id"])[["segment_id", "track_id"]].drop_duplicates().shape[0]
    )
    print(
        f"{len(det):,} detections in {n_frames:,} frames, {n_tracks:,} tracks, "
        f"{len(run.autolabels):,} auto-labels; {run.features.shape[1]}-D features; "
        f"cached in {run.path}"
    )
    if args.out is not None:
        from rem_core.io.files import publish_folder

        def write(tmp: Path) -> None:
            shutil.copytree(run.path, tmp, dirs_exist_ok=True)

        publish_folder(args.out, write, force=args.force)
        print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rem_core.evaluate import evaluate_detections
    from rem_core.pipeline import ensure_detections

    config = _config(args)
    ds = _dataset(args, config)
    # a data set's own detections are evaluated as they are
    config = _features_for(config, ds, args)
    run = ensure_detections(config, ds, progress=_StageBars())
    segments = ds.split_ids(args.split)
    if not segments:
        raise ValueError(f"split: {ds.root} has no {args.split!r} segments")
    gt = ds.boxes[ds.boxes["segment_id"].isin(segments)]
    rows = []
    for name, table in (("detections", run.detections), ("auto-labels", run.autolabels)):
        table = table[table["segment_id"].isin(segments)]
        result = evaluate_detections(
            table, gt, iou_threshold=args.iou_threshold, iou=args.iou, min_points=args.min_points
        )
        summary = result.summary()
        summary.insert(0, "boxes", name)
        rows.append(summary)
    table = pd.concat(rows, ignore_index=True)
    table = table[table["subset"].isin(["all", "regular", "large"])]
    print(
        f"AP at {args.iou.upper()} IoU {args.iou_threshold} on the {args.split} split "
        f"({len(segments)} segments; ground truth with >= {args.min_points} points)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _rareness_config(args: argparse.Namespace) -> RemConfig:
    from dataclasses import replace

    config = _config(args)
    if getattr(args, "estimator", None):
        config = replace(config, rareness=replace(config.rareness, estimator=args.estimator))
    return config


def cmd_flow_fit(args: argparse.Namespace) -> int:
    from rem_core.pipeline import ensure_rareness

    config = _rareness_config(args)
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    run = ensure_rareness(config, ds, progress=_StageBars())
    meta = run.meta
    print(
        f"{config.rareness.estimator} fitted on {meta['fit_rows']:,} detections "
        f"({config.rareness.k} PCA components, {meta['explained_variance']:.1%} of the "
        f"variance) in {meta['fit_s']:.1f} s; cached in {run.path}"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from rem_core.pipeline import ensure_detections, ensure_rareness
    from rem_core.score import aggregate_tracks, d_rem, m_rem, md_rem

    config = _rareness_config(args)
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    det_run = ensure_detections(config, ds, progress=_StageBars())
    run = ensure_rareness(config, ds, progress=_StageBars())
    det = det_run.detections
    table = det[
        ["segment_id", "frame_index", "detection_id", "track_id", "score", "num_points", "distance"]
    ].copy()
    table["log_prob"] = run.log_prob
    table["d_rem"] = d_rem(run.log_prob)
    table["m_rem"] = m_rem(det_run.variance, det["num_points"], det["distance"], config.score)
    table["md_rem"] = md_rem(run.log_prob, det["num_points"], det["distance"], config.score)
    tracks = aggregate_tracks(det, run.log_prob)
    print(f"{len(table):,} detections and {len(tracks):,} tracks scored; rarest tracks:")
    print(tracks.head(10).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out is not None:
        from rem_core.dataset import write_parquet_folder

        write_parquet_folder(
            args.out, {"detection_scores": table, "track_scores": tracks}, force=args.force
        )
        print(f"wrote {args.out}/detection_scores.parquet and track_scores.parquet")
    return 0


def _method(name: str) -> str:
    """A selection method from the command line: ``md-rem`` and ``md_rem`` alike."""
    from rem_core.config import MINING_METHODS

    method = name.strip().lower().replace("-", "_")
    if method not in MINING_METHODS:
        choices = ", ".join(m.replace("_", "-") for m in MINING_METHODS)
        raise argparse.ArgumentTypeError(f"unknown method {name!r}; choose one of {choices}")
    return method


def _mining_config(args: argparse.Namespace) -> RemConfig:
    from dataclasses import replace

    config = _rareness_config(args)
    mining = config.mining
    if args.budget is not None:
        budget = int(args.budget) if args.budget.strip().isdigit() else args.budget
        mining = replace(mining, budget=budget)
    if args.fp_costs_budget:
        mining = replace(mining, fp_costs_budget=True)
    return replace(config, mining=mining)


def cmd_mine(args: argparse.Namespace) -> int:
    from rem_core.mining import MINED_FORMATS, mine, write_label_set, write_mined
    from rem_core.pipeline import ensure_mining_pool

    # Validate the outputs before the (possibly long) pipeline runs.
    if args.out.suffix.lower() not in MINED_FORMATS:
        raise ValueError(f"--out {args.out}: use a suffix of {', '.join(MINED_FORMATS)}")
    for out in (args.out, args.labels):
        if out is not None and out.exists() and not args.force:
            raise FileExistsError(f"{out}: exists; pass --force to replace it")
    if args.labels is not None and args.labels.suffix.lower() != ".bin":
        raise ValueError(f"--labels {args.labels}: a Waymo Objects file must end in .bin")
    config = _mining_config(args)
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    pool = ensure_mining_pool(config, ds, progress=_StageBars())
    mined = mine(pool, args.method, config)
    write_mined(mined.boxes, args.out, force=args.force)
    c = mined.composition
    print(
        f"{args.method.replace('_', '-')}: {c.tracks} of {pool.num_tracks} tracks "
        f"(budget {c.budget}), {c.boxes:,} boxes, {c.checks} checks ({c.false_positives} false "
        f"positives); Large {c.large_share:.1%}, irregular {c.irregular_share:.1%}"
    )
    print(f"wrote {args.out}")
    if args.labels is not None:
        write_label_set(mined.labels, ds.frames, args.labels, force=args.force)
        human = int((mined.labels["source"] == "human").sum())
        print(
            f"wrote {args.labels}: {len(mined.labels):,} boxes ({human:,} human, "
            f"{len(mined.labels) - human:,} auto-labelled)"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rem_core.mining import compare_methods
    from rem_core.pipeline import ensure_mining_pool

    config = _mining_config(args)
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    pool = ensure_mining_pool(config, ds, progress=_StageBars())
    table = compare_methods(pool, config, methods=args.methods)
    shares = ["large_share", "irregular_share", "label_noise_share", "hard_share"]
    shown = table.copy()
    shown[shares] = shown[shares] * 100
    shown["method"] = shown["method"].str.replace("_", "-")
    print(
        f"Mined tracks at a budget of {config.mining.budget} ({table['budget'].iloc[-1]} of "
        f"{pool.num_tracks} ground-truth tracks); shares in %; 'pool' is every track"
    )
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out is not None:
        from rem_core.io.files import publish_file

        publish_file(args.out, lambda tmp: table.to_csv(tmp, index=False), force=args.force)
        print(f"wrote {args.out}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rem_core.experiment import run_experiment, write_experiment
    from rem_core.experiment_claims import paper_claims
    from rem_core.experiment_stats import experiment_intervals

    config = _mining_config(args)
    exp = config.experiment
    if args.rows is not None:
        exp = replace(exp, rows=tuple(r.strip() for r in args.rows.split(",") if r.strip()))
    if args.seeds is not None:
        exp = replace(exp, seeds=args.seeds)
    if args.steps is not None:
        exp = replace(exp, steps=args.steps)
    if args.ema_decay is not None:
        exp = replace(exp, ema_decay=args.ema_decay)
    config = replace(config, experiment=exp)
    if args.ship_reference:
        return _ship_reference(args, config)
    if args.out is not None and args.out.exists() and not args.force:
        raise FileExistsError(f"--out {args.out}: exists; pass --force to replace its files")
    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    result = run_experiment(config, ds, progress=_StageBars())
    shown = result.table[
        ["label", "human_labels", "seeds", "ap_all", "ap_regular", "ap_large", "ap_large_std",
         "paper_ap_large", "gap_closed"]
    ]  # fmt: skip
    print(
        f"AP at {exp.iou.upper()} IoU {exp.iou_threshold} on the validation split, mean over "
        f"seeds (std: their standard deviation); gap_closed: share of the Large-AP gap "
        f"between partial- and fully-supervised on the seeds the row shares with both; "
        f"runs cached in {result.path}"
    )
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–"))
    intervals = experiment_intervals(result)
    large = intervals.comparisons[intervals.comparisons["metric"] == "ap_large"]
    if not large.empty:
        print(
            f"\nLarge AP, paired by seed: row minus other, {intervals.level:.0%} interval from "
            f"{intervals.resamples} resamples of the seeds and the validation segments"
        )
        print(
            large.drop(columns=["metric", "holds"]).to_string(
                index=False, float_format=lambda v: f"{v:+.3f}", na_rep="–"
            )
        )
    print()
    for claim in paper_claims(intervals):
        print(f"- {claim.sentence}")
    if args.out is not None:
        written = write_experiment(result, args.out, force=args.force, intervals=intervals)
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _ship_reference(args: argparse.Namespace, config: RemConfig) -> int:
    """``rem experiment --ship-reference``: the cached runs, computing nothing, as the
    reference the Experiments page opens on (``rem_core.reference``)."""
    import shlex

    from rem_core.experiment import experiment_key, read_experiment
    from rem_core.experiment_stats import experiment_intervals
    from rem_core.reference import REFERENCE_RESULTS, ship_reference

    ds = _dataset(args, config)
    config = _features_for(config, ds, args)
    exp = config.experiment
    result = read_experiment(config, ds)
    if result is None:
        raise FileNotFoundError(
            f"rem experiment --ship-reference: no cached run of {', '.join(exp.rows)} for "
            f"these settings (experiment key {experiment_key(config, ds)}); run them first "
            "with the same command without --ship-reference"
        )
    have = set(zip(result.runs["row"], result.runs["seed"], strict=True))
    missing = [f"{r} seed {s}" for r in exp.rows for s in range(exp.seeds) if (r, s) not in have]
    if missing:
        print(f"rem: not cached, left out: {', '.join(missing)}", file=sys.stderr)
    # The command that computes these runs: this one, less what only ships them.
    argv, kept = list(getattr(args, "argv", [])), []
    while argv:
        token = argv.pop(0)
        if token == "--out":
            argv = argv[1:]
        elif token not in ("--ship-reference", "--force") and not token.startswith("--out="):
            kept.append(token)
    out = args.out or REFERENCE_RESULTS / args.preset
    intervals = experiment_intervals(result)
    ship_reference(result, intervals, out, shlex.join(["rem", *kept]), config=config,
                   dataset=ds, force=args.force)  # fmt: skip
    print(f"shipped {len(result.runs)} runs of {len(result.table)} rows to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rem_core.io.importers import import_data

    if args.source == "detections":
        return _import_detections(args)
    if (args.out is None) == (args.into is None):
        raise ValueError(
            f"rem import {args.source}: give --out (a data set folder to create) or --into "
            "(a data set to add to)"
        )
    if args.into is not None and args.force:
        raise ValueError("rem import: --force replaces an --out folder; --into adds to one")
    share = None if args.source_share is None else _share(args.source_share, "--source-share")
    ds = import_data(
        args.source,
        args.path,
        args.out or args.into,
        into=args.into is not None,
        split=args.split,
        source_share=share,
        seed=args.seed,
        force=args.force,
    )
    entry = ds.manifest["imports"][-1]
    drawn = (
        f"; {len(entry['source_segments'])} drawn into the source split (seed {args.seed})"
        if share is not None
        else ""
    )
    print(
        f"imported {entry['segments']} segment{'s' if entry['segments'] != 1 else ''} from "
        f"{len(entry['paths'])} input{'s' if len(entry['paths']) != 1 else ''} into "
        f"{ds.root} as {args.split}{drawn}"
    )
    print(describe(ds))
    return 0


def _share(text: str, name: str) -> float:
    """``"10%"`` or ``"0.1"`` as a share in (0, 1]."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{name}: expected a share such as 10% or 0.1, got {text!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"{name}: must be in (0, 100%], got {text!r}")
    return value


def _import_detections(args: argparse.Namespace) -> int:
    from rem_core.io.detections import check_features, read_detections
    from rem_core.io.importers import (
        attach_detections,
        detections_from_kitti,
        detections_from_waymo_objects,
    )

    if args.data is None:
        raise ValueError("rem import detections: give --data, the data set they belong to")
    if len(args.path) != 1:
        raise ValueError(f"rem import detections: give one PATH, got {len(args.path)}")
    path = Path(args.path[0])
    if args.format == "waymo-objects":
        table = detections_from_waymo_objects(path, Dataset.open(args.data))
    elif args.format == "kitti":
        if args.calib is None:
            raise ValueError("rem import detections --format kitti: give --calib, the folder "
                             "of the sequences' calibration files")  # fmt: skip
        table = detections_from_kitti(path, args.calib)
    else:
        table, _ = read_detections(path)
    features = None
    if args.features is not None:
        features = np.load(args.features, allow_pickle=False)
        features = check_features(features, len(table), args.features)
    out = attach_detections(args.data, table, features, force=args.force)
    how = (
        f"their {features.shape[1]}-D features" if features is not None else "geometric descriptors"
    )
    print(
        f"{len(out):,} detections over {out.groupby(['segment_id', 'frame_index']).ngroups:,} "
        f"frames stored in {args.data}; REM mines them ({how}) from now on"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rem",
        description="REM Workbench: find the rare objects 3D detectors fail on "
        "(Rare Example Mining, Jiang et al., ECCV 2022).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "world",
        help="simulate the synthetic LiDAR world and write it as a data set",
        description="Simulate the built-in LiDAR world (ray-cast 64-beam sweeps of streets with "
        "a long-tailed vehicle mix) and write it in the REM data format.",
    )
    p.add_argument(
        "--preset",
        default="demo",
        choices=PRESETS,
        help="size of the world (default: demo)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--segments", type=int, default=None, help="override the number of training-pool segments"
    )
    p.add_argument("--frames", type=int, default=None, help="override frames per segment")
    p.add_argument("--out", type=Path, required=True, help="data set folder to create")
    p.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        help="processes simulating segments side by side (default: one per core)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing data set at --out")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser(
        "info",
        help="summarise a data set",
        description="Print segments, frames, points per frame, objects by class and subtype, "
        "the share of large vehicle tracks and track lengths of a data set folder.",
    )
    p.add_argument("path", type=Path, help="data set folder")
    p.set_defaults(func=cmd_info)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--preset",
            default="demo",
            choices=PRESETS,
            help="settings preset, and the built-in world used without --data (default: demo)",
        )
        p.add_argument(
            "--data",
            type=Path,
            default=None,
            help="a data set folder (default: the preset's built-in world)",
        )
        p.add_argument("--members", type=int, default=None, help="ensemble size")
        p.add_argument("--epochs", type=int, default=None, help="training epochs per detector")

    def features_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--features",
            choices=["auto", "detector", "geometry", "imported"],
            default="auto",
            help="what REM scores: our detector's ROI features (trained on the source split), "
            "geometric box descriptors, or the features stored with your detections; auto "
            "(default) picks what the data set supports and says why",
        )

    p = sub.add_parser(
        "detect",
        help="train the detector ensemble and run it",
        description="Train the BEV detector ensemble on the source pool, and run "
        "it over a data set (results are cached by settings and data).",
    )
    dsub = p.add_subparsers(dest="detect_command", required=True, metavar="ACTION")
    q = dsub.add_parser(
        "train",
        help="train the ensemble (cached)",
        description="Train the detector ensemble on the source split.",
    )
    common(q)
    q.add_argument(
        "--retrain",
        action="store_true",
        help="train from scratch: remove the cached ensemble and what was computed from it, "
        "and do not use the weights that ship with the package",
    )
    q.set_defaults(func=cmd_detect_train)
    q = dsub.add_parser(
        "ship",
        help="write the cached ensemble into the package, with its provenance",
        description="Copy the trained ensemble (trained here if not cached) into "
        "rem_core/weights/PRESET with provenance.json (cache key, world fingerprint, commit, "
        "file hashes), to be used instead of training when both match (rem_core.shipped).",
    )
    common(q)
    q.add_argument("--out", type=Path, default=None, help="default: rem_core/weights/PRESET")
    q.set_defaults(func=cmd_detect_ship)
    q = dsub.add_parser(
        "run",
        help="detect, pool features, track and auto-label (cached)",
        description="Run the main detector over every segment (with ROI-pooled "
        "features for detections and ground truth), the other members over the "
        "unlabelled pool (ensemble scores), then track and auto-label.",
    )
    common(q)
    q.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also copy the results (Parquet tables and .npy features) to this folder",
    )
    q.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(q)
    q.set_defaults(func=cmd_detect_run)

    p = sub.add_parser(
        "eval",
        help="AP of detections and auto-labels by size subset",
        description="AP of the main detector's boxes and the auto-labels against "
        "ground truth: All, Regular [3, 7) m and Large >= 7 m (see "
        "docs/evaluation.md).",
    )
    common(p)
    p.add_argument(
        "--split",
        default="validation",
        choices=SPLITS,
        help="segments to evaluate on (default: validation)",
    )
    p.add_argument("--iou", default="3d", choices=["3d", "bev"], help="IoU kind (default: 3d)")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="default: 0.5")
    p.add_argument(
        "--min-points",
        type=int,
        default=6,
        help="ground truth with fewer points is don't-care (default 6: Waymo LEVEL_1)",
    )
    features_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "flow",
        help="fit the density model of D-REM",
        description="Reduce the detections' ROI features by PCA and fit a density "
        "model (FFJORD by default) on the source and unlabelled pools (cached).",
    )
    fsub = p.add_subparsers(dest="flow_command", required=True, metavar="ACTION")
    q = fsub.add_parser("fit", help="fit (cached) and report", description="Fit the density model.")
    common(q)
    q.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=None,
        help="density model (default: ffjord)",
    )
    features_arg(q)
    q.set_defaults(func=cmd_flow_fit)

    p = sub.add_parser(
        "score",
        help="D-REM, M-REM, MD-REM per detection and track",
        description="Score every detection (log p, D-REM, M-REM, MD-REM) and every "
        "track (mean log p over its frames); print the rarest tracks.",
    )
    common(p)
    p.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=None,
        help="density model (default: ffjord)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for detection_scores.parquet and track_scores.parquet",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    features_arg(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "import",
        help="import real data (Waymo, Argoverse 2, KITTI tracking) as a data set",
        description="Read a public format and write it as a data set folder in the REM data "
        "format, or add it to one (--into; atomically; an existing --out folder only with "
        "--force). Every source takes several inputs, folders of them or glob patterns: "
        "waymo (v1 segment TFRecords), waymo-objects (metrics Objects .bin files as ground "
        "truth), waymo-v2 (folders with lidar_box/ and optionally lidar/, "
        "lidar_calibration/, lidar_pose/, vehicle_pose/), av2 (sensor log folders), "
        "kitti-tracking (folders holding training/label_02 and training/calib); detections "
        "(a detector's output, stored in the data set given by --data). A log already in "
        "the data set is refused.",
    )
    p.add_argument(
        "source",
        choices=["waymo", "waymo-objects", "waymo-v2", "av2", "kitti-tracking", "detections"],
    )
    p.add_argument(
        "path",
        nargs="+",
        help="the inputs: files, folders (of logs, segment files, ...) or glob patterns",
    )
    p.add_argument("--out", type=Path, default=None, help="data set folder to create")
    p.add_argument(
        "--into",
        type=Path,
        default=None,
        help="a data set to add these inputs to (a log already in it is refused)",
    )
    p.add_argument(
        "--source-share",
        default=None,
        help="draw this share of the imported segments (e.g. 10%%) into the source split, "
        "the labelled pool, as the paper draws 10%% of segments; the rest get --split",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --source-share draw")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="detections: the data set folder they belong to (they are stored in it)",
    )
    p.add_argument(
        "--format",
        choices=["table", "waymo-objects", "kitti"],
        default="table",
        help="detections: a Parquet/CSV table (default), Waymo Objects predictions (.bin), "
        "or a folder of KITTI AB3DMOT files",
    )
    p.add_argument("--calib", type=Path, default=None, help="detections, kitti: calib folder")
    p.add_argument(
        "--features",
        type=Path,
        default=None,
        help="detections: a .npy of (N, C) features, row i for detection i in the order "
        "read; REM then scores these instead of geometric descriptors",
    )
    p.add_argument(
        "--split",
        default="unlabelled",
        choices=SPLITS,
        help="split of every imported segment (default: unlabelled, what REM mines)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=cmd_import)

    def mining_options(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument(
            "--estimator",
            choices=ESTIMATORS,
            default=None,
            help="density model of D-REM and MD-REM (default: ffjord)",
        )
        p.add_argument(
            "--budget",
            default=None,
            help="tracks to label: a count (1500) or a share of the pool's tracks (3%%; "
            "the default)",
        )
        p.add_argument(
            "--fp-costs-budget",
            action="store_true",
            help="a check that finds no object uses one unit of the budget",
        )
        p.add_argument("--force", action="store_true", help="replace existing output files")

    p = sub.add_parser(
        "mine",
        help="mine tracks under a budget (Algorithm 1) and export them",
        description="Rank the unlabelled pool's detections by a selection method, have the "
        "simulated labeller label whole tracks under the budget (Algorithm 1), and write "
        "the mined track list; optionally the merged label set (mined tracks plus the "
        "auto-labels that do not overlap them) as Waymo metrics_pb2.Objects.",
    )
    mining_options(p)
    p.add_argument(
        "--method",
        type=_method,
        default="md_rem",
        help="random, predict-size, ensemble, m-rem, d-rem, md-rem (default), oracle-hard "
        "or oracle-size",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="mined track list, one row per box: .csv, .parquet or .json (tracks nested)",
    )
    p.add_argument(
        "--labels", type=Path, default=None, help="merged label set as Waymo Objects (.bin)"
    )
    features_arg(p)
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser(
        "compare",
        help="composition of what each method mines (paper Table 1)",
        description="Mine with every selection method under the same budget and print "
        "what each one found: tracks, boxes, shares of Large and irregular vehicles, of "
        "label-noise and hard boxes, and mean rareness.",
    )
    mining_options(p)
    p.add_argument(
        "--methods",
        type=_method,
        nargs="+",
        default=None,
        help="methods to compare (default: all)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    features_arg(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "experiment",
        help="mine, label, retrain and evaluate (paper Tables 2 and 3)",
        description="For each row (a selection method and how the rest of the pool is "
        "labelled: self-labels or the auto-labeler), mine the pool, retrain the detector "
        "from scratch on source + pool with the source recipe's number of steps, and "
        "evaluate AP (All, Regular, Large) on the validation split, once per seed. Runs are "
        "cached one by one: an interrupted experiment resumes where it stopped.",
    )
    mining_options(p)
    p.add_argument(
        "--rows",
        default=None,
        # argparse formats help with %: the 6% and 9% rows' names need escaping
        help="comma-separated rows (default: all): "
        + ", ".join(EXPERIMENT_ROW_NAMES).replace("%", "%%"),
    )
    p.add_argument("--seeds", type=int, default=None, help="runs per row (default 3)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps of each retraining (default: the source recipe's)",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        help="return each retraining's exponential moving average of the weights with "
        "this decay, e.g. 0.999 (default: the preset's; 0 keeps the last step's weights)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write experiment.csv, experiment.json, runs.csv, curves.csv and "
        "comparisons.csv to (with --ship-reference: the reference folder, default "
        "rem_core/reference_results/PRESET)",
    )
    p.add_argument(
        "--ship-reference",
        action="store_true",
        help="run nothing: write the cached runs of --rows and --seeds, with their intervals "
        "and provenance, as the reference the Experiments page opens on (rem_core.reference; "
        "refuses to replace one without --force)",
    )
    features_arg(p)
    p.set_defaults(func=cmd_experiment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rem`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for provenance
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except (DataError, ValueError, OSError, KeyError) as exc:
        print(f"rem: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
