"""Running a detector: decoding, suppression, ROI max-pooling, the ensemble's scores."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from rem_core.cluster import map_in_order
from rem_core.dataset import Dataset
from rem_core.detect.decode import decode_boxes
from rem_core.detect.model import BevDetector, _torch_setup, bev_grid
from rem_core.detect.roi import pool_roi_features
from rem_core.errors import InputError
from rem_core.evaluation import match_frames
from rem_core.geometry import PointGrid
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform

__all__ = [
    "DetectionSet",
    "detect",
    "detect_ensemble",
    "ensemble_scores",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionSet:
    """A detector's output over a set of frames.

    Attributes:
        detections: the ``DETECTIONS`` table (``track_id`` empty).
        features: ``(N, C)`` float32 ROI-pooled features, row ``i`` for detection ``i``.
        gt: ground-truth vehicle boxes of the same frames (``BOXES`` columns) in row order of
            ``gt_features``; empty unless asked for.
        gt_features: ``(M, C)`` float32 ROI-pooled features of the ground-truth boxes.
        seconds: wall time of the run.
    """

    detections: pd.DataFrame
    features: np.ndarray
    gt: pd.DataFrame
    gt_features: np.ndarray
    seconds: float
    n_frames: int

    @property
    def frames_per_s(self) -> float:
        """Frames processed per second of wall time."""
        return self.n_frames / self.seconds if self.seconds else float("nan")


def detect(
    model: BevDetector,
    dataset: Dataset,
    segments: Sequence[str] | None = None,
    with_features: bool = True,
    gt_classes: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    client: Any | None = None,
) -> DetectionSet:
    """Run a detector over every frame of some segments.

    Args:
        model: a trained detector.
        dataset: the data set to read.
        segments: segment ids (default: all).
        with_features: ROI-pool the feature map for every detection.
        gt_classes: also ROI-pool ground-truth boxes of these classes (e.g. ``("vehicle",
            "pedestrian")``), so labelled objects get features too.
        progress: called with ``(frames done, frames in all)``.
        client: a ``distributed.Client``: segments run as tasks on its cluster, the model
            sent once to each worker (``rem_core.cluster``).
    """
    asked = _Asked(with_features, tuple(gt_classes))
    return _run([model], dataset, segments, asked, progress, client)[0]


def detect_ensemble(
    models: Sequence[BevDetector],
    dataset: Dataset,
    segments: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any | None = None,
    count_points: bool = True,
) -> list[DetectionSet]:
    """Run several detectors over the same frames, without features.

    The same as ``[detect(m, dataset, segments, with_features=False) for m in models]``, but
    each frame's points are read, gridded and indexed once for all models: an ensemble's
    inference is mostly that work, not the networks. ``client``: as for :func:`detect`.
    ``count_points=False`` leaves ``num_points`` at -1 (not counted), for tables read only
    for their boxes and scores (``ensemble_scores``): counting is a seventh of the work.
    """
    return _run(models, dataset, segments, _Asked(False, (), count_points), progress, client)


def _run(
    models: Sequence[BevDetector],
    dataset: Dataset,
    segments: Sequence[str] | None,
    asked: _Asked,
    progress: Callable[[int, int], None] | None,
    client: Any | None = None,
) -> list[DetectionSet]:
    if not models:
        return []
    config = models[0].config
    for m in models[1:]:
        if (m.config.range_m, m.config.cell_m) != (config.range_m, config.cell_m):
            raise InputError("detect_ensemble: the models must share the BEV grid settings")
    if segments is None:
        segments = dataset.segments["segment_id"].tolist()
    frames = dataset.frames[dataset.frames["segment_id"].isin(segments)]
    total, done = len(frames), 0
    parts: list[list[_Part]] = [[] for _ in models]
    start = time.perf_counter()
    if client is None:
        device = _torch_setup(config)
        models = [m.eval().to(device) for m in models]

        def frame_done() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        outputs: Iterable[list[_Part]] = (
            _run_segment(models, dataset, s, asked, device, frame_done) for s in segments
        )
    else:
        # One task a segment; the weights go to every worker once, the data set by its path.

        outputs = map_in_order(
            client,
            _segment_task,
            segments,
            str(dataset.root),
            asked,
            shared={"models": [m.cpu().eval() for m in models]},
        )
    for segment_id, output in zip(segments, outputs, strict=True):
        for k, part in enumerate(output):
            parts[k].append(part)
        if client is not None:
            done += int((frames["segment_id"] == segment_id).sum())
            if progress is not None:
                progress(done, total)
    seconds = time.perf_counter() - start
    return [
        _detection_set(model, parts[k], dataset.boxes, seconds, total)
        for k, model in enumerate(models)
    ]


@dataclass(frozen=True)
class _Asked:
    """What a run computes besides the boxes and scores.

    Attributes:
        features: ROI-pool the feature map for every detection.
        gt_classes: ROI-pool the ground-truth boxes of these classes too.
        count_points: count each detection's points (else ``num_points`` is -1).
    """

    features: bool
    gt_classes: tuple[str, ...]
    count_points: bool = True


@dataclass(frozen=True)
class _Rows:
    """One model's detections in one frame: ``decode_boxes``'s ``(K, 8)`` and their points.

    Kept as arrays: the table is built once at the end (a frame's own DataFrame cost more
    than its decoding)."""

    segment_id: str
    frame_index: int
    found: np.ndarray
    num_points: np.ndarray


@dataclass(frozen=True)
class _Part:
    """One model's output on one segment."""

    rows: list[_Rows]
    features: list[np.ndarray]
    gt: list[pd.DataFrame]
    gt_features: list[np.ndarray]


