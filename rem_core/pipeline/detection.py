"""The detection stage: one cache entry published in two parts, so that what needs only the
main model (the rareness stage, and every analysis but the ensemble's) can run before the
ensemble members have (``outputs`` holds the parts' writers and reader)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rem_core.cache import CacheEntry, CacheStage, compute_once
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline.keys import detections_key
from rem_core.pipeline.outputs import (
    MAIN_PART,
    MEMBERS_PART,
    DetectionRun,
    Progress,
    StageCall,
    load_detections,
    write_detections,
    write_member_scores,
)
from rem_core.pipeline.sources import feature_source

__all__ = [
    "DETECTION_STAGE",
    "DetectionStage",
    "ensure_detections",
    "ensure_main_detections",
]


@dataclass(frozen=True)
class DetectionStage:
    """The detection stage: one cache entry published in two parts (``outputs``), so that
    what needs only the main model (rareness, and every analysis but the ensemble's) can
    run before the ensemble members have.

    :meth:`ensure_main` gives the run once its ``main/`` part is published (the members'
    scores in it if they are too); :meth:`ensure` gives the whole run, computing either part
    not yet published. Each part is computed by one process at a time (its own lock) and
    published whole; the entry is done when both are.
    """

    stage: CacheStage = "detections"

    def entry(self, config: RemConfig, dataset: Dataset, root: Path | None = None) -> CacheEntry:
        """The stage's cache entry for ``config`` on ``dataset``: done when both parts are."""
        marks = (f"{MAIN_PART}/meta.json", f"{MEMBERS_PART}/meta.json")
        return CacheEntry.of(self.stage, detections_key(config, dataset), root, marks=marks)

    def main_done(self, config: RemConfig, dataset: Dataset, root: Path | None = None) -> bool:
        """Whether the entry's ``main/`` part is published."""
        return (self.entry(config, dataset, root).path / MAIN_PART / "meta.json").is_file()

    def ensure_main(
        self,
        config: RemConfig,
        dataset: Dataset,
        root: Path | None = None,
        progress: Progress | None = None,
        shipped: bool = True,
        client: Any = None,
    ) -> DetectionRun:
        """The run of ``config`` on ``dataset`` with at least its main part, computed and
        published first if it is not (the arguments: ``stages.PipelineStage.ensure``'s)."""
        entry = self.entry(config, dataset, root)
        with compute_once(entry.path / MAIN_PART, "meta.json") as todo:
            if todo:
                call = StageCall(entry.root, progress, shipped, client)
                run = feature_source(config.features.source).detect(config, dataset, call)
                entry.publish(partial(write_detections, run), MAIN_PART)
        return load_detections(entry.path)

    def ensure(
        self,
        config: RemConfig,
        dataset: Dataset,
        root: Path | None = None,
        progress: Progress | None = None,
        shipped: bool = True,
        client: Any = None,
    ) -> DetectionRun:
        """The whole run of ``config`` on ``dataset``, its members' scores in: each part
        computed and published first if it is not."""
        run = self.ensure_main(config, dataset, root, progress, shipped, client)
        if run.members_scored:
            return run
        entry = self.entry(config, dataset, root)
        with compute_once(entry.path / MEMBERS_PART, "meta.json") as todo:
            if todo:
                call = StageCall(entry.root, progress, shipped, client)
                source = feature_source(config.features.source)
                scores, meta = source.score_members(config, dataset, run, call)
                entry.publish(partial(write_member_scores, scores, meta), MEMBERS_PART)
        return load_detections(entry.path)


#: Detections, features, ensemble scores, tracks and auto-labels of every segment, computed
#: by the config's feature source (``rem_core.pipeline.sources``).
DETECTION_STAGE = DetectionStage()
ensure_detections = DETECTION_STAGE.ensure
ensure_main_detections = DETECTION_STAGE.ensure_main
