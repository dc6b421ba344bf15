"""Benchmark: FFJORD on a known 16-D Gaussian mixture (both cores).

Draws ``--n`` training rows from a fixed 4-component 16-D Gaussian mixture, fits
``rem_core.density.FFJORD`` and reports the held-out NLL gap to the true entropy (Monte Carlo
over 10,000 held-out rows, in nats per dimension), exact-trace scoring throughput at the
scoring tolerance (rows per second) and the fit time. With zuko installed (a bench-only
dependency), also times zuko's CNF log-density (exact trace, same solver tolerance) on the
same rows, untrained, as a throughput reference.

Prints a human-readable summary, then (last line) JSON:
``{"nll_gap_per_dim", "score_per_s", "fit_s", "epochs", "score_nfe", ...}``.

Usage: ``python bench/density.py [--n N] [--max-epochs E] [--seed S] [--world demo|none]
[--world-seed S] [--skip-toy]``

With ``--world`` (default ``demo``) it also fits every estimator on the world's detector
features (cached pipeline) and reports ``auroc_large``, ``auroc_ood_region``,
``auroc_pedestrian`` and ``auroc_*_by_estimator`` (paper Fig. 6), and the main detector's
recall against FFJORD rareness on the validation split (paper Fig. 2):
``recall_rareness_spearman``, ``recall_rarest_10pct``, ``recall_other_90pct``. Rare beyond
size (paper Fig. 5, ``rem_core.analysis.rare_groups``, FFJORD): ``auroc_rare_groups`` (group ->
``{"d_rem", "size_only", "n", "regular_size"}``, on the validation split and the unlabelled
pool), ``label_noise_in_rarest_5pct`` (share of label-noise vehicle boxes among the rarest
5%; target >= 0.5), ``rarest_5pct_label_noise_share`` (share of the rarest 5% that is label
noise) and ``ks_train_val`` (KS statistic between the training pool's and validation's log p).
Rareness along a track (``rem_core.analysis.box_in_track``): ``label_noise_in_top5pct_box_in_track``
(the share of label-noise vehicle boxes among the top 5% of the box-in-track score, the same
boxes ranked; target >= 0.6), ``box_in_track_top5pct_label_noise_share``, and
``label_noise_found_by_kind`` (noise kind -> ``{"rareness", "box_in_track",
"feature_in_track", "n"}``: the share of that kind's boxes each ranking puts in its top 5%).
``run_overlap`` (``"ffjord vs gaussian"`` -> ``{"spearman", "top_jaccard", "budget", "tracks"}``):
how two density models' rankings of the unlabelled pool's detected tracks agree
(``rem_core.analysis.compare_runs``, the top at the mining budget).
``label_noise_in_top5pct_feature_in_track`` is an exploratory alternative measured here only:
each box's distance from its track's median in the density's standardised PCA features (the
root of the summed squares of its robust z-scores), not a log p.

``--world-seed S`` runs on the preset's world with ``world.seed = S`` (a new world: its
pipeline is built from scratch unless cached). ``--skip-toy`` skips the 16-D mixture
benchmark and reports the world's measurements alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
from calibrate import with_calibration  # noqa: E402  (bench/ is on sys.path)
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from rem_core.config import ESTIMATORS, PRESETS
from rem_core.density import FFJORD, GaussianDensity, GaussianMixtureDensity

ESTIMATOR_NAMES = ESTIMATORS


def world_config(preset: str, world_seed: int | None = None):
    """The preset's ``RemConfig``, with ``world.seed = world_seed`` when given."""
    from dataclasses import replace

    from rem_core.config import RemConfig

    config = RemConfig.preset(preset)
    if world_seed is not None:
        config = replace(config, world=replace(config.world, seed=world_seed))
    return config


