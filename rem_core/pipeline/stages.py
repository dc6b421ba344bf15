"""The order of REM's stages; the only module that knows it.

world -> detection stage (its feature source: our detector ensemble trained on the source
pool, geometric descriptors or imported features; ``rem_core.pipeline.sources``) -> detections,
features, ensemble scores, tracks and auto-labels of every segment -> PCA features and a
density model fitted on the pools -> log p of every detection and ground-truth object ->
the unlabelled pool as mining sees it (``ensure_mining_pool``; mining itself is fast and
not cached).

Each stage is a cache entry ``<cache>/<stage>/<key>/`` (``rem_core.cache.CacheEntry``):
the key hashes the stage's settings and its inputs' keys, so a second run is instant and a
changed setting never reuses a stale result; an entry is computed by one process at a time
and published whole.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from rem_core.cache import CacheEntry, CacheStage, cache_root, entries
from rem_core.config import RarenessConfig, RemConfig, config_from_dict, config_to_dict
from rem_core.dataset import Dataset
from rem_core.density import fit_density, score_on_cluster
from rem_core.errors import InputError
from rem_core.mining import MiningPool
from rem_core.pipeline.detection import (
    DETECTION_STAGE,
    ensure_detections,
    ensure_main_detections,
)
from rem_core.pipeline.keys import experiment_key, rareness_key
from rem_core.pipeline.outputs import DetectionRun, Progress, StageCall
from rem_core.pipeline.rareness import RarenessRun, load_rareness, write_rareness
from rem_core.pipeline.sources import feature_source
from rem_core.pipeline.sources.detector import detector_entry

_R = TypeVar("_R")

__all__ = [
    "FIRST_DENSITY",
    "PIPELINE_STAGES",
    "RARENESS_STAGE",
    "PipelineStage",
    "clear_pipeline",
    "ensure_mining_pool",
    "ensure_rareness",
    "fit_rareness",
    "fitting_stage",
    "mining_pool",
    "pipeline_status",
    "run_pipeline",
    "scoring_stage",
    "with_estimator",
]


@dataclass(frozen=True)
class PipelineStage(Generic[_R]):
    """A cached stage of the pipeline: how its key is made, how it is computed, written
    and read. Calling :meth:`ensure` gives its output, computed first if not cached.

    Attributes:
        stage: its folder in the cache (``rem_core.cache.CACHE_STAGES``).
        key: ``key(config, dataset)``: its settings' and its inputs' hash.
        compute: ``compute(config, dataset, call)``: its output (path ``None``), computing
            the stages it reads through their own ``ensure``.
        write: ``write(output, tmp)``: the output into the entry's temporary folder.
        read: ``read(path)``: the published output.
    """

    stage: CacheStage
    key: Callable[[RemConfig, Dataset], str]
    compute: Callable[[RemConfig, Dataset, StageCall], _R]
    write: Callable[[_R, Path], None]
    read: Callable[[Path], _R]

    def entry(self, config: RemConfig, dataset: Dataset, root: Path | None = None) -> CacheEntry:
        """The stage's cache entry for ``config`` on ``dataset``."""
        return CacheEntry.of(self.stage, self.key(config, dataset), root)

    def ensure(
        self,
        config: RemConfig,
        dataset: Dataset,
        root: Path | None = None,
        progress: Progress | None = None,
        shipped: bool = True,
        client: Any = None,
    ) -> _R:
        """The stage's output for ``config`` on ``dataset``, computed (under the entry's
        lock, published whole) if not cached under ``root``; ``progress(stage, done,
        total)`` hears of long stages; ``shipped``: see ``sources.detector.ensure_detectors``;
        ``client``: a Dask client to run segment-by-segment work on (``rem_core.cluster``).
        """
        entry = self.entry(config, dataset, root)
        call = StageCall(entry.root, progress, shipped, client)
        return entry.get(lambda: self.compute(config, dataset, call), self.write, self.read)


def _fit(config: RemConfig, dataset: Dataset, call: StageCall) -> RarenessRun:
    # The density reads the main model's features only: it need not wait for the members.
    run = ensure_main_detections(
        config, dataset, call.root, call.progress, call.shipped, call.client
    )
    return fit_rareness(config, dataset, run, call)


def fitting_stage(estimator: str) -> str:
    """The start of the rareness stage's progress name while it fits ``estimator``."""
    return f"fitting {estimator}"


def scoring_stage(estimator: str) -> str:
    """The start of its progress name while ``estimator`` scores every object."""
    return f"scoring with {estimator}"