@torch.no_grad()
def _run_segment(
    models: Sequence[BevDetector],
    dataset: Dataset,
    segment_id: str,
    asked: _Asked,
    device: torch.device,
    frame_done: Callable[[], None] | None = None,
) -> list[_Part]:
    """Every model on every frame of one segment (each frame's points read, gridded and
    indexed once for all models)."""
    config = models[0].config
    frames = dataset.frames
    seg_frames = frames.loc[frames["segment_id"] == segment_id, "frame_index"].sort_values()
    boxes = dataset.boxes
    gt_all = boxes[
        (boxes["segment_id"] == segment_id) & boxes["class"].isin(list(asked.gt_classes))
    ]
    gt_by_frame = {f: g for f, g in gt_all.groupby("frame_index")}
    parts = [_Part([], [], [], []) for _ in models]
    pts, offsets = dataset.segment_points(segment_id)
    for row, f in enumerate(seg_frames):
        frame_pts = pts[offsets[row] : offsets[row + 1]]
        grid = bev_grid(frame_pts, config)[None].to(device)
        point_grid = PointGrid(frame_pts) if asked.count_points else None
        gt = gt_by_frame.get(f)
        for model, part in zip(models, parts, strict=True):
            heads, fmap = model(grid)
            heads, fmap = heads.cpu(), fmap.cpu()
            found = decode_boxes(heads[0], model.config)
            counts = (
                np.full(len(found), -1, np.int64)
                if point_grid is None
                else point_grid.count_in_boxes(found[:, :7])
            )
            part.rows.append(_Rows(segment_id, f, found, counts))
            if asked.features:
                part.features.append(pool_roi_features(fmap[0], found[:, :7], model.config))
            if gt is not None:
                part.gt.append(gt)
                part.gt_features.append(
                    pool_roi_features(fmap[0], gt[BOX_COLUMNS].to_numpy(), model.config)
                )
        if frame_done is not None:
            frame_done()
    return parts


_DATASETS: dict[str, Dataset] = {}


def _segment_task(
    segment_id: str,
    root: str,
    asked: _Asked,
    *,
    models: list[BevDetector],
) -> list[_Part]:
    """A Dask task: one segment through the models, on a worker (its data set opened once)."""
    if root not in _DATASETS:
        _DATASETS[root] = Dataset.open(root)
    device = _torch_setup(models[0].config)
    models = [m.eval().to(device) for m in models]
    return _run_segment(models, _DATASETS[root], segment_id, asked, device)


def _detection_set(
    model: BevDetector, parts: list[_Part], boxes: pd.DataFrame, seconds: float, n_frames: int
) -> DetectionSet:
    rows = [r for p in parts for r in p.rows]
    feats = [f for p in parts for f in p.features]
    gt_rows = [g for p in parts for g in p.gt]
    gt_feats = [f for p in parts for f in p.gt_features]
    table = _detection_table(rows) if rows else pd.DataFrame({f.name: [] for f in DETECTIONS})
    table["detection_id"] = np.arange(len(table), dtype=np.int64)
    c = model.config.feature_channels
    return DetectionSet(
        detections=conform(table, DETECTIONS, "detections"),
        features=np.concatenate(feats) if feats else np.zeros((0, c), np.float32),
        gt=pd.concat(gt_rows, ignore_index=True) if gt_rows else boxes.iloc[:0],
        gt_features=np.concatenate(gt_feats) if gt_feats else np.zeros((0, c), np.float32),
        seconds=seconds,
        n_frames=n_frames,
    )


def _detection_table(rows: list[_Rows]) -> pd.DataFrame:
    """The detections of some frames as one table (``DETECTIONS`` columns but the id)."""
    found = np.concatenate([r.found for r in rows])
    sizes = [len(r.found) for r in rows]
    return pd.DataFrame(
        {
            "segment_id": np.repeat(np.array([r.segment_id for r in rows], object), sizes),
            "frame_index": np.repeat(np.array([r.frame_index for r in rows], np.int64), sizes),
            "class": "vehicle",
            **{c: found[:, j] for j, c in enumerate(BOX_COLUMNS)},
            "score": found[:, 7],
            "num_points": np.concatenate([r.num_points for r in rows]),
            "distance": np.hypot(found[:, 0], found[:, 1]),
            "track_id": None,
        }
    )


def ensemble_scores(
    main: pd.DataFrame, members: Sequence[pd.DataFrame], match_iou: float
) -> np.ndarray:
    """Each ensemble member's score for every detection of the main model (paper eq. 9).

    Per frame, the main model's detections are matched one-to-one to a member's detections
    by bird's-eye-view IoU (``rem_core.evaluation``'s ``"optimal"`` rule: Hungarian assignment,
    pairs below ``match_iou`` excluded); a member that has no match scores 0 (a miss).

    Args:
        main: the main model's detections (``DETECTIONS`` columns).
        members: the other members' detections over the same frames.
        match_iou: minimum BEV IoU of a match.

    Returns:
        ``(N, 1 + len(members))`` float32: column 0 is the main model's own score.
    """
    out = np.zeros((len(main), 1 + len(members)), np.float32)
    out[:, 0] = main["score"].to_numpy(np.float32)
    for m, other in enumerate(members, start=1):
        found = match_frames(main, other, "optimal", min_iou=match_iou).match
        hit = found >= 0
        out[hit, m] = other["score"].to_numpy(np.float32)[found[hit]]
    return out