def world_aurocs(config) -> dict[str, object]:
    """AUROC of -log p on the world's ground truth (paper Fig. 6), for every estimator.

    Uses the cached pipeline (world, detectors, detections): building it from an empty
    cache takes long (see docs/detector.md).
    """
    from dataclasses import replace

    from rem_core.analysis import log_prob_groups, ood_aurocs
    from rem_core.pipeline import ensure_detections, ensure_rareness, ensure_world

    ds = ensure_world(config.world)
    det = ensure_detections(config, ds)
    splits = ds.segments.set_index("segment_id")["split"]
    by_estimator, fit_s = {}, {}
    for name in ESTIMATOR_NAMES:
        cfg = replace(config, rareness=replace(config.rareness, estimator=name))
        run = ensure_rareness(cfg, ds)
        by_estimator[name] = ood_aurocs(log_prob_groups(det.gt, run.gt_log_prob, splits))
        fit_s[name] = run.meta["fit_s"]
    ffjord = by_estimator["ffjord"]
    return {
        **world_recall(config, ds, det),
        **world_rare_groups(config, ds, det),
        "run_overlap": world_run_overlap(config, ds, det),
        "auroc_large": ffjord["large"],
        "auroc_ood_region": ffjord["other region"],
        "auroc_pedestrian": ffjord["pedestrian"],
        "auroc_large_by_estimator": {k: v["large"] for k, v in by_estimator.items()},
        "auroc_ood_region_by_estimator": {k: v["other region"] for k, v in by_estimator.items()},
        "auroc_pedestrian_by_estimator": {k: v["pedestrian"] for k, v in by_estimator.items()},
        "world_fit_s_by_estimator": fit_s,
    }


def world_run_overlap(config, ds, det, pairs=(("ffjord", "gaussian"), ("ffjord", "knn"),
                                             ("gaussian", "knn"))) -> dict[str, dict]:  # fmt: skip
    """How two density models' rankings of the unlabelled pool's detected tracks agree
    (``rem_core.analysis.compare_runs``): Spearman of track rareness and the Jaccard overlap
    of their top tracks at the mining budget, per pair."""
    from dataclasses import replace

    from rem_core.analysis import compare_runs
    from rem_core.mining import aggregate_tracks
    from rem_core.pipeline import ensure_rareness

    pool = det.detections["segment_id"].isin(ds.split_ids("unlabelled")).to_numpy()
    boxes = det.detections[pool]
    tracks = {}
    for name in sorted({n for pair in pairs for n in pair}):
        cfg = replace(config, rareness=replace(config.rareness, estimator=name))
        tracks[name] = aggregate_tracks(boxes, ensure_rareness(cfg, ds).log_prob[pool])
    out = {}
    for a, b in pairs:
        result = compare_runs(tracks[a], tracks[b], budget=config.mining.budget)
        out[f"{a} vs {b}"] = {
            "spearman": result.spearman,
            "top_jaccard": result.top_jaccard,
            "budget": result.budget,
            "tracks": result.n_tracks,
        }
    return out


def world_recall(config, ds, det) -> dict[str, float]:
    """Recall of the main detector per 2% rareness bin of validation vehicles (paper Fig. 2).

    Ground truth with at least ``LEVEL_1_MIN_POINTS`` points; rareness is FFJORD's ``-log p``
    of each box's ROI-pooled features; a box counts as found when a detection scoring at least
    ``rareness.min_score`` matches it at 3D IoU 0.5.
    """
    from rem_core.analysis import recall_by_rareness
    from rem_core.evaluation import LEVEL_1_MIN_POINTS, evaluate_detections
    from rem_core.pipeline import ensure_rareness

    run = ensure_rareness(config, ds)
    val = set(ds.split_ids("validation"))
    gt_rows = np.flatnonzero(det.gt["segment_id"].isin(val).to_numpy())
    preds = det.detections[det.detections["segment_id"].isin(val)].reset_index(drop=True)
    result = evaluate_detections(
        preds, det.gt.iloc[gt_rows].reset_index(drop=True), min_points=LEVEL_1_MIN_POINTS
    )
    rareness = -run.gt_log_prob[gt_rows][result.gt["gt_index"].to_numpy()]
    curve = recall_by_rareness(result, rareness, score_threshold=config.rareness.min_score)
    found = result.gt["matched"].to_numpy() & (
        result.gt["score"].to_numpy() >= config.rareness.min_score
    )
    rare = rareness >= np.quantile(rareness, 0.9)
    return {
        "recall_rareness_spearman": curve.spearman,
        "recall_rarest_10pct": float(found[rare].mean()),
        "recall_other_90pct": float(found[~rare].mean()),
    }


