"""The order of REM's stages, and their disk cache.

world -> detector ensemble (trained on the source pool) -> detections of the main model on
every segment, with ROI-pooled features for detections and ground truth -> ensemble scores on
the unlabelled pool -> tracks -> offboard auto-labels -> PCA features and a density model
fitted on the pools -> log p of every detection and ground-truth object -> the unlabelled
pool as mining sees it (``ensure_mining_pool``; mining itself is fast and not cached).

Each stage is cached under ``<cache>/<stage>/<key>/`` (see ``rem_core.artifacts``): the key
hashes the stage's settings and its inputs' keys, so a second run is instant and a changed
setting never reuses a stale result.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.artifacts import cache_entry, cache_root, dataset_key
from rem_core.config import FeatureConfig, RemConfig, config_hash, config_to_dict
from rem_core.dataset import Dataset
from rem_core.density import DensityEstimator, load_estimator, make_estimator
from rem_core.detect import (
    BevDetector,
    detect,
    detect_ensemble,
    ensemble_scores,
    load_detector,
    save_detector,
    train_detectors,
)
from rem_core.features import FeatureReducer
from rem_core.io.files import publish_folder
from rem_core.io.importers import DETECTION_FEATURES_FILE, DETECTIONS_FILE
from rem_core.mining import MiningPool
from rem_core.schema import BOX_COLUMNS, BOXES, DETECTIONS, conform, read_table
from rem_core.shipped import find_shipped
from rem_core.track import auto_label, track_detections

__all__ = [
    "DetectionRun",
    "Progress",
    "clear_pipeline",
    "detector_origin",
    "RarenessRun",
    "ensure_detections",
    "ensure_detectors",
    "ensure_mining_pool",
    "ensure_rareness",
    "FeatureChoice",
    "choose_features",
    "features_for",
    "load_detections",
    "load_rareness",
    "pipeline_status",
    "run_pipeline",
]

log = logging.getLogger(__name__)

#: Bumped when the detector's code changes what a trained model or its output would be.
DETECTOR_VERSION = "bev-detector-4"

#: Bumped when the geometric descriptors or the geometry stage change.
GEOMETRY_VERSION = "geometry-1"

#: ``progress(stage, done, total)``: what a long stage reports as it goes.
Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    pass


def _stage(progress: Progress | None, name: str) -> Callable[[int, int], None]:
    report = progress or _quiet
    return lambda done, total: report(name, done, total)


#: Frames with a point cloud the source split needs for our detector to be trained on it
#: (the tiny world's single source segment has 8).
MIN_DETECTOR_FRAMES = 8

#: What ``--features`` accepts: a feature source, or ``"auto"`` (:func:`choose_features`).
FEATURE_CHOICES = ("auto", "detector", "geometry", "imported")


@dataclass(frozen=True)
class FeatureChoice:
    """The features REM scores on a data set, and why (one line, for the user).

    Attributes:
        source: ``"detector"``, ``"geometry"`` or ``"imported"`` (see ``FeatureConfig``).
        reason: why this source, naming what the data set holds.
    """

    source: str
    reason: str


def choose_features(dataset: Dataset, wanted: str = "auto") -> FeatureChoice:
    """The features REM can score on ``dataset``: ``wanted``, checked, or with ``"auto"``
    what the data can support.

    ``auto`` picks the features a researcher's detector gave its detections if they are
    stored (``rem import detections --features``); else our detector if the source split
    holds point clouds in at least ``MIN_DETECTOR_FRAMES`` frames to train it on; else
    geometric descriptors of the boxes. A choice the data cannot support raises
    ``DataError`` naming what is missing and the command that would add it.
    """
    from rem_core.schema import DataError

    if wanted not in FEATURE_CHOICES:
        raise ValueError(f"features: unknown {wanted!r}; choose one of {FEATURE_CHOICES}")
    root = Path(dataset.root)
    imported = (root / DETECTIONS_FILE).is_file() and (root / DETECTION_FEATURES_FILE).is_file()
    frames = dataset.frames
    splits = dataset.segments.set_index("segment_id")["split"]
    in_source = frames["segment_id"].map(splits).eq("source").to_numpy()
    n_source = int(splits.eq("source").sum())
    with_points = int((frames["num_points"].to_numpy()[in_source] > 0).sum())
    trainable = with_points >= MIN_DETECTOR_FRAMES
    source_line = (
        f"the source split ({n_source} segment{'' if n_source == 1 else 's'}) has a point "
        f"cloud in {with_points} frame{'' if with_points == 1 else 's'}; our detector needs "
        f"{MIN_DETECTOR_FRAMES}"
    )
    if wanted == "auto":
        if imported:
            return FeatureChoice(
                "imported", f"{root} holds a detector's detections with their features"
            )
        if trainable:
            return FeatureChoice("detector", f"our detector ensemble: {source_line}")
        own = "its own detections" if (root / DETECTIONS_FILE).is_file() else "its labelled boxes"
        return FeatureChoice("geometry", f"geometric descriptors of {own}: {source_line}")
    if wanted == "detector" and not trainable:
        raise DataError(
            f"{root}: --features detector: {source_line}. Import labelled logs with their "
            "point clouds into the source split (`rem import ... --split source`), or score "
            "geometric descriptors (--features geometry)"
        )
    if wanted == "imported" and not imported:
        raise DataError(
            f"{root}: --features imported needs {DETECTIONS_FILE} and "
            f"{DETECTION_FEATURES_FILE}; store them with `rem import detections PATH --data "
            f"{root} --features F.npy`"
        )
    reasons = {
        "detector": f"our detector ensemble, as asked: {source_line}",
        "geometry": "geometric box descriptors, as asked",
        "imported": "the detector's features stored with the data set, as asked",
    }
    return FeatureChoice(wanted, reasons[wanted])


def features_for(config: RemConfig, dataset: Dataset, wanted: str = "auto") -> RemConfig:
    """``config`` with the features of :func:`choose_features` (``dataset``, ``wanted``)."""
    choice = choose_features(dataset, wanted)
    log.info("features: %s (%s)", choice.source, choice.reason)
    if choice.source == config.features.source:
        return config
    return replace(config, features=FeatureConfig(source=choice.source))


def detector_key(config: RemConfig, dataset: Dataset) -> str:
    """Cache key of a detector ensemble trained on ``dataset``."""
    return config_hash(config.detector, dataset_key(dataset), DETECTOR_VERSION)


def ensure_detectors(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    shipped: bool = True,
) -> list[BevDetector]:
    """The ensemble of ``config.detector.ensemble_size`` detectors, trained if not cached.

    Member 0 is the main model; members differ only by their initialisation seed. The
    members not cached are trained together (``train_detectors``) and each is published as
    its own cache entry. With ``shipped`` (the default), an ensemble that ships with the
    package for this very recipe and world (``rem_core.shipped``: same cache key, same world
    fingerprint) is copied into the cache instead of trained.
    """
    key = detector_key(config, dataset)
    folder = (root or cache_root()) / "detector" / key
    size = config.detector.ensemble_size

    def absent() -> list[int]:
        return [m for m in range(size) if not (folder / f"member-{m}" / "model.json").is_file()]

    with cache_entry(folder, lambda: not absent()) as todo:
        if todo:
            _train_detectors(config, dataset, folder, absent(), progress, shipped)
    return [load_detector(folder / f"member-{m}") for m in range(size)]


def _train_detectors(
    config: RemConfig,
    dataset: Dataset,
    folder: Path,
    missing: list[int],
    progress: Progress | None,
    shipped: bool,
) -> None:
    """Publish the ``missing`` members of the ensemble in ``folder``: shipped or trained."""
    key, size = folder.name, config.detector.ensemble_size
    found = find_shipped(key, dataset, size) if missing and shipped else None
    if found is not None:
        source, provenance = found
        report = _stage(progress, "detectors shipped with the app")
        report(0, len(missing))
        for i, member in enumerate(missing):
            meta = {"member": member, "origin": "shipped", "commit": provenance["commit"]}
            publish_folder(folder / f"member-{member}", partial(_copy_member, source, member, meta))
            report(i + 1, len(missing))
        log.info("detectors: copied %d shipped member(s) from %s", len(missing), source)
        missing = []
    if missing:
        # Together, on the same batches: building a batch is most of a step on a CPU, and
        # the members share their data order (docs/detector.md).
        stage = (
            f"training the ensemble's {size} detectors"
            if len(missing) == size
            else f"training {len(missing)} of the ensemble's {size} detectors"
        )
        trained = train_detectors(
            config.detector, dataset, missing, progress=_stage(progress, stage)
        )
        for member, model in zip(missing, trained, strict=True):
            meta = {"member": member, "dataset": str(dataset.root)}
            path = folder / f"member-{member}"
            publish_folder(
                path, lambda tmp, model=model, meta=meta: save_detector(model, tmp, meta)
            )


def _copy_member(source: Path, member: int, meta: dict, tmp: Path) -> None:
    shutil.copyfile(source / f"member-{member}" / "model.pt", tmp / "model.pt")
    info = json.loads((source / f"member-{member}" / "model.json").read_text())
    info.update(meta)
    (tmp / "model.json").write_text(json.dumps(info, indent=2))


def detector_origin(config: RemConfig, dataset: Dataset, root: Path | None = None) -> dict:
    """Where the cached ensemble's main model came from: ``{"origin": "shipped", "commit":
    ...}`` or ``{"origin": "trained"}``; ``{}`` when it is not cached."""
    path = (root or cache_root()) / "detector" / detector_key(config, dataset) / "member-0"
    try:
        info = json.loads((path / "model.json").read_text())
    except FileNotFoundError:
        return {}
    return {"origin": info.get("origin", "trained"), "commit": info.get("commit")}


def clear_pipeline(config: RemConfig, dataset: Dataset, root: Path | None = None) -> list[Path]:
    """Remove the cached ensemble of ``config`` on ``dataset`` and every stage computed from
    it (its detections, and the rareness of every density model on them); the removed
    folders. The next run recomputes them (``rem detect train --retrain``, Home's
    *Retrain the detectors*)."""
    root = root or cache_root()
    detections = root / "detections" / detections_key(config, dataset)
    removed = [root / "detector" / detector_key(config, dataset), detections]
    for meta in (root / "rareness").glob("*/meta.json"):
        try:
            if json.loads(meta.read_text()).get("detections") == str(detections):
                removed.append(meta.parent)
        except (OSError, json.JSONDecodeError):
            continue
    removed = [path for path in removed if path.exists()]
    for path in removed:
        shutil.rmtree(path)
    return removed


@dataclass(frozen=True)
class DetectionRun:
    """The detection stage's output over a data set.

    Attributes:
        path: the cache folder.
        detections: the main model's detections (``DETECTIONS``), ``track_id`` filled in.
        features: ``(N, C)`` float32 ROI-pooled BEV features, row ``i`` for detection ``i``.
        scores: ``(N, M)`` float32 score of each ensemble member for each detection
            (column 0: the main model; a miss scores 0); NaN outside the unlabelled pool.
        gt: ground-truth boxes (``BOXES``) of every segment, in the row order of
            ``gt_features``.
        gt_features: ``(K, C)`` float32 ROI-pooled features of the ground-truth boxes.
        autolabels: the offboard auto-labeler's boxes (``DETECTIONS`` columns plus
            ``interpolated``).
        meta: settings and timings of the run.
    """

    path: Path
    detections: pd.DataFrame
    features: np.ndarray
    scores: np.ndarray
    gt: pd.DataFrame
    gt_features: np.ndarray
    autolabels: pd.DataFrame
    meta: dict = field(repr=False)

    @property
    def variance(self) -> np.ndarray:
        """``(N,)`` ensemble score variance (paper eq. 9), NaN outside the unlabelled pool."""
        return np.var(self.scores, axis=1)


def detections_key(config: RemConfig, dataset: Dataset) -> str:
    # Only the settings this stage reads: later stages' settings must not invalidate it.
    if config.features.source in ("geometry", "imported"):
        names = [DETECTIONS_FILE]
        if config.features.source == "imported":
            names.append(DETECTION_FEATURES_FILE)
        files = [Path(dataset.root) / name for name in names]
        stamp = "-".join(
            f"{own.stat().st_size}-{own.stat().st_mtime_ns}" if own.is_file() else "none"
            for own in files
        )
        return config_hash(
            config.features,
            GEOMETRY_VERSION,
            dataset_key(dataset),
            config_hash(config.auto_label),
            config_hash(config.tracker),
            stamp,
        )
    return config_hash(
        config.detector,
        dataset_key(dataset),
        DETECTOR_VERSION,
        config_hash(config.tracker),
        config_hash(config.auto_label),
    )


def _write_table(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, compression="zstd")


def ensure_detections(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    shipped: bool = True,
) -> DetectionRun:
    """Detections, features, ensemble scores, tracks and auto-labels, computed if not cached.

    With ``features.source`` "geometry" or "imported" no detector is trained: see
    :func:`_geometry_detections`.
    """
    root = root or cache_root()
    path = root / "detections" / detections_key(config, dataset)
    with cache_entry(path, "meta.json") as todo:
        if todo and config.features.source in ("geometry", "imported"):
            publish_folder(
                path, lambda tmp: _write_run(tmp, *_geometry_detections(config, dataset, progress))
            )
        elif todo:
            _detect(config, dataset, root, path, progress, shipped)
    return load_detections(path)


def _detect(
    config: RemConfig,
    dataset: Dataset,
    root: Path,
    path: Path,
    progress: Progress | None,
    shipped: bool,
) -> None:
    """Publish the detector's detections run on ``dataset`` as the cache entry ``path``."""
    models = ensure_detectors(config, dataset, root, progress, shipped)
    all_ids = dataset.segments["segment_id"].tolist()
    unlabelled = dataset.split_ids("unlabelled")
    main = detect(
        models[0],
        dataset,
        all_ids,
        gt_classes=("vehicle", "pedestrian", "cyclist"),
        progress=_stage(progress, "detecting"),
    )
    detections = main.detections
    scores = np.full((len(detections), len(models)), np.nan, np.float32)
    pool = detections["segment_id"].isin(unlabelled).to_numpy()
    others = [
        run.detections
        for run in detect_ensemble(
            models[1:],
            dataset,
            unlabelled,
            progress=_stage(progress, f"ensemble members 2-{len(models)} on the unlabelled pool"),
        )
    ]
    scores[pool] = ensemble_scores(detections[pool], others, config.detector.match_iou)
    report = _stage(progress, "tracking and auto-labelling")
    report(0, 2)
    tracked = track_detections(detections, dataset.frames, config.tracker)
    report(1, 2)
    labels = auto_label(tracked, dataset.frames, config.auto_label)
    report(2, 2)

    meta = {
        "config": config_to_dict(config),
        "dataset": str(dataset.root),
        "dataset_key": dataset_key(dataset),
        "detect_frames_per_s": main.frames_per_s,
        "members": len(models),
    }

    def write(tmp: Path) -> None:
        _write_run(tmp, tracked, main.features, scores, main.gt, main.gt_features, labels, meta)

    publish_folder(path, write)