def fit_rareness(
    config: RemConfig, dataset: Dataset, run: DetectionRun, call: StageCall
) -> RarenessRun:
    """Fit the feature reducer and the density on ``run``'s detections in the fit splits
    scoring at least ``rareness.min_score``, and score every detection and ground-truth box
    (``path`` ``None``: the caller publishes it)."""
    cfg = config.rareness
    det = run.detections
    fit_rows = det["segment_id"].isin(dataset.split_ids(*cfg.fit_splits)).to_numpy() & (
        det["score"].to_numpy() >= cfg.min_score
    )
    if fit_rows.sum() < 10:
        raise InputError(
            f"rareness: only {fit_rows.sum()} detections in {cfg.fit_splits} score >= "
            f"{cfg.min_score}; too few to fit a density (10 at least)"
        )
    # Epochs for a flow (its max: early stopping may end it sooner), one unit otherwise.
    fitting = call.reporter(f"{fitting_stage(cfg.estimator)} on {fit_rows.sum():,} detections")
    last = [0, 1]

    def fit_progress(done: int, total: int) -> None:
        last[:] = done, total
        fitting(done, total)

    fit_progress(0, 1)
    start = time.perf_counter()
    reducer, estimator = fit_density(run.features[fit_rows], cfg, progress=fit_progress)
    fit_s = time.perf_counter() - start
    fitting(last[1], last[1])
    scoring = call.reporter(f"{scoring_stage(cfg.estimator)} every detection and box")
    scoring(0, 1)
    # Scoring is most of a flow's time: on a cluster, whole batches at a time (same numbers).
    log_prob = score_on_cluster(estimator, reducer.transform(run.features), call.client)
    # Ground truth without features of its own (imported features: a missed box) gets NaN.
    described = np.isfinite(run.gt_features).all(axis=1)
    gt_log_prob = np.full(len(run.gt_features), np.nan)
    if described.any():
        gt_log_prob[described] = score_on_cluster(
            estimator, reducer.transform(run.gt_features[described]), call.client
        )
    scoring(1, 1)
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
    return RarenessRun(None, reducer, estimator, log_prob, gt_log_prob, meta)


#: PCA features and a density model fitted on the pools, and log p of every detection and
#: ground-truth box.
RARENESS_STAGE = PipelineStage("rareness", rareness_key, _fit, write_rareness, load_rareness)
ensure_rareness = RARENESS_STAGE.ensure


def ensure_mining_pool(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    client: Any = None,
) -> MiningPool:
    """The unlabelled pool as mining sees it (:func:`mining_pool`), running (or reading) the
    stages before it."""
    det_run = ensure_detections(config, dataset, root, progress, client=client)
    run = ensure_rareness(config, dataset, root, progress, client=client)
    return mining_pool(config, dataset, det_run, run)


def mining_pool(
    config: RemConfig, dataset: Dataset, det_run: DetectionRun, run: RarenessRun
) -> MiningPool:
    """The unlabelled pool as mining sees it, from a detection run and its rareness.

    Detections are the main model's in the unlabelled pool scoring at least
    ``rareness.min_score`` (the detections the density model was fitted on); ground truth is
    the pool's vehicles, kept aside for the simulated labeller; auto-labels are the pool's.
    Their ensemble variance is NaN while ``det_run``'s members are not scored.
    """
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


#: The density the pipeline fits first, on the main model's features alone, so that every
#: analysis has a ranking within seconds of the detections (docs/density.md: 1 s on the
#: demo world, large vehicles ranked about as well as by FFJORD); the configured density
#: follows once the ensemble members have run. Its results are its own rareness entry.
FIRST_DENSITY = "gaussian"


def with_estimator(config: RemConfig, estimator: str) -> RemConfig:
    """``config`` with the density model ``estimator`` (its other rareness settings kept)."""
    return replace(config, rareness=replace(config.rareness, estimator=estimator))


#: Stages of :func:`run_pipeline`, in order, as :func:`pipeline_status` names them.
PIPELINE_STAGES = ("detectors", "detections", "rareness")