def world_rare_groups(config, ds, det) -> dict[str, object]:
    """Rare beyond size (paper Fig. 5) with FFJORD rareness: see ``rem_core.analysis.rare_groups``.

    The size-only density is fitted on the training pool's regular, non-noisy ground-truth
    vehicle boxes (of ``rareness.fit_splits``); groups are measured on the validation split
    and the unlabelled pool together.
    """
    from rem_core.analysis import (
        box_in_track,
        ks_train_val,
        label_noise_in_rarest,
        rare_group_aurocs,
        size_log_prob,
        size_train_boxes,
    )
    from rem_core.pipeline import ensure_rareness

    run = ensure_rareness(config, ds)
    splits = ds.segments.set_index("segment_id")["split"]
    size_lp = size_log_prob(size_train_boxes(det.gt, splits, config.rareness.fit_splits), det.gt)
    groups = rare_group_aurocs(det.gt, run.gt_log_prob, size_lp, splits)
    noise = label_noise_in_rarest(det.gt, run.gt_log_prob, 0.05, splits)
    in_track = box_in_track(det.gt, run.gt_log_prob).score
    in_features = feature_in_track(det.gt, run.reducer.transform(det.gt_features))
    rankings = {"rareness": None, "box_in_track": in_track, "feature_in_track": in_features}
    found = {
        name: label_noise_in_rarest(det.gt, run.gt_log_prob, 0.05, splits, rank_by=by)
        for name, by in rankings.items()
    }
    by_kind = {}
    for kind in sorted(set(det.gt["noise_kind"]) - {""}):
        of_kind = det.gt.assign(label_noise=(det.gt["noise_kind"] == kind).to_numpy())
        shares = {
            name: label_noise_in_rarest(of_kind, run.gt_log_prob, 0.05, splits, rank_by=by)
            for name, by in rankings.items()
        }
        by_kind[kind] = {name: r.noise_in_rarest for name, r in shares.items()}
        by_kind[kind]["n"] = shares["rareness"].n_noise
    return {
        "ks_train_val": ks_train_val(det.gt, run.gt_log_prob, splits).statistic,
        "auroc_rare_groups": groups.as_dict(),
        "rare_groups_splits": list(groups.eval_splits),
        "rare_groups_reference_n": groups.n_reference,
        "label_noise_in_rarest_5pct": noise.noise_in_rarest,
        "rarest_5pct_label_noise_share": noise.rarest_that_are_noise,
        "label_noise_base_rate": noise.base_rate,
        "label_noise_in_top5pct_box_in_track": found["box_in_track"].noise_in_rarest,
        "box_in_track_top5pct_label_noise_share": found["box_in_track"].rarest_that_are_noise,
        "label_noise_in_top5pct_feature_in_track": found["feature_in_track"].noise_in_rarest,
        "label_noise_found_by_kind": by_kind,
    }


def feature_in_track(gt, features: np.ndarray) -> np.ndarray:
    """Exploratory: each box's distance from its track's median in standardised PCA
    features, in robust units per component (NaN for tracks of fewer than 3 boxes)."""
    import pandas as pd

    keys = [gt["segment_id"].to_numpy(), gt["track_id"].to_numpy()]
    frame = pd.DataFrame(features)
    grouped = frame.groupby(keys, sort=False)
    deviation = features - grouped.transform("median").to_numpy()
    scored = (grouped[0].transform("size").to_numpy() >= 3) & np.isfinite(deviation).all(axis=1)
    unit = 1.4826 * np.median(np.abs(deviation[scored]), axis=0)
    distance = np.sqrt(((deviation / unit) ** 2).sum(axis=1))
    return np.where(scored, distance, np.nan)


