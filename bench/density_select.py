"""Benchmark: density model selection on a cached pipeline's detector features (1 thread).

Fits a grid of candidates (``rem_core.density.select_density``) on the detector features that
``ensure_rareness`` fits on (detections in ``rareness.fit_splits`` scoring at least
``rareness.min_score``), holding out whole segments: a single Gaussian and the plain FFJORD
(the pipeline's settings without RNODE) at every PCA dimension of ``--dims``, and FFJORD with
the RNODE penalties
(``kinetic_weight = jacobian_weight = w`` for each ``w`` of ``--weights``) at the same dims.
For each candidate it reports the held-out NLL (own space, per dimension, and the common
space of ``max(dims)`` components with a standard normal on the discarded ones: the one that
compares across dims), the AUROC of ``-log p`` of ground-truth boxes against the validation
split's regular vehicles for large vehicles, the other region's vehicles and pedestrians
(paper Fig. 6; ``rem_core.analysis.recall``), fit seconds, epochs and NFE (mean function evaluations
per training batch in the last epoch, its maximum over epochs, and of the held-out scoring
solve).

Bounded: the fitting rows are subsampled to ``--max-rows`` (default 30,000) and the held-out
rows to ``--max-heldout`` (10,000), and candidates not started within ``--budget-min``
minutes are skipped (reported). torch runs on ``--threads`` (default 1) threads.

Nothing is built: the world and detections must be cached under ``REM_CACHE_DIR``. By
default they are the preset's (``--preset demo``, ``--world-seed S`` for another world);
when the code has changed since they were cached (their keys differ), ``--detections DIR``
names a detection run folder (``$REM_CACHE_DIR/detections/<key>``) directly, and if the cache
holds exactly one detection run of the requested world seed it is used (a note says so).

Prints a table, then (last line) JSON: ``{"candidates": [...], "best", "best_by_k", ...}``.

Usage: ``REM_CACHE_DIR=<cache> python bench/density_select.py [--preset demo]
[--world-seed S] [--detections DIR] [--dims 8,16,32] [--weights 0.01,0.1] [--hidden 64x64]
[--max-rows N] [--max-heldout N] [--max-epochs E] [--budget-min M] [--threads T]
[--seed S] [--density-seed S]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)

from rem_core.analysis import log_prob_groups, ood_aurocs
from rem_core.cache import CacheEntry, cache_root, entries
from rem_core.config import PRESETS, RemConfig
from rem_core.dataset import Dataset
from rem_core.density import Candidate, select_density
from rem_core.pipeline import DetectionRun, detections_key, load_detections, world_path

log = logging.getLogger("density_select")


def world_config(preset: str, world_seed: int | None) -> RemConfig:
    """The preset's config, with ``world.seed = world_seed`` when given."""
    config = RemConfig.preset(preset)
    if world_seed is not None:
        config = dataclasses.replace(
            config, world=dataclasses.replace(config.world, seed=world_seed)
        )
    return config


def _dataset_of(run: DetectionRun) -> Dataset:
    folder = Path(run.meta.get("dataset", ""))
    if not (folder / "dataset.json").is_file():
        key = str(run.meta.get("dataset_key", ""))
        folder = CacheEntry.of("world", key, run.path.parents[1]).path
    return Dataset.open(folder)


def load_cached(config: RemConfig, detections: str | None) -> tuple[DetectionRun, Dataset, str]:
    """The cached detection run and its data set, and a note on how it was found."""
    if detections:
        run = load_detections(detections)
        return run, _dataset_of(run), f"detections given: {run.path}"
    world = world_path(config.world)
    if (world / "dataset.json").is_file():
        ds = Dataset.open(world)
        path = CacheEntry.of("detections", detections_key(config, ds)).path
        if (path / "meta.json").is_file():
            return load_detections(path), ds, f"the preset's cached pipeline: {path}"
    seed = config.world.seed
    found = []
    for entry in entries("detections"):
        if not entry.done:
            continue
        run = load_detections(entry.path)
        try:
            ds = _dataset_of(run)
        except Exception:  # noqa: BLE001 - a run whose world is gone cannot be used
            continue
        if ds.manifest.get("config", {}).get("seed") == seed:
            found.append((run, ds))
    if len(found) == 1:
        run, ds = found[0]
        return (
            run,
            ds,
            (
                f"the preset's keys are not in {cache_root()} (the code changed since it was "
                f"built); using its only detection run of world seed {seed}: {run.path}"
            ),
        )
    raise SystemExit(
        f"no cached detections for preset world seed {seed} under {cache_root()} "
        f"({len(found)} candidate runs); pass --detections <folder> or set REM_CACHE_DIR"
    )


