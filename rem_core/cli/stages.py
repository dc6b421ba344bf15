"""The pipeline's commands: ``rem detect``, ``rem eval``, ``rem flow fit``, ``rem score``,
``rem mine`` and ``rem compare``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rem_core.cli._common import StageBars, prepare

__all__ = [
    "cmd_compare",
    "cmd_detect_run",
    "cmd_detect_ship",
    "cmd_detect_train",
    "cmd_eval",
    "cmd_flow_fit",
    "cmd_mine",
    "cmd_score",
]


def cmd_detect_train(args: argparse.Namespace) -> int:
    from rem_core.pipeline import clear_pipeline, detector_key, detector_origin, ensure_detectors

    config, ds = prepare(args, features=False)
    if args.retrain:
        for path in clear_pipeline(config, ds):
            print(f"removed {path}")
    models = ensure_detectors(config, ds, progress=StageBars(), shipped=not args.retrain)
    origin = detector_origin(config, ds)
    how = f"shipped, commit {origin['commit']}" if origin["origin"] == "shipped" else "trained"
    print(f"{len(models)} detector(s) ready ({how}; cache key {detector_key(config, ds)})")
    return 0


def cmd_detect_ship(args: argparse.Namespace) -> int:
    import time

    from rem_core.config import config_to_dict
    from rem_core.pipeline import (
        DETECTOR_VERSION,
        SHIPPED,
        detector_entry,
        detector_origin,
        ensure_detectors,
        ship_detectors,
    )

    config, ds = prepare(args, features=False)
    entry = detector_entry(config, ds)
    key = entry.key
    if detector_origin(config, ds).get("origin") == "shipped":
        raise SystemExit(
            f"rem detect ship: the cached ensemble {key} is itself a shipped copy; train it "
            "first with `rem detect train --retrain`"
        )
    start = time.perf_counter()
    ensure_detectors(config, ds, progress=StageBars(), shipped=False)
    trained_s = round(time.perf_counter() - start, 1)
    out = args.out or SHIPPED / args.preset
    settings = {"detector": config_to_dict(config.detector), "preset": args.preset}
    ship_detectors(
        entry.path,
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

    config, ds = prepare(args)
    run = ensure_detections(config, ds, progress=StageBars(), client=args.client)
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
        from rem_core.files import publish_folder

        def write(tmp: Path) -> None:
            shutil.copytree(run.path, tmp, dirs_exist_ok=True)

        publish_folder(args.out, write, force=args.force)
        print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rem_core.evaluation import evaluate_detections
    from rem_core.pipeline import ensure_detections

    # a data set's own detections are evaluated as they are
    config, ds = prepare(args)
    run = ensure_detections(config, ds, progress=StageBars(), client=args.client)
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


def cmd_flow_fit(args: argparse.Namespace) -> int:
    from rem_core.pipeline import ensure_rareness

    config, ds = prepare(args)
    run = ensure_rareness(config, ds, progress=StageBars(), client=args.client)
    meta = run.meta
    print(
        f"{config.rareness.estimator} fitted on {meta['fit_rows']:,} detections "
        f"({config.rareness.k} PCA components, {meta['explained_variance']:.1%} of the "
        f"variance) in {meta['fit_s']:.1f} s; cached in {run.path}"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from rem_core.mining import aggregate_tracks, d_rem, m_rem, md_rem
    from rem_core.pipeline import ensure_detections, ensure_rareness

    config, ds = prepare(args)
    det_run = ensure_detections(config, ds, progress=StageBars(), client=args.client)
    run = ensure_rareness(config, ds, progress=StageBars(), client=args.client)
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
    config, ds = prepare(args)
    pool = ensure_mining_pool(config, ds, progress=StageBars(), client=args.client)
    mined = mine(pool, args.method, config, client=args.client)
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

    config, ds = prepare(args)
    pool = ensure_mining_pool(config, ds, progress=StageBars(), client=args.client)
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
        from rem_core.files import publish_file

        publish_file(args.out, lambda tmp: table.to_csv(tmp, index=False), force=args.force)
        print(f"wrote {args.out}")
    return 0
