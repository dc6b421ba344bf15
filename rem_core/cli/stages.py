"""The pipeline's stages from the command line: ``rem detect``, ``rem eval``, ``rem flow fit``
and ``rem score``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial

import pandas as pd

from rem_core.analysis import box_in_track, compare_runs
from rem_core.cli.prepare import prepare
from rem_core.cli.progress import StageBars
from rem_core.config import config_to_dict
from rem_core.dataset import write_parquet_folder
from rem_core.errors import InputError
from rem_core.evaluation import REPORTED_SUBSETS, evaluate_detections
from rem_core.files import publish_file, publish_folder
from rem_core.mining import aggregate_tracks, d_rem, m_rem, md_rem
from rem_core.pipeline import (
    SHIPPED,
    clear_pipeline,
    detector_entry,
    detector_key,
    detector_origin,
    ensure_detections,
    ensure_detectors,
    ensure_rareness,
    ship_detectors,
    with_estimator,
    write_detections,
)

__all__ = [
    "cmd_compare_runs",
    "cmd_detect_run",
    "cmd_detect_ship",
    "cmd_detect_train",
    "cmd_eval",
    "cmd_flow_fit",
    "cmd_score",
]


def cmd_detect_train(args: argparse.Namespace) -> int:
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
    config, ds = prepare(args, features=False)
    entry = detector_entry(config, ds)
    key = entry.key
    if detector_origin(config, ds).get("origin") == "shipped":
        raise SystemExit(
            f"rem detect ship: the cached ensemble {key} is itself a shipped copy; train it "
            "first with `rem detect train --retrain`"
        )
    ensure_detectors(config, ds, progress=StageBars(), shipped=False)
    out = args.out or SHIPPED / args.preset
    settings = {"detector": config_to_dict(config.detector), "preset": args.preset}
    ship_detectors(entry.path, ds, key, out, settings)
    print(f"shipped the ensemble {key} to {out}")
    return 0


def cmd_detect_run(args: argparse.Namespace) -> int:
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
        # One folder: the detections, features, tracks, auto-labels and every member's scores.
        publish_folder(args.out, partial(write_detections, run), force=args.force)
        print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    # a data set's own detections are evaluated as they are
    config, ds = prepare(args)
    run = ensure_detections(config, ds, progress=StageBars(), client=args.client)
    segments = ds.split_ids(args.split)
    if not segments:
        raise InputError(f"split: {ds.root} has no {args.split!r} segments")
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
    table = table[table["subset"].isin(REPORTED_SUBSETS)]
    print(
        f"AP at {args.iou.upper()} IoU {args.iou_threshold} on the {args.split} split "
        f"({len(segments)} segments; ground truth with >= {args.min_points} points)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_flow_fit(args: argparse.Namespace) -> int:
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
    # how far its log p falls below its own track's, in robust units: a box to re-check
    in_track = box_in_track(det, run.log_prob)
    table["box_in_track"] = in_track.score
    tracks = aggregate_tracks(det, run.log_prob)
    print(f"{len(table):,} detections and {len(tracks):,} tracks scored; rarest tracks:")
    print(tracks.head(10).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(
        f"{int(in_track.flagged.sum()):,} detections fall at least {in_track.threshold:g} "
        f"units ({in_track.unit:.2f} nats each) below their track's median log p "
        "(box_in_track): boxes to re-check"
    )
    if args.out is not None:
        write_parquet_folder(
            args.out, {"detection_scores": table, "track_scores": tracks}, force=args.force
        )
        print(f"wrote {args.out}/detection_scores.parquet and track_scores.parquet")
    return 0


def cmd_compare_runs(args: argparse.Namespace) -> int:
    config, ds = prepare(args)
    if args.against_estimator is not None:
        other = with_estimator(config, args.against_estimator)
        tracks = args.tracks or "detected"
        names = (config.rareness.estimator, args.against_estimator)
    else:
        detector = replace(config.detector, seed=args.against_detector_seed)
        other = replace(config, detector=detector)
        tracks = args.tracks or "gt"
        if tracks == "detected":
            raise InputError(
                "--tracks detected: two ensembles' trackers number their own tracks, so "
                "their detected tracks cannot be matched; compare ground-truth tracks "
                "(--tracks gt)"
            )
        names = (f"seed {config.detector.seed}", f"seed {args.against_detector_seed}")
    runs = []
    for cfg in (config, other):
        det_run = ensure_detections(cfg, ds, progress=StageBars(), client=args.client)
        run = ensure_rareness(cfg, ds, progress=StageBars(), client=args.client)
        boxes, log_prob = (
            (det_run.gt, run.gt_log_prob) if tracks == "gt" else (det_run.detections, run.log_prob)
        )
        if args.split != "all":
            keep = boxes["segment_id"].isin(ds.split_ids(args.split)).to_numpy()
            boxes, log_prob = boxes[keep], log_prob[keep]
        if tracks == "gt" and "class" in boxes:
            vehicles = (boxes["class"] == "vehicle").to_numpy()
            boxes, log_prob = boxes[vehicles], log_prob[vehicles]
        runs.append(aggregate_tracks(boxes, log_prob))
    result = compare_runs(*runs, budget=args.budget)
    where = "every split" if args.split == "all" else f"the {args.split} split"
    kind = "ground-truth vehicle" if tracks == "gt" else "detected"
    print(
        f"A: {names[0]}, B: {names[1]}; {result.n_tracks:,} {kind} tracks of {where} ranked "
        f"by both ({result.only_a:,} by A only, {result.only_b:,} by B only)"
    )
    print(
        f"Spearman's rank correlation of track rareness: {result.spearman:.3f}; the "
        f"{result.budget:,} rarest tracks (budget {args.budget}) overlap with Jaccard "
        f"{result.top_jaccard:.3f}"
    )
    if args.top > 0 and result.n_tracks:
        shown = result.moved_most(args.top)
        print(f"The {len(shown)} tracks in either top {result.budget:,} whose rank moved most:")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out is not None:
        publish_file(args.out, lambda tmp: result.tracks.to_csv(tmp, index=False), force=args.force)
        print(f"wrote {args.out}")
    return 0