def _write_run(
    tmp: Path,
    tracked: pd.DataFrame,
    features: np.ndarray,
    scores: np.ndarray,
    gt: pd.DataFrame,
    gt_features: np.ndarray,
    labels: pd.DataFrame,
    meta: dict,
) -> None:
    _write_table(conform(tracked, DETECTIONS, "detections"), tmp / "detections.parquet")
    np.save(tmp / "features.npy", features)
    np.save(tmp / "scores.npy", scores)
    _write_table(conform(gt, BOXES, "ground truth"), tmp / "gt_boxes.parquet")
    np.save(tmp / "gt_features.npy", gt_features)
    _write_table(labels, tmp / "autolabels.parquet")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


def _geometry_detections(config: RemConfig, dataset: Dataset, progress: Progress | None) -> tuple:
    """The detection stage without our detector.

    The detections are the data set's own (``detections.parquet``, written by ``rem import
    detections``), tracked by our tracker; without them, each ground-truth vehicle box
    stands in for a detection (score 1, its own track). With ``features.source ==
    "geometry"`` features are the geometric descriptors of ``rem_core.descriptors`` (with
    the points inside each box where the frame has a point cloud), for every detection and
    every ground-truth box. With ``"imported"`` they are the researcher's detector's own
    (``detection_features.npy``); a ground-truth box, which that detector never described,
    takes the features of the detection overlapping it best (BEV IoU >= the detector's
    ``match_iou``) and NaN features when it was missed (its log p is then NaN).
    The "ensemble" is the one score, so the variance is 0.
    Auto-labels smooth the tracks as for detections.
    """
    from rem_core.descriptors import box_descriptors
    from rem_core.mining.methods import best_overlap

    imported = config.features.source == "imported"
    report = _stage(progress, "features, tracks and auto-labels")
    report(0, 2)
    gt = dataset.boxes.reset_index(drop=True)
    points = dataset.points if dataset.frames["num_points"].any() else None
    own = Path(dataset.root) / DETECTIONS_FILE
    if imported:
        detections, features = _imported_detections(dataset)
        match, iou = best_overlap(gt, detections)
        hit = (match >= 0) & (iou >= config.detector.match_iou)
        gt_features = np.full((len(gt), features.shape[1]), np.nan, np.float32)
        gt_features[hit] = features[match[hit]]
        tracked = track_detections(detections, dataset.frames, config.tracker)
    elif own.is_file():
        # The data set's own detections (``rem import detections``), tracked like ours.
        gt_features = box_descriptors(gt, points)
        detections = read_table(own, DETECTIONS)
        features = box_descriptors(detections, points)
        tracked = track_detections(detections, dataset.frames, config.tracker)
    else:
        # Like the detector, the stand-in detections are vehicles.
        gt_features = box_descriptors(gt, points)
        vehicles = np.flatnonzero((gt["class"] == "vehicle").to_numpy())
        boxes = gt.iloc[vehicles].reset_index(drop=True)
        features = gt_features[vehicles]
        columns = ["segment_id", "frame_index", "class", *BOX_COLUMNS, "num_points", "distance"]
        tracked = boxes[columns].assign(
            detection_id=np.arange(len(boxes), dtype=np.int64),
            score=np.float32(1.0),
            track_id=boxes["segment_id"].astype(str) + "/" + boxes["track_id"].astype(str),
        )
    splits = dataset.segments.set_index("segment_id")["split"]
    pool = (tracked["segment_id"].map(splits) == "unlabelled").to_numpy()
    score = tracked["score"].to_numpy(np.float32)[:, None]
    scores = np.where(pool[:, None], score, np.nan).astype(np.float32)
    report(1, 2)
    labels = auto_label(tracked, dataset.frames, config.auto_label)
    report(2, 2)
    meta = {
        "features": config.features.source,
        "descriptors": len(features[0]) if len(features) else 0,
        "gt_features": "matched detections" if imported else "own",
        "dataset": str(dataset.root),
        "dataset_key": dataset_key(dataset),
    }
    return tracked, features, scores, gt, gt_features, labels, meta