def pipeline_status(
    config: RemConfig, dataset: Dataset, root: Path | None = None, first: str = FIRST_DENSITY
) -> dict:
    """Which stages are cached for ``config`` on ``dataset``, without computing anything.

    Returns:
        ``{"detectors": bool, "detections": bool, "rareness": bool}`` (detectors: whatever
        the feature source needs before detecting; detections: both parts, the members'
        scores in; rareness: for ``config.rareness.estimator``), ``"detections_main"``
        (the main model's part is published), ``"first_rareness"`` (the rareness of the
        density ``first`` is), and ``"detections_path"`` / ``"rareness_path"`` /
        ``"first_rareness_path"``: the cache folders (present or not).
    """
    root = Path(root or cache_root())
    detections = DETECTION_STAGE.entry(config, dataset, root)
    rareness = RARENESS_STAGE.entry(config, dataset, root)
    first_rareness = RARENESS_STAGE.entry(with_estimator(config, first), dataset, root)
    return {
        "detectors": feature_source(config.features.source).ready(config, dataset, root),
        "detections": detections.done,
        "detections_main": DETECTION_STAGE.main_done(config, dataset, root),
        "rareness": rareness.done,
        "first_rareness": first_rareness.done,
        "detections_path": detections.path,
        "rareness_path": rareness.path,
        "first_rareness_path": first_rareness.path,
    }


def clear_pipeline(config: RemConfig, dataset: Dataset, root: Path | None = None) -> list[Path]:
    """Remove the cached ensemble of ``config`` on ``dataset`` and every stage computed from
    it: its detections, the rareness of every density model on them, and every experiment
    whose runs read them; the removed folders. The next run recomputes them (``rem detect
    train --retrain``, Home's *Retrain the detectors*). A stage's key hashes settings, not
    weights: left in place, what the old ensemble gave would pass for the new one's.

    What an entry was computed from is in its ``meta.json``: a rareness entry names its
    detections' folder, an experiment entry (written by
    ``rem_core.experiment.run_experiment``) its detections' and its rareness's folders.

    An experiment folder made before it kept that record is matched by its key instead,
    which hashes the rareness key but cannot be read back: it is removed when it is the
    ``experiment_key`` of ``config`` with the rareness settings of a removed rareness entry
    (read back from its ``meta.json``) or its own, at the step count its runs record
    (``train_steps``). That is ``config``'s experiment on these detections with any density
    model; an old folder of other experiment, mining or scoring settings cannot be told
    apart and stays.
    """
    root = Path(root or cache_root())
    detections = DETECTION_STAGE.entry(config, dataset, root)
    removed = [detector_entry(config, dataset, root), detections]
    rareness = [
        entry
        for entry in entries("rareness", root)
        if _meta(entry.path).get("detections") == str(detections.path)
    ]
    removed += rareness
    read = {str(detections.path), *(str(entry.path) for entry in rareness)}
    configs = _with_removed_settings(config, rareness)
    old_keys = functools.cache(lambda steps: {experiment_key(c, dataset, steps) for c in configs})
    for entry in entries("experiment", root):
        meta = _meta(entry.path)
        if meta.get("detections") in read or meta.get("rareness") in read:
            removed.append(entry)
        elif not meta and (steps := _run_steps(entry.path)) and entry.key in old_keys(steps):
            removed.append(entry)
    return [entry.path for entry in removed if entry.remove()]


def _meta(folder: Path) -> dict:
    """The entry's ``meta.json``; empty if it has none or it is unreadable."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _run_steps(folder: Path) -> int | None:
    """The training steps an experiment folder's first run records, if it has one."""
    for path in sorted((folder / "runs").glob("*-seed*.json")):
        try:
            return int(json.loads(path.read_text())["train_steps"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _with_removed_settings(config: RemConfig, rareness: list[CacheEntry]) -> list[RemConfig]:
    """``config``, then ``config`` with each removed rareness entry's settings (read back
    from its ``meta.json``; an entry without valid ones is left out)."""
    configs = [config]
    for entry in rareness:
        try:
            settings = config_from_dict(RarenessConfig, _meta(entry.path)["config"])
        except (KeyError, ValueError):
            continue
        configs.append(replace(config, rareness=settings))
    return configs


def run_pipeline(
    config: RemConfig,
    dataset: Dataset,
    root: Path | None = None,
    progress: Progress | None = None,
    shipped: bool = True,
    client: Any = None,
    first: str | None = FIRST_DENSITY,
) -> RarenessRun:
    """Every stage up to the rareness of every object, in the order that gives a whole
    analysis first and refines it: the main model's detections, the density ``first``
    fitted on them (:data:`FIRST_DENSITY`; ``None``, or the configured density itself:
    skipped), the ensemble members' scores, then ``config.rareness.estimator``'s density.
    Cached stages are read, not redone; ``shipped``: see
    :func:`~rem_core.pipeline.ensure_detectors`; ``client``: a Dask client, see
    :class:`~rem_core.pipeline.StageCall`."""
    if first is not None and first != config.rareness.estimator:
        ensure_rareness(with_estimator(config, first), dataset, root, progress, shipped, client)
    ensure_detections(config, dataset, root, progress, shipped, client)
    return ensure_rareness(config, dataset, root, progress, shipped, client)
