"""Mining from the command line: ``rem mine`` (Algorithm 1, and the mined track list) and
``rem compare`` (what each selection method mines, paper Table 1)."""

from __future__ import annotations

import argparse

from rem_core.cli.prepare import prepare
from rem_core.cli.progress import StageBars
from rem_core.errors import InputError
from rem_core.files import publish_file
from rem_core.mining import MINED_FORMATS, compare_methods, mine, write_label_set, write_mined
from rem_core.pipeline import ensure_mining_pool

__all__ = ["cmd_compare", "cmd_mine"]


def cmd_mine(args: argparse.Namespace) -> int:
    # Validate the outputs before the (possibly long) pipeline runs.
    if args.out.suffix.lower() not in MINED_FORMATS:
        raise InputError(f"--out {args.out}: use a suffix of {', '.join(MINED_FORMATS)}")
    for out in (args.out, args.labels):
        if out is not None and out.exists() and not args.force:
            raise FileExistsError(f"{out}: exists; pass --force to replace it")
    if args.labels is not None and args.labels.suffix.lower() != ".bin":
        raise InputError(f"--labels {args.labels}: a Waymo Objects file must end in .bin")
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
        publish_file(args.out, lambda tmp: table.to_csv(tmp, index=False), force=args.force)
        print(f"wrote {args.out}")
    return 0