def _imported_detections(dataset: Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    """The data set's detections and their features, checked to pair row for row."""
    from rem_core.io.detections import check_features

    root = Path(dataset.root)
    det_file, feat_file = root / DETECTIONS_FILE, root / DETECTION_FEATURES_FILE
    for path in (det_file, feat_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"features.source = 'imported' needs {path}; store detections with their "
                "features by `rem import detections PATH --data DIR --features F.npy`"
            )
    detections = read_table(det_file, DETECTIONS)
    features = check_features(np.load(feat_file, allow_pickle=False), len(detections), feat_file)
    return detections, features


def load_detections(path: str | Path) -> DetectionRun:
    """Read a detection run written by :func:`ensure_detections`."""
    path = Path(path)
    detections = read_table(path / "detections.parquet", DETECTIONS)
    labels = pq.read_table(path / "autolabels.parquet").to_pandas()
    interpolated = labels.get("interpolated")
    labels = conform(labels, DETECTIONS, path / "autolabels.parquet")
    if interpolated is not None:
        labels["interpolated"] = interpolated.to_numpy(bool)
    features = np.load(path / "features.npy")
    scores = np.load(path / "scores.npy")
    if len(features) != len(detections) or len(scores) != len(detections):
        raise ValueError(f"{path}: features or scores do not match the detections' rows")
    return DetectionRun(
        path=path,
        detections=detections,
        features=features,
        scores=scores,
        gt=read_table(path / "gt_boxes.parquet", BOXES),
        gt_features=np.load(path / "gt_features.npy"),
        autolabels=labels,
        meta=json.loads((path / "meta.json").read_text()),
    )


@dataclass(frozen=True)
class RarenessRun:
    """The rareness stage's output: the feature space, the density model and log p of all.

    Attributes:
        path: the cache folder.
        reducer: the fitted PCA + standardisation.
        estimator: the fitted density model.
        log_prob: ``(N,)`` float64 log-density of every detection of the detection run.
        gt_log_prob: ``(K,)`` float64 log-density of every ground-truth box (row order of
            the detection run's ``gt``; pedestrians and cyclists through the vehicle
            detector's features too).
        meta: settings, fit size and time.
    """

    path: Path
    reducer: FeatureReducer
    estimator: DensityEstimator
    log_prob: np.ndarray
    gt_log_prob: np.ndarray
    meta: dict = field(repr=False)


def rareness_key(config: RemConfig, dataset: Dataset) -> str:
    return config_hash(config.rareness, detections_key(config, dataset), "rareness-1")


def ensure_rareness(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    shipped: bool = True,
) -> RarenessRun:
    """PCA features and a density model fitted on the pools, and log p of every object."""
    root = root or cache_root()
    path = root / "rareness" / rareness_key(config, dataset)
    with cache_entry(path, "meta.json") as todo:
        if todo:
            _fit_rareness(config, dataset, root, path, progress, shipped)
    return load_rareness(path)


def _fit_rareness(
    config: RemConfig,
    dataset: Dataset,
    root: Path,
    path: Path,
    progress: Progress | None,
    shipped: bool,
) -> None:
    """Fit the feature reducer and the density and publish them as the cache entry ``path``."""
    run = ensure_detections(config, dataset, root, progress, shipped)
    cfg = config.rareness
    splits = dataset.segments.set_index("segment_id")["split"]
    det = run.detections
    fit_rows = det["segment_id"].map(splits).isin(cfg.fit_splits).to_numpy() & (
        det["score"].to_numpy() >= cfg.min_score
    )
    if fit_rows.sum() < 10:
        raise ValueError(
            f"rareness: only {fit_rows.sum()} detections in {cfg.fit_splits} score >= "
            f"{cfg.min_score}; too few to fit a density (10 at least)"
        )
    report = _stage(progress, f"fitting {cfg.estimator} on {fit_rows.sum():,} detections")
    report(0, 2)
    start = time.perf_counter()
    # Fewer independent features than components (geometric descriptors without points):
    # keep as many components as the features have dimensions of variation.
    sample = run.features[fit_rows][:5000].astype(np.float64)
    k = min(cfg.k, int(np.linalg.matrix_rank(sample - sample.mean(0), tol=1e-6)))
    reducer = FeatureReducer(k=max(k, 1), seed=cfg.density.seed).fit(run.features[fit_rows])
    settings = (
        {"config": cfg.density}
        if cfg.estimator == "ffjord"
        else ({"seed": cfg.density.seed} if cfg.estimator in ("gmm", "realnvp") else {})
    )
    estimator = make_estimator(cfg.estimator, **settings)
    estimator.fit(reducer.transform(run.features[fit_rows]))
    fit_s = time.perf_counter() - start
    report(1, 2)
    log_prob = estimator.score_samples(reducer.transform(run.features))
    # Ground truth without features of its own (imported features: a missed box) gets NaN.
    described = np.isfinite(run.gt_features).all(axis=1)
    gt_log_prob = np.full(len(run.gt_features), np.nan)
    if described.any():
        gt_log_prob[described] = estimator.score_samples(
            reducer.transform(run.gt_features[described])
        )
    report(2, 2)
    meta = {
        "config": config_to_dict(cfg),
        "detections": str(run.path),
        "fit_rows": int(fit_rows.sum()),
        "features": run.meta.get("features", "detector"),
        "gt_features": run.meta.get("gt_features", "own"),
        "gt_described": int(described.sum()),
        "fit_s": fit_s,
        "explained_variance": float(reducer.explained_variance_ratio_.sum()),
    }

    def write(tmp: Path) -> None:
        reducer.save(tmp / "reducer")
        estimator.save(tmp / "density")
        np.save(tmp / "log_prob.npy", log_prob)
        np.save(tmp / "gt_log_prob.npy", gt_log_prob)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))

    publish_folder(path, write)