def print_rare_groups(result: dict) -> None:
    """The rare-groups lines of the human-readable summary."""
    print(
        f"rare beyond size ({' + '.join(result['rare_groups_splits'])}, against "
        f"{result['rare_groups_reference_n']:,} regular vehicle boxes): AUROC D-REM / size-only"
    )
    for name, g in result["auroc_rare_groups"].items():
        print(
            f"  {name:<20} {g['n']:>6,} boxes  {g['d_rem']:.3f} / {g['size_only']:.3f}"
            f"{'  (regular size)' if g['regular_size'] else ''}"
        )
    print(
        f"label-noise vehicle boxes among the rarest 5%: "
        f"{result['label_noise_in_rarest_5pct']:.1%} (target >= 50%); label noise makes up "
        f"{result['rarest_5pct_label_noise_share']:.1%} of the rarest 5% (base rate "
        f"{result['label_noise_base_rate']:.1%}); KS train vs validation log p "
        f"{result['ks_train_val']:.3f}"
    )
    print(
        f"label-noise vehicle boxes among the top 5% of the box-in-track score: "
        f"{result['label_noise_in_top5pct_box_in_track']:.1%} (target >= 60%; "
        f"exploratory feature distance from the track: "
        f"{result['label_noise_in_top5pct_feature_in_track']:.1%})"
    )
    for kind, shares in result["label_noise_found_by_kind"].items():
        print(
            f"  {kind:<12} {shares['n']:>4} boxes: rareness {shares['rareness']:.0%}, "
            f"box-in-track {shares['box_in_track']:.0%}, feature distance "
            f"{shares['feature_in_track']:.0%}"
        )


D, K = 16, 4


def mixture(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, D), covariances (K, D, D): means ~ N(0, I), eigenvalues 0.1-0.5."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, D))
    covs = []
    for _ in range(K):
        q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        covs.append(q @ np.diag(rng.uniform(0.1, 0.5, size=D)) @ q.T)
    return np.full(K, 1 / K), means, np.stack(covs)


def sample(mix: tuple, n: int, seed: int) -> np.ndarray:
    w, means, covs = mix
    rng = np.random.default_rng(seed)
    comp = rng.choice(K, size=n, p=w)
    chol = np.linalg.cholesky(covs)
    return means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.normal(size=(n, D)))


def logpdf(mix: tuple, X: np.ndarray) -> np.ndarray:
    w, means, covs = mix
    parts = [
        np.log(wi) + multivariate_normal(m, c).logpdf(X) for wi, m, c in zip(*mix, strict=True)
    ]
    del w, means, covs
    return logsumexp(np.stack(parts), axis=0)


