"""The paper's feature source: our detector ensemble, trained on the source pool (its own
cache stage, ``detector``), run on every segment with ROI-pooled BEV features."""

from __future__ import annotations

import json
import logging
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np

from rem_core.cache import CacheEntry
from rem_core.config import RemConfig, config_to_dict
from rem_core.dataset import Dataset
from rem_core.detect import (
    BevDetector,
    detect,
    detect_ensemble,
    ensemble_scores,
    load_detector,
    save_detector,
    train_detectors,
)
from rem_core.pipeline.keys import dataset_key, detector_key
from rem_core.pipeline.outputs import MEMBERS_STAGE, DetectionRun, Progress, StageCall
from rem_core.pipeline.shipped import find_shipped
from rem_core.pipeline.sources.base import FeatureSource
from rem_core.provenance import kernels, machine
from rem_core.track import auto_label, track_detections

__all__ = [
    "DetectorFeatures",
    "detector_entry",
    "detector_origin",
    "ensure_detectors",
]

log = logging.getLogger(__name__)


def detector_entry(config: RemConfig, dataset: Dataset, root: Path | None = None) -> CacheEntry:
    """The ensemble's cache entry: one folder ``member-<m>`` per member, each published
    whole; done when every member is."""
    members = tuple(f"member-{m}/model.json" for m in range(config.detector.ensemble_size))
    return CacheEntry.of("detector", detector_key(config, dataset), root, marks=members)


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
    its own folder of the entry. With ``shipped`` (the default), an ensemble that ships
    with the package for this very recipe and world (``rem_core.pipeline.shipped``: same cache key,
    same world fingerprint) is copied into the cache instead of trained.
    """
    entry = detector_entry(config, dataset, root)
    with entry.computing() as todo:
        if todo:
            call = StageCall(entry.root, progress, shipped)
            _train_detectors(config, dataset, entry, call)
    size = config.detector.ensemble_size
    return [load_detector(entry.path / f"member-{m}") for m in range(size)]


def _train_detectors(
    config: RemConfig, dataset: Dataset, entry: CacheEntry, call: StageCall
) -> None:
    """Publish the members of ``entry`` not yet there: shipped or trained."""
    size = config.detector.ensemble_size
    missing = [m for m, mark in enumerate(entry.marks) if not (entry.path / mark).is_file()]
    found = find_shipped(entry.key, dataset, size) if missing and call.shipped else None
    if found is not None:
        source, provenance = found
        report = call.reporter("detectors shipped with the app")
        report(0, len(missing))
        for i, member in enumerate(missing):
            meta = {"member": member, "origin": "shipped", "commit": provenance["commit"]}
            entry.publish(partial(_copy_member, source, member, meta), f"member-{member}")
            report(i + 1, len(missing))
        log.info("detectors: copied %d shipped member(s) from %s", len(missing), source)
        return
    # Together, on the same batches: building a batch is most of a step on a CPU, and the
    # members share their data order (docs/detector.md).
    stage = (
        f"training the ensemble's {size} detectors"
        if len(missing) == size
        else f"training {len(missing)} of the ensemble's {size} detectors"
    )
    start = time.perf_counter()
    trained = train_detectors(config.detector, dataset, missing, progress=call.reporter(stage))
    # What the bytes depend on besides the code and the data: the machine and its kernels.
    made = {
        "trained_s": round(time.perf_counter() - start, 1),
        "trained_together": len(missing),
        "machine": machine(),
        "kernels": kernels(),
    }
    for member, model in zip(missing, trained, strict=True):
        meta = {"member": member, "dataset": str(dataset.root), **made}
        entry.publish(partial(save_detector, model, meta=meta), f"member-{member}")


def _copy_member(source: Path, member: int, meta: dict, tmp: Path) -> None:
    shutil.copyfile(source / f"member-{member}" / "model.pt", tmp / "model.pt")
    info = json.loads((source / f"member-{member}" / "model.json").read_text())
    info.update(meta)
    (tmp / "model.json").write_text(json.dumps(info, indent=2))


def detector_origin(config: RemConfig, dataset: Dataset, root: Path | None = None) -> dict:
    """Where the cached ensemble's main model came from: ``{"origin": "shipped", "commit":
    ...}`` or ``{"origin": "trained"}``, with the ``machine`` and ``kernels`` that trained it
    where recorded; ``{}`` when it is not cached."""
    path = detector_entry(config, dataset, root).path / "member-0"
    try:
        info = json.loads((path / "model.json").read_text())
    except FileNotFoundError:
        return {}
    return {
        "origin": info.get("origin", "trained"),
        "commit": info.get("commit"),
        "machine": info.get("machine"),
        "kernels": info.get("kernels"),
    }


class DetectorFeatures(FeatureSource):
    """ROI-pooled BEV features of our detector ensemble's main model (the paper's), the
    ensemble's scores on the unlabelled pool, tracks and auto-labels."""

    name = "detector"
    label = "our detector's ROI features"
    trains_detector = True
    ensemble = True

    def needs(self, config: RemConfig) -> str:
        return (
            f"the detector ensemble ({config.detector.ensemble_size} detectors trained on "
            "the source pool), its detections and features on every segment"
        )

    def ready(self, config: RemConfig, dataset: Dataset, root: Path) -> bool:
        return detector_entry(config, dataset, root).done

    def detect(self, config: RemConfig, dataset: Dataset, call: StageCall) -> DetectionRun:
        models = ensure_detectors(config, dataset, call.root, call.progress, call.shipped)
        all_ids = dataset.segments["segment_id"].tolist()
        main = detect(
            models[0],
            dataset,
            all_ids,
            gt_classes=("vehicle", "pedestrian", "cyclist"),
            progress=call.reporter("detecting"),
            client=call.client,
        )
        detections = main.detections
        # The main model's own score in the pool; the members' columns wait for score_members.
        scores = np.full((len(detections), len(models)), np.nan, np.float32)
        pool = detections["segment_id"].isin(dataset.split_ids("unlabelled")).to_numpy()
        scores[pool, 0] = detections["score"].to_numpy(np.float32)[pool]
        report = call.reporter("tracking and auto-labelling")
        report(0, 2)
        tracked = track_detections(detections, dataset.frames, config.tracker, call.client)
        report(1, 2)
        labels = auto_label(tracked, dataset.frames, config.auto_label, call.client)
        report(2, 2)
        meta = {
            "features": self.name,
            "config": config_to_dict(config),
            "dataset": str(dataset.root),
            "dataset_key": dataset_key(dataset),
            "detect_frames_per_s": main.frames_per_s,
            "members": len(models),
        }
        return DetectionRun(
            None, tracked, main.features, scores, main.gt, main.gt_features, labels, meta
        )

    def score_members(
        self, config: RemConfig, dataset: Dataset, run: DetectionRun, call: StageCall
    ) -> tuple[np.ndarray, dict]:
        """Members 2-M on the unlabelled pool, each detection of the main model matched to
        theirs (``ensemble_scores``: a miss scores 0)."""
        models = ensure_detectors(config, dataset, call.root, call.progress, call.shipped)
        unlabelled = dataset.split_ids("unlabelled")
        start = time.perf_counter()
        others = [
            member.detections
            for member in detect_ensemble(
                models[1:],
                dataset,
                unlabelled,
                progress=call.reporter(f"{MEMBERS_STAGE} 2-{len(models)} on the unlabelled pool"),
                client=call.client,
                count_points=False,  # matched by their boxes; only their scores are kept
            )
        ]
        detections = run.detections
        pool = detections["segment_id"].isin(unlabelled).to_numpy()
        scores = np.full((len(detections), len(models)), np.nan, np.float32)
        scores[pool] = ensemble_scores(detections[pool], others, config.detector.match_iou)
        meta = {"members": len(models), "seconds": round(time.perf_counter() - start, 1)}
        return scores, meta