def load_rareness(path: str | Path) -> RarenessRun:
    """Read a rareness run written by :func:`ensure_rareness`."""
    path = Path(path)
    return RarenessRun(
        path=path,
        reducer=FeatureReducer.load(path / "reducer"),
        estimator=load_estimator(path / "density"),
        log_prob=np.load(path / "log_prob.npy"),
        gt_log_prob=np.load(path / "gt_log_prob.npy"),
        meta=json.loads((path / "meta.json").read_text()),
    )


def ensure_mining_pool(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
) -> MiningPool:
    """The unlabelled pool as mining sees it, running (or reading) the stages before it.

    Detections are the main model's in the unlabelled pool scoring at least
    ``rareness.min_score`` (the detections the density model was fitted on); ground truth is
    the pool's vehicles, kept aside for the simulated labeller; auto-labels are the pool's.
    """
    det_run = ensure_detections(config, dataset, root, progress)
    run = ensure_rareness(config, dataset, root, progress)
    pool_ids = set(dataset.split_ids("unlabelled"))
    det = det_run.detections
    rows = np.flatnonzero(
        det["segment_id"].isin(pool_ids).to_numpy()
        & (det["score"].to_numpy() >= config.rareness.min_score)
    )
    gt = det_run.gt
    gt_rows = np.flatnonzero(
        gt["segment_id"].isin(pool_ids).to_numpy() & (gt["class"] == "vehicle").to_numpy()
    )
    labels = det_run.autolabels
    return MiningPool(
        detections=det.iloc[rows].reset_index(drop=True),
        log_prob=run.log_prob[rows],
        variance=det_run.variance[rows].astype(np.float64),
        gt=gt.iloc[gt_rows].reset_index(drop=True),
        gt_log_prob=run.gt_log_prob[gt_rows],
        autolabels=labels[labels["segment_id"].isin(pool_ids)].reset_index(drop=True),
    )


