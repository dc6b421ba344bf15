"""What the pipeline's stages hand each other: how a stage is asked to run (:class:`StageCall`)
and what the detection stage gives (:class:`DetectionRun`), with the one way it is written to
and read from its cache entry. (The rareness stage's output is in ``rareness.py``: the
detection stage's code never reads the density models.)

The detection stage's entry is published in two parts, so that the analyses that need only
the main model can start before the ensemble members have run:

* ``main/``: the main model's detections, features, tracks, auto-labels and ground-truth
  features (:func:`write_detections`), its scores with the members' columns NaN;
* ``members/``: every member's score of each detection (:func:`write_member_scores`).

:func:`load_detections` reads what is published: a run with its members' scores once
``members/`` is there (``DetectionRun.members_scored``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rem_core.errors import InputError
from rem_core.schema import BOXES, DETECTIONS, conform, read_table

__all__ = [
    "MEMBERS_STAGE",
    "DetectionRun",
    "Progress",
    "StageCall",
    "load_detections",
    "write_detections",
    "write_member_scores",
]

#: The detection entry's two parts, each published whole (see the module's docstring).
MAIN_PART = "main"
MEMBERS_PART = "members"

#: The start of the progress name of the stage that scores the ensemble members.
MEMBERS_STAGE = "ensemble members"

#: ``progress(stage, done, total)``: what a long stage reports as it goes.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class StageCall:
    """How a stage is asked to run: where the cache is, whom it tells, what it may reuse.

    Attributes:
        root: the cache root.
        progress: called with ``(stage, done, total)`` while a long stage runs.
        shipped: whether a detector ensemble shipped with the package for this very recipe
            and world may be copied instead of trained (``rem_core.pipeline.shipped``).
        client: a ``distributed.Client``: stages that work segment by segment run their
            segments on its cluster (``rem_core.cluster``); ``None``: in this process.
    """

    root: Path
    progress: Progress | None = None
    shipped: bool = True
    client: Any = None

    def reporter(self, stage: str) -> Callable[[int, int], None]:
        """``report(done, total)`` for the stage named ``stage`` (silent without progress)."""
        report = self.progress
        if report is None:
            return lambda done, total: None
        return lambda done, total: report(stage, done, total)


@dataclass(frozen=True)
class DetectionRun:
    """The detection stage's output over a data set.

    Attributes:
        path: the cache folder (``None`` until published).
        detections: the detections (``DETECTIONS``), ``track_id`` filled in.
        features: ``(N, C)`` float32 features, row ``i`` for detection ``i``.
        scores: ``(N, M)`` float32 score of each ensemble member for each detection
            (column 0: the main model; a miss scores 0); NaN outside the unlabelled pool,
            and in the members' columns until they are scored (``members_scored``).
        gt: ground-truth boxes (``BOXES``) of every segment, in the row order of
            ``gt_features``.
        gt_features: ``(K, C)`` float32 features of the ground-truth boxes (NaN rows for a
            box its source could not describe).
        autolabels: the offboard auto-labeler's boxes (``DETECTIONS`` columns plus
            ``interpolated``).
        meta: settings and timings of the run; ``"features"`` names its feature source.
    """

    path: Path | None
    detections: pd.DataFrame
    features: np.ndarray
    scores: np.ndarray
    gt: pd.DataFrame
    gt_features: np.ndarray
    autolabels: pd.DataFrame
    meta: dict = field(repr=False)

    @property
    def variance(self) -> np.ndarray:
        """``(N,)`` ensemble score variance (paper eq. 9), NaN outside the unlabelled pool
        and everywhere until the members are scored."""
        return np.var(self.scores, axis=1)

    @property
    def members_scored(self) -> bool:
        """Whether the ensemble members' scores are in (the entry's ``members/`` part is
        published); until then only the main model's detections are."""
        return bool(self.meta.get("members_scored", False))

    def with_member_scores(self, scores: np.ndarray, meta: dict) -> DetectionRun:
        """This run with every member's scores (``(N, M)``) and what scoring them recorded
        (under ``meta["members_run"]``)."""
        if scores.shape[0] != len(self.detections):
            raise InputError(
                f"member scores: {scores.shape[0]} rows for {len(self.detections)} detections"
            )
        meta = {**self.meta, "members_scored": True, "members_run": meta}
        return dataclasses.replace(self, scores=scores, meta=meta)

    @property
    def source_name(self) -> str:
        """The name of the feature source that computed the run (``FEATURE_SOURCES``); ask
        ``rem_core.pipeline.feature_source(run.source_name)`` what the run can show."""
        return self.meta.get("features", "detector")


def _write_table(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, compression="zstd")


def write_detections(run: DetectionRun, tmp: Path) -> None:
    """Write ``run`` (all but its members' scores) into the folder ``tmp``: the temporary
    folder of the entry's ``main/`` part."""
    _write_table(conform(run.detections, DETECTIONS, "detections"), tmp / "detections.parquet")
    np.save(tmp / "features.npy", run.features)
    np.save(tmp / "scores.npy", run.scores)
    _write_table(conform(run.gt, BOXES, "ground truth"), tmp / "gt_boxes.parquet")
    np.save(tmp / "gt_features.npy", run.gt_features)
    _write_table(run.autolabels, tmp / "autolabels.parquet")
    (tmp / "meta.json").write_text(json.dumps(run.meta, indent=2, default=str))


def write_member_scores(scores: np.ndarray, meta: dict, tmp: Path) -> None:
    """Write every member's scores ``(N, M)`` and what scoring them recorded into the folder
    ``tmp``: the temporary folder of the entry's ``members/`` part."""
    np.save(tmp / "scores.npy", scores)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


def load_detections(path: str | Path) -> DetectionRun:
    """Read the detection entry ``path``: its ``main/`` part, with the members' scores of its
    ``members/`` part once that is published.

    Raises:
        InputError: naming the folder, when its ``main/`` part is not published or its
            arrays do not match the detections' rows.
    """
    entry = Path(path)
    path = entry / MAIN_PART
    if not (path / "meta.json").is_file():
        raise InputError(f"{entry}: no detections published ({MAIN_PART}/meta.json missing)")
    detections = read_table(path / "detections.parquet", DETECTIONS)
    labels = pq.read_table(path / "autolabels.parquet").to_pandas()
    interpolated = labels.get("interpolated")
    labels = conform(labels, DETECTIONS, path / "autolabels.parquet")
    if interpolated is not None:
        labels["interpolated"] = interpolated.to_numpy(bool)
    features = np.load(path / "features.npy")
    scores = np.load(path / "scores.npy")
    if len(features) != len(detections) or len(scores) != len(detections):
        raise InputError(f"{path}: features or scores do not match the detections' rows")
    run = DetectionRun(
        path=entry,
        detections=detections,
        features=features,
        scores=scores,
        gt=read_table(path / "gt_boxes.parquet", BOXES),
        gt_features=np.load(path / "gt_features.npy"),
        autolabels=labels,
        meta=json.loads((path / "meta.json").read_text()),
    )
    members = entry / MEMBERS_PART
    if not (members / "meta.json").is_file():
        return run
    return run.with_member_scores(
        np.load(members / "scores.npy"), json.loads((members / "meta.json").read_text())
    )