def split_rows(
    run: DetectionRun, ds: Dataset, config: RemConfig, heldout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Row indices of the fitting and held-out detections, held out by whole segment."""
    splits = ds.segments.set_index("segment_id")["split"]
    det = run.detections
    cfg = config.rareness
    eligible = det["segment_id"].map(splits).isin(cfg.fit_splits).to_numpy() & (
        det["score"].to_numpy() >= cfg.min_score
    )
    segments = np.array(sorted(det.loc[eligible, "segment_id"].unique()))
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(heldout_fraction * len(segments))))
    held = set(rng.choice(segments, size=n_held, replace=False))
    in_held = det["segment_id"].isin(held).to_numpy()
    return (
        np.flatnonzero(eligible & ~in_held),
        np.flatnonzero(eligible & in_held),
        len(segments) - n_held,
        n_held,
    )


def candidates(
    config: RemConfig,
    dims: list[int],
    weights: list[float],
    hidden: list[tuple[int, ...]],
    epochs: int | None,
    density_seed: int | None,
) -> list[Candidate]:
    """Gaussian, plain FFJORD (the pipeline's settings without RNODE) and FFJORD + RNODE at
    every dim; cheap ones first."""
    base = config.rareness.density
    if epochs is not None:
        base = dataclasses.replace(base, max_epochs=epochs)
    if density_seed is not None:
        base = dataclasses.replace(base, seed=density_seed)
    out = [Candidate(k=k, estimator="gaussian") for k in dims]
    for k in dims:
        for h in hidden:
            # the plain flow of the paper, whatever the pipeline's default regularisation
            density = dataclasses.replace(base, hidden=h, kinetic_weight=0.0, jacobian_weight=0.0)
            out.append(Candidate(k=k, density=density))
            for w in weights:
                out.append(
                    Candidate(
                        k=k,
                        density=dataclasses.replace(density, kinetic_weight=w, jacobian_weight=w),
                    )
                )
    return out


def aurocs(run: DetectionRun, ds: Dataset, selection, fit) -> dict[str, float]:
    """AUROC of -log p for large vehicles, the other region and pedestrians (paper Fig. 6)."""
    splits = ds.segments.set_index("segment_id")["split"]
    groups = log_prob_groups(run.gt, np.zeros(len(run.gt)), splits)
    rows = np.flatnonzero(
        (groups["set"] != "").to_numpy() & np.isfinite(run.gt_features).all(axis=1)
    )
    z = selection.transform(run.gt_features[rows], fit.candidate.k)
    log_p = np.full(len(run.gt), np.nan)
    log_p[rows] = fit.estimator.score_samples(z)
    groups["log_prob"] = log_p
    groups.loc[~np.isin(np.arange(len(groups)), rows), "set"] = ""
    return ood_aurocs(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument("--world-seed", type=int, default=None, help="the preset's world seed")
    parser.add_argument("--detections", default=None, help="a cached detection run folder")
    parser.add_argument("--dims", default="8,16,32", help="PCA dimensions, comma-separated")
    parser.add_argument("--weights", default="0.01,0.1", help="RNODE weights (kinetic = jacobian)")
    parser.add_argument(
        "--hidden", default="64x64", help="FFJORD hidden widths, e.g. 64x64,128x128"
    )
    parser.add_argument("--max-rows", type=int, default=30000, help="fitting rows (subsample)")
    parser.add_argument("--max-heldout", type=int, default=10000, help="held-out rows (subsample)")
    parser.add_argument("--heldout-fraction", type=float, default=0.2, help="segments held out")
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the pipeline's")
    parser.add_argument("--budget-min", type=float, default=30.0, help="skip candidates after")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="held-out split and subsampling")
    parser.add_argument(
        "--density-seed", type=int, default=None, help="FFJORD's seed (default: the pipeline's)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every FFJORD epoch")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    logging.getLogger("rem_core.density.selection").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    config = world_config(args.preset, args.world_seed)
    run, ds, note = load_cached(config, args.detections)
    print(note, file=sys.stderr)
    fit_idx, held_idx, n_fit_seg, n_held_seg = split_rows(
        run, ds, config, args.heldout_fraction, args.seed
    )
    rng = np.random.default_rng(args.seed)
    eligible_fit, eligible_held = len(fit_idx), len(held_idx)
    if len(fit_idx) > args.max_rows:
        fit_idx = np.sort(rng.choice(fit_idx, size=args.max_rows, replace=False))
    if len(held_idx) > args.max_heldout:
        held_idx = np.sort(rng.choice(held_idx, size=args.max_heldout, replace=False))
    dims = [int(d) for d in args.dims.split(",")]
    weights = [float(w) for w in args.weights.split(",") if w]
    hidden = [tuple(int(h) for h in spec.split("x")) for spec in args.hidden.split(",")]
    grid = candidates(config, dims, weights, hidden, args.max_epochs, args.density_seed)
    print(
        f"{len(grid)} candidates on {len(fit_idx):,} of {eligible_fit:,} fitting rows "
        f"({n_fit_seg} segments), scored on {len(held_idx):,} of {eligible_held:,} rows of "
        f"{n_held_seg} held-out segments; {torch.get_num_threads()} torch thread(s)",
        file=sys.stderr,
    )
    selection = select_density(
        run.features[fit_idx],
        run.features[held_idx],
        grid,
        seed=config.rareness.density.seed,
        time_budget_s=args.budget_min * 60,
    )
    table = selection.table()
    extra = []
    for fit in selection.fits:
        history = getattr(fit.estimator, "history_", [])
        nfes = [r.nfe for r in history if not r.stalled]
        row = {"train_nfe_max": max(nfes) if nfes else float("nan")}
        if fit.error:
            row.update(
                {"auroc_large": np.nan, "auroc_ood_region": np.nan, "auroc_pedestrian": np.nan}
            )
        else:
            a = aurocs(run, ds, selection, fit)
            row.update(
                {
                    "auroc_large": a["large"],
                    "auroc_ood_region": a["other region"],
                    "auroc_pedestrian": a["pedestrian"],
                }
            )
        extra.append(row)
    table = pd.concat([table, pd.DataFrame(extra)], axis=1)
    columns = [
        "label",
        "heldout_nll",
        "heldout_nll_per_dim",
        "heldout_nll_common",
        "auroc_large",
        "auroc_ood_region",
        "auroc_pedestrian",
        "fit_s",
        "epochs",
        "train_nfe",
        "train_nfe_max",
        "score_nfe",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[columns].round(3).to_string(index=False))
    print(f"best in the common {max(dims)}-D space: {selection.best.candidate.label}")
    for k, fit in sorted(selection.best_by_k.items()):
        print(f"best at k={k}: {fit.candidate.label}")
    result = {
        "candidates": json.loads(table.to_json(orient="records")),
        "best": selection.best.candidate.label,
        "best_by_k": {str(k): f.candidate.label for k, f in sorted(selection.best_by_k.items())},
        "detections": str(run.path),
        "world_seed": ds.manifest.get("config", {}).get("seed"),
        "fit_rows": int(len(fit_idx)),
        "fit_rows_eligible": int(eligible_fit),
        "heldout_rows": int(len(held_idx)),
        "heldout_rows_eligible": int(eligible_held),
        "fit_segments": n_fit_seg,
        "heldout_segments": n_held_seg,
        "feature_dim": int(run.features.shape[1]),
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "density_seed": grid[-1].density.seed,
        "max_epochs": grid[-1].density.max_epochs,
        "total_s": time.perf_counter() - started,
    }
    print(json.dumps(with_calibration(result)))


if __name__ == "__main__":
    main()
