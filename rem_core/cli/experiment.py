"""``rem experiment``: the active-learning experiment, and shipping its reference tables."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace

from rem_core.cli.prepare import features_for_args, open_dataset, settings
from rem_core.cli.progress import StageBars
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.experiment import (
    REFERENCE_RESULTS,
    experiment_intervals,
    load_reference,
    paper_claims,
    plan_experiment,
    read_experiment,
    reference_status,
    run_experiment,
    ship_reference,
    verify,
    write_experiment,
)
from rem_core.pipeline import ensure_world

__all__ = ["cmd_experiment", "cmd_verify"]


def cmd_experiment(args: argparse.Namespace) -> int:
    config = settings(args)
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
    ds = open_dataset(args, config)
    config = features_for_args(config, ds, args)
    result = run_experiment(config, ds, progress=StageBars(), client=args.client)
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
    _print_reference_status(config, ds)
    if args.out is not None:
        written = write_experiment(result, args.out, force=args.force, intervals=intervals)
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _print_reference_status(config: RemConfig, ds: Dataset) -> None:
    """What the shipped reference for these settings is, if there is one: not these runs,
    and how current it is."""
    reference, _ = load_reference(config, ds)
    if reference is None:
        return
    print(f"\nThe shipped reference for these settings ({reference.path}) is not compared with "
          "these runs:")  # fmt: skip
    for line in reference_status(reference).sentences():
        print(f"- {line}")


def _ship_reference(args: argparse.Namespace, config: RemConfig) -> int:
    """``rem experiment --ship-reference``: the cached runs, computing nothing, as the
    reference the Experiments page opens on (``rem_core.experiment.reference``)."""
    ds = open_dataset(args, config)
    config = features_for_args(config, ds, args)
    exp = config.experiment
    plan = plan_experiment(config, ds)
    result = read_experiment(config, ds, plan=plan)
    if result is None:
        raise FileNotFoundError(
            f"rem experiment --ship-reference: no cached run of {', '.join(exp.rows)} for "
            f"these settings (experiment key {plan.key}); run them first "
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
                   dataset=ds, force=args.force, plan=plan)  # fmt: skip
    print(f"shipped {len(result.runs)} runs of {len(result.table)} rows to {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``rem verify``: the shipped weights and reference runs, redone here and compared."""
    if args.runs < 0:
        raise InputError(f"--runs: must be >= 0, got {args.runs}")
    config = RemConfig.preset(args.preset)
    reference = None
    if args.runs:
        ds = ensure_world(config.world)
        reference, why = load_reference(config, ds)
        if reference is None:
            print(f"rem: {why} Verifying the weights alone.", file=sys.stderr)
    result = verify(
        config, reference, runs=args.runs, weights=not args.no_weights, progress=StageBars()
    )
    print(result.table())
    return 0 if result.passed else 1