#: Stages of :func:`run_pipeline`, in order, as :func:`pipeline_status` names them.
STAGES = ("detectors", "detections", "rareness")


def pipeline_status(config: RemConfig, dataset: Dataset, root: Path | None = None) -> dict:
    """Which stages are cached for ``config`` on ``dataset``, without computing anything.

    Returns:
        ``{"detectors": bool, "detections": bool, "rareness": bool}`` (rareness: for
        ``config.rareness.estimator``), and ``"detections_path"`` / ``"rareness_path"``:
        the cache folders (present or not).
    """
    root = root or cache_root()
    det_folder = root / "detector" / detector_key(config, dataset)
    detections = root / "detections" / detections_key(config, dataset)
    rareness = root / "rareness" / rareness_key(config, dataset)
    members = range(config.detector.ensemble_size)
    return {
        "detectors": config.features.source != "detector"
        or all((det_folder / f"member-{m}" / "model.json").is_file() for m in members),
        "detections": (detections / "meta.json").is_file(),
        "rareness": (rareness / "meta.json").is_file(),
        "detections_path": detections,
        "rareness_path": rareness,
    }


def run_pipeline(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    shipped: bool = True,
) -> RarenessRun:
    """Every stage up to the rareness of every object (cached stages are read, not redone;
    ``shipped``: see :func:`ensure_detectors`)."""
    return ensure_rareness(config, dataset, root, progress, shipped)