def zuko_score_per_s(x: np.ndarray, rtol: float, atol: float) -> float | None:
    try:
        import zuko
    except ImportError:
        return None
    flow = zuko.flows.CNF(D, hidden_features=(64, 64), exact=True, atol=atol, rtol=rtol)
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        flow().log_prob(xt[:256])
        start = time.perf_counter()
        flow().log_prob(xt)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="training rows")
    parser.add_argument("--max-epochs", type=int, default=40, help="FFJORD max epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the estimator")
    parser.add_argument("--verbose", action="store_true", help="log every epoch")
    parser.add_argument(
        "--world",
        default="demo",
        choices=["none", *PRESETS],
        help="also report AUROCs on this preset's cached pipeline (default: demo)",
    )
    parser.add_argument(
        "--world-seed", type=int, default=None, help="the world's seed (default: the preset's)"
    )
    parser.add_argument(
        "--skip-toy", action="store_true", help="skip the 16-D mixture; the world's part alone"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.skip_toy and args.world == "none":
        parser.error("--skip-toy with --world none leaves nothing to measure")
    result = {} if args.skip_toy else toy_benchmark(args)
    if args.world != "none":
        config = world_config(args.world, args.world_seed)
        result.update(world_aurocs(config))
        result["world"], result["world_seed"] = args.world, config.world.seed
        print(
            f"{args.world} world (seed {result['world_seed']}), AUROC of -log p against "
            f"validation vehicles: large "
            f"{result['auroc_large']:.3f}, other region {result['auroc_ood_region']:.3f}, "
            f"pedestrians {result['auroc_pedestrian']:.3f} (targets >= 0.9, 0.8, 0.8)"
        )
        print(
            f"recall of validation vehicles: rarest 10% {result['recall_rarest_10pct']:.3f}, "
            f"the rest {result['recall_other_90pct']:.3f}; Spearman of recall with rareness "
            f"over 2% bins {result['recall_rareness_spearman']:+.3f}"
        )
        print_rare_groups(result)
        for pair, r in result["run_overlap"].items():
            print(
                f"{pair}: Spearman {r['spearman']:.3f} of track rareness, top {r['budget']} "
                f"tracks overlap {r['top_jaccard']:.3f} (Jaccard; {r['tracks']:,} tracks)"
            )
    if not args.skip_toy:
        print_toy(result)
    print(json.dumps(with_calibration(result)))


def toy_benchmark(args: argparse.Namespace) -> dict:
    """FFJORD and the baselines on the 16-D Gaussian mixture."""
    mix = mixture(0)
    X, X_test = sample(mix, args.n, 1), sample(mix, 10000, 2)
    entropy = float(-logpdf(mix, X_test).mean())

    start = time.perf_counter()
    est = FFJORD(max_epochs=args.max_epochs, seed=args.seed).fit(X)
    fit_s = time.perf_counter() - start
    est.score_samples(X_test[:256])  # warm-up
    start = time.perf_counter()
    scores = est.score_samples(X_test)
    score_per_s = len(X_test) / (time.perf_counter() - start)
    nll = float(-scores.mean())

    baselines = {}
    for name, base in (
        ("gaussian", GaussianDensity()),
        ("gmm", GaussianMixtureDensity(n_components=K)),
    ):
        baselines[f"{name}_nll_gap_per_dim"] = (
            float(-base.fit(X).score_samples(X_test).mean() - entropy) / D
        )
    zuko_rate = zuko_score_per_s(X_test, est.config.rtol, est.config.atol)

    result = {
        "nll_gap_per_dim": (nll - entropy) / D,
        "score_per_s": score_per_s,
        "fit_s": fit_s,
        "epochs": len(est.history_),
        "train_nfe_last_epoch": est.history_[-1].nfe,
        "score_nfe": est.last_nfe_,
        "entropy_per_dim": entropy / D,
        "threads": torch.get_num_threads(),
        **baselines,
    }
    if zuko_rate is not None:
        result["zuko_score_per_s"] = zuko_rate
    result["nll_per_dim"] = nll / D
    return result


def print_toy(result: dict) -> None:
    """The mixture benchmark's lines of the human-readable summary."""
    entropy, nll = result["entropy_per_dim"] * D, result["nll_per_dim"] * D
    print(f"true entropy {entropy:.3f} nats ({entropy / D:.4f}/dim), FFJORD NLL {nll:.3f}")
    print(f"gap {result['nll_gap_per_dim']:.4f} nats/dim (target <= 0.05)")
    print(
        f"scoring {result['score_per_s']:,.0f} rows/s at NFE {result['score_nfe']} "
        "(target >= 20,000)"
    )
    print(f"fit {result['fit_s']:.1f} s over {result['epochs']} epochs")
    if "zuko_score_per_s" not in result:
        print("zuko not installed: no zuko_score_per_s")


if __name__ == "__main__":
    main()
