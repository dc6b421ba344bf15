"""A compact bird's-eye-view (BEV) vehicle detector, its ensemble and ROI-pooled features.

Points become a voxel grid in BEV (per cell: counts in height slices, height and intensity
statistics, range); a small CNN (two scales, PointPillars/CenterPoint style) turns it into a
feature map at twice the cell size; a CenterPoint head predicts a vehicle-centre heatmap and,
per cell, the centre offset, z, log size, the box axis as sin/cos of twice the heading
(free of the front/back ambiguity of near-symmetric vehicles) and a front/back direction
logit (as SECOND's direction classifier). REM's features are the
final feature map max-pooled inside each box (paper section 3.1).

Grid convention: cell ``(i, j)`` of the input grid covers
``x in [-R + i c, -R + (i + 1) c)`` and ``y in [-R + j c, -R + (j + 1) c)`` (vehicle frame,
``R = range_m``, ``c = cell_m``); tensors are ``(C, H, W)`` with H along x and W along y.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from rem_core.boxes import PointGrid, bev_corners, expand_ranges, wrap_angle
from rem_core.config import DetectorConfig
from rem_core.dataset import Dataset
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform

__all__ = [
    "BevDetector",
    "DetectionSet",
    "bev_grid",
    "detect",
    "ensemble_scores",
    "feature_map",
    "load_detector",
    "pool_roi_features",
    "save_detector",
    "train_detector",
]

log = logging.getLogger(__name__)

Z_EDGES = np.array([0.15, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0], dtype=np.float32)
# Height slices, count, max z, mean z, mean and max intensity, range, and the mean x and y
# offsets of the cell's above-ground points from its centre (sub-cell position, as PointPillars).
N_INPUT = len(Z_EDGES) + 1 + 8
N_HEAD = 10  # heatmap, offset x/y, z, log l/w/h, sin 2h, cos 2h, direction logit
STRIDE = 2


# --- input grid -----------------------------------------------------------------------------


def bev_grid(points: np.ndarray, config: DetectorConfig) -> torch.Tensor:
    """The detector's input: a BEV voxel grid of one frame.

    Args:
        points: ``(N, >=4)`` float32 ``x, y, z, intensity`` in the vehicle frame.
        config: grid extent and cell size.

    Returns:
        ``(N_INPUT, G, G)`` float32 tensor, ``G = config.grid_size``: log counts per height
        slice (the first is the ground, below 0.15 m), log total count, max z / 4, mean z / 4,
        mean and max intensity, the cell's distance from the sensor / range, and the mean
        x and y offsets of the cell's above-ground points from the cell centre / cell size.
    """
    g, r, c = config.grid_size, config.range_m, config.cell_m
    pts = np.asarray(points, dtype=np.float32)
    ij = np.floor((pts[:, :2] + r) / c).astype(np.int64)
    keep = np.all((ij >= 0) & (ij < g), axis=1)
    pts, ij = pts[keep], ij[keep]
    cell = torch.from_numpy(ij[:, 0] * g + ij[:, 1])
    z = torch.from_numpy(pts[:, 2].copy())
    inten = torch.from_numpy(pts[:, 3].copy())
    zbin = torch.from_numpy(np.searchsorted(Z_EDGES, pts[:, 2], side="right"))
    n_slices = len(Z_EDGES) + 1
    out = torch.zeros(N_INPUT, g * g)
    slices = torch.bincount(cell * n_slices + zbin, minlength=g * g * n_slices)
    out[:n_slices] = torch.log1p(slices.view(g * g, n_slices).T.float())
    count = torch.bincount(cell, minlength=g * g).float()
    out[n_slices] = torch.log1p(count)
    occupied = count > 0
    zmax = torch.full((g * g,), -10.0).scatter_reduce(0, cell, z, "amax")
    out[n_slices + 1] = torch.where(occupied, zmax / 4, 0.0)
    zsum = torch.zeros(g * g).index_add_(0, cell, z)
    out[n_slices + 2] = torch.where(occupied, zsum / count.clamp(min=1) / 4, 0.0)
    isum = torch.zeros(g * g).index_add_(0, cell, inten)
    out[n_slices + 3] = isum / count.clamp(min=1)
    out[n_slices + 4] = torch.zeros(g * g).scatter_reduce(0, cell, inten, "amax")
    out[n_slices + 5] = _range_channel(config)
    above = zbin > 0
    n_above = torch.bincount(cell[above], minlength=g * g).float().clamp(min=1)
    for k in range(2):
        offset = torch.from_numpy(((pts[:, k] + r) / c - ij[:, k] - 0.5).astype(np.float32))
        total = torch.zeros(g * g).index_add_(0, cell[above], offset[above])
        out[n_slices + 6 + k] = total / n_above
    return out.view(N_INPUT, g, g)


_RANGE_CACHE: dict[tuple[float, float], torch.Tensor] = {}


def _range_channel(config: DetectorConfig) -> torch.Tensor:
    key = (config.range_m, config.cell_m)
    if key not in _RANGE_CACHE:
        g = config.grid_size
        centres = (np.arange(g) + 0.5) * config.cell_m - config.range_m
        dist = np.hypot(centres[:, None], centres[None, :]) / config.range_m
        _RANGE_CACHE[key] = torch.from_numpy(dist.astype(np.float32).reshape(-1))
    return _RANGE_CACHE[key]


# --- network --------------------------------------------------------------------------------


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BevDetector(nn.Module):
    """Two-scale BEV backbone with a CenterPoint head.

    Args:
        config: channel widths and grid of the detector.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.stem = nn.Sequential(_conv(N_INPUT, c1, 2), _conv(c1, c1), _conv(c1, c1))
        self.down = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2), _conv(c2, c2))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 2, 2, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True)
        )
        self.neck = _conv(2 * c1, config.feature_channels)
        self.head = nn.Conv2d(config.feature_channels, N_HEAD, 1)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[0] = -2.19  # a heatmap prior of 0.1, as CenterNet

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads and features of a batch.

        Args:
            grid: ``(B, N_INPUT, G, G)`` input grids.

        Returns:
            ``(heads, features)``: ``(B, 10, G/2, G/2)`` raw head outputs and
            ``(B, feature_channels, G/2, G/2)`` the final BEV feature map.
        """
        a = self.stem(grid)
        features = self.neck(torch.cat([a, self.up(self.down(a))], dim=1))
        return self.head(features), features


# --- targets and loss -----------------------------------------------------------------------

# The direction bit splits headings at pi/4 (SECOND's direction offset): headings along the
# axes, where most vehicles drive, then sit well inside one half, never on the split.
_DIRECTION_OFFSET = np.pi / 4


def _direction(heading: np.ndarray) -> np.ndarray:
    """1 where ``heading`` lies in (-pi/4, 3pi/4), else 0: the target of the direction logit."""
    return (np.abs(wrap_angle(heading - _DIRECTION_OFFSET)) < np.pi / 2).astype(np.float32)


def _heading(sin2: np.ndarray, cos2: np.ndarray, direction_logit: np.ndarray) -> np.ndarray:
    """Heading from the axis angle (sin/cos of twice the heading) and the direction logit."""
    axis = np.arctan2(sin2, cos2) / 2  # in [-pi/2, pi/2]
    axis = np.where(axis <= _DIRECTION_OFFSET - np.pi / 2, axis + np.pi, axis)  # (-pi/4, 3pi/4]
    return wrap_angle(np.where(direction_logit > 0, axis, axis + np.pi))


def _targets(
    boxes: np.ndarray, ignore: np.ndarray, config: DetectorConfig
) -> dict[str, np.ndarray]:
    """CenterPoint targets of one frame on the output grid.

    Args:
        boxes: ``(N, 7)`` vehicle boxes to detect.
        ignore: ``(K, 7)`` vehicle boxes too sparse to learn from: neither positive nor negative.
    """
    g = config.grid_size // STRIDE
    cell = config.cell_m * STRIDE
    heat = np.zeros((g, g), np.float32)
    weight = np.ones((g, g), np.float32)
    reg = np.zeros((9, g, g), np.float32)
    mask = np.zeros((g, g), np.float32)

    def splat(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u = (b[:, 0] + config.range_m) / cell
        v = (b[:, 1] + config.range_m) / cell
        sigma = np.clip(np.minimum(b[:, 3], b[:, 4]) / cell / 3, 0.7, 3.0)
        reach = np.ceil(3 * sigma).astype(np.int64)
        side = 2 * reach + 1
        owner, k = expand_ranges(np.zeros(len(b), np.int64), side * side)
        i = np.floor(u).astype(np.int64)[owner] - reach[owner] + k // side[owner]
        j = np.floor(v).astype(np.int64)[owner] - reach[owner] + k % side[owner]
        ci = np.floor(u).astype(np.int64)[owner]
        cj = np.floor(v).astype(np.int64)[owner]
        value = np.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * sigma[owner] ** 2))
        ok = (i >= 0) & (i < g) & (j >= 0) & (j < g)
        return i[ok], j[ok], value[ok].astype(np.float32), np.column_stack([u, v])

    if len(ignore):
        i, j, value, _ = splat(ignore)
        weight[i[value > 0.1], j[value > 0.1]] = 0.0
    if len(boxes):
        i, j, value, uv = splat(boxes)
        np.maximum.at(heat, (i, j), value)
        ci, cj = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = (ci >= 0) & (ci < g) & (cj >= 0) & (cj < g)
        heat[ci[inside], cj[inside]] = 1.0
        weight[ci[inside], cj[inside]] = 1.0
        # Regress from the centre cell and its 8 neighbours, so a peak one cell off still
        # decodes the right box; where neighbourhoods meet, the nearer centre wins.
        di, dj = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
        ni = (ci[:, None] + di.reshape(1, -1)).reshape(-1)
        nj = (cj[:, None] + dj.reshape(1, -1)).reshape(-1)
        owner = np.repeat(np.arange(len(boxes)), 9)
        gap = np.hypot(uv[owner, 0] - ni - 0.5, uv[owner, 1] - nj - 0.5)
        order = np.argsort(-gap, kind="stable")  # farthest first: the nearest is written last
        ni, nj, owner = ni[order], nj[order], owner[order]
        ok = (ni >= 0) & (ni < g) & (nj >= 0) & (nj < g)
        ni, nj, owner = ni[ok], nj[ok], owner[ok]
        b = boxes[owner]
        reg[:, ni, nj] = np.stack(
            [
                uv[owner, 0] - ni,
                uv[owner, 1] - nj,
                b[:, 2],
                np.log(b[:, 3]),
                np.log(b[:, 4]),
                np.log(b[:, 5]),
                np.sin(2 * b[:, 6]),
                np.cos(2 * b[:, 6]),
                _direction(b[:, 6]),
            ]
        )
        mask[ni, nj] = 1.0
    return {"heat": heat, "weight": weight, "reg": reg, "mask": mask}


def _loss(heads: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """CenterNet focal loss on the heatmap, L1 on the regression and cross-entropy on the
    direction at centre cells."""
    pred = torch.sigmoid(heads[:, 0]).clamp(1e-4, 1 - 1e-4)
    heat, weight = t["heat"], t["weight"]
    pos = heat.eq(1).float()
    pos_loss = -torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = -torch.log(1 - pred) * pred**2 * (1 - heat) ** 4 * (1 - pos) * weight
    n_pos = pos.sum().clamp(min=1)
    focal = (pos_loss.sum() + neg_loss.sum()) / n_pos
    mask = t["mask"].unsqueeze(1)
    n = mask.sum().clamp(min=1)
    reg = (F.l1_loss(heads[:, 1:9], t["reg"][:, :8], reduction="none") * mask).sum() / (n * 8)
    direction = F.binary_cross_entropy_with_logits(
        heads[:, 9:10], t["reg"][:, 8:9], reduction="none"
    )
    direction = (direction * mask).sum() / n
    loss = focal + 2.0 * reg + 0.2 * direction
    return loss, {
        "focal": float(focal.detach()),
        "reg": float(reg.detach()),
        "dir": float(direction.detach()),
    }


# --- training -------------------------------------------------------------------------------


def _augment(
    points: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random flip across the x axis, rotation within +-22.5 degrees and scaling by +-5%."""
    flip = rng.random() < 0.5
    angle = rng.uniform(-np.pi / 8, np.pi / 8)
    scale = rng.uniform(0.95, 1.05)
    c, s = np.cos(angle), np.sin(angle)

    def move_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if flip:
            y = -y
        return scale * (c * x - s * y), scale * (s * x + c * y)

    pts = points.copy()
    pts[:, 0], pts[:, 1] = move_xy(points[:, 0], points[:, 1])
    pts[:, 2] *= scale
    out = []
    for b in boxes:
        b = b.copy()
        b[:, 0], b[:, 1] = move_xy(b[:, 0], b[:, 1])
        b[:, 2:6] *= scale
        heading = -b[:, 6] if flip else b[:, 6]
        b[:, 6] = wrap_angle(heading + angle)
        out.append(b)
    return pts, out


def _torch_setup(config: DetectorConfig) -> torch.device:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    return torch.device(config.device)


def train_detector(
    config: DetectorConfig,
    dataset: Dataset,
    segments: Sequence[str] | None = None,
    member: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> BevDetector:
    """Train one detector on the labelled source pool.

    Args:
        config: architecture and training recipe.
        dataset: the data set; its ``source`` split is used unless ``segments`` is given.
        segments: segment ids to train on.
        member: ensemble member; the weights are initialised with seed ``config.seed + member``.
        progress: called with ``(steps done, steps in all)``.

    Returns:
        The trained model in eval mode, on the CPU.
    """
    device = _torch_setup(config)
    if segments is None:
        segments = dataset.segments.loc[
            dataset.segments["split"] == "source", "segment_id"
        ].tolist()
    if not segments:
        raise ValueError(f"{dataset.root}: no source segments to train a detector on")
    boxes = dataset.boxes
    vehicles = boxes[(boxes["class"] == "vehicle") & boxes["segment_id"].isin(segments)]
    frames = dataset.frames[dataset.frames["segment_id"].isin(segments)]
    samples = []  # (points, boxes to learn, boxes to ignore)
    by_frame = {k: g for k, g in vehicles.groupby(["segment_id", "frame_index"])}
    for segment_id in segments:
        pts, offsets = dataset.segment_points(segment_id)
        seg_frames = frames.loc[frames["segment_id"] == segment_id, "frame_index"].sort_values()
        for row, f in enumerate(seg_frames):
            b = by_frame.get((segment_id, f), vehicles.iloc[:0])
            learn = (b["num_points"] >= config.min_train_points) & ~b["label_noise"]
            samples.append(
                (
                    pts[offsets[row] : offsets[row + 1]],
                    b.loc[learn, BOX_COLUMNS].to_numpy(),
                    b.loc[~learn, BOX_COLUMNS].to_numpy(),
                )
            )
    log.info("training on %d frames of %d segments", len(samples), len(segments))

    with torch.random.fork_rng(devices=[]):  # seed the weights without touching global state
        torch.manual_seed(config.seed + member)
        model = BevDetector(config).to(device)
    data_rng = np.random.default_rng(config.data_seed)
    steps_per_epoch = int(np.ceil(len(samples) / config.batch_size))
    total = max(steps_per_epoch * config.epochs, 1)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=total, pct_start=0.2
    )
    model.train()
    step = 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        order = data_rng.permutation(len(samples))
        for k in range(0, len(order), config.batch_size):
            grids, targets = [], []
            for idx in order[k : k + config.batch_size]:
                pts, learn, ignore = samples[idx]
                if config.augment:
                    pts, (learn, ignore) = _augment(pts, [learn, ignore], data_rng)
                grids.append(bev_grid(pts, config))
                targets.append(_targets(learn, ignore, config))
            batch = {
                key: torch.from_numpy(np.stack([t[key] for t in targets])).to(device)
                for key in targets[0]
            }
            heads, _ = model(torch.stack(grids).to(device))
            loss, parts = _loss(heads, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if progress is not None:
                progress(step, total)
        log.debug(
            "epoch %d: loss %.4f %s (%.0f s)",
            epoch,
            float(loss.detach()),
            parts,
            time.perf_counter() - start,
        )
    return model.eval().cpu()


# --- inference ------------------------------------------------------------------------------


def _decode(heads: torch.Tensor, config: DetectorConfig) -> np.ndarray:
    """Boxes and scores of one frame's head outputs: ``(K, 8)`` = 7 box columns + score."""
    heat = torch.sigmoid(heads[0])
    peaks = heat == F.max_pool2d(heat[None, None], 3, 1, 1)[0, 0]
    scores = torch.where(peaks, heat, torch.zeros_like(heat)).reshape(-1)
    k = min(config.max_detections * 2, scores.numel())
    top, idx = torch.topk(scores, k)
    keep = top > config.score_threshold
    top, idx = top[keep], idx[keep]
    g = heat.shape[1]
    i, j = idx // g, idx % g
    r = heads[1:, i, j].T.double().numpy()
    cell = config.cell_m * STRIDE
    boxes = np.column_stack(
        [
            (i.numpy() + r[:, 0]) * cell - config.range_m,
            (j.numpy() + r[:, 1]) * cell - config.range_m,
            r[:, 2],
            np.exp(np.clip(r[:, 3:6], -3, 4)),
            _heading(r[:, 6], r[:, 7], r[:, 8]),
            top.double().numpy(),
        ]
    )
    boxes[:, 6] = wrap_angle(boxes[:, 6])
    return _suppress(boxes)[: config.max_detections]


def _suppress(boxes: np.ndarray) -> np.ndarray:
    """Drop a box whose centre lies inside the footprint of a higher-scoring box.

    Heatmap peaks along a long vehicle would otherwise give it several boxes. Boxes arrive
    sorted by descending score.
    """
    if len(boxes) < 2:
        return boxes
    d = boxes[None, :, :2] - boxes[:, None, :2]  # d[a, b] = centre of b seen from a
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    along = np.abs(cos * d[..., 0] + sin * d[..., 1]) <= boxes[:, 3, None] / 2
    across = np.abs(-sin * d[..., 0] + cos * d[..., 1]) <= boxes[:, 4, None] / 2
    covered = np.triu(along & across, k=1)  # a covers b, a scored higher
    keep = np.ones(len(boxes), bool)
    for b in range(1, len(boxes)):  # K <= 2 x max_detections; greedy order matters
        if covered[:b, b][keep[:b]].any():
            keep[b] = False
    return boxes[keep]


def pool_roi_features(
    features: torch.Tensor, boxes: np.ndarray, config: DetectorConfig
) -> np.ndarray:
    """ROI max-pooling (paper section 3.1): the feature map's maximum inside each box.

    The max runs over the cells whose centres lie inside the rotated box in BEV; a box too
    small to hold a cell centre takes the cell under its centre.

    Args:
        features: ``(C, H, W)`` final BEV feature map of one frame.
        boxes: ``(N, 7)`` boxes in the vehicle frame.
        config: the detector's grid.

    Returns:
        ``(N, C)`` float32 features.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    c, h, w = features.shape
    if len(boxes) == 0:
        return np.zeros((0, c), np.float32)
    cell = config.cell_m * STRIDE
    corners = bev_corners(boxes)
    lo = np.floor((corners.min(1) + config.range_m) / cell - 0.5).astype(np.int64)
    hi = np.ceil((corners.max(1) + config.range_m) / cell - 0.5).astype(np.int64)
    lo = np.clip(lo, 0, [h - 1, w - 1])
    hi = np.clip(hi, -1, [h - 1, w - 1])
    span = np.maximum(hi - lo + 1, 0)
    count = span[:, 0] * span[:, 1]
    owner, k = expand_ranges(np.zeros(len(boxes), np.int64), count)
    ncol = np.maximum(span[owner, 1], 1)
    i = lo[owner, 0] + k // ncol
    j = lo[owner, 1] + k % ncol
    dx = (i + 0.5) * cell - config.range_m - boxes[owner, 0]
    dy = (j + 0.5) * cell - config.range_m - boxes[owner, 1]
    cos, sin = np.cos(boxes[owner, 6]), np.sin(boxes[owner, 6])
    inside = (np.abs(cos * dx + sin * dy) <= boxes[owner, 3] / 2) & (
        np.abs(-sin * dx + cos * dy) <= boxes[owner, 4] / 2
    )
    empty = np.bincount(owner[inside], minlength=len(boxes)) == 0
    ci = np.clip(np.floor((boxes[empty, 0] + config.range_m) / cell), 0, h - 1).astype(np.int64)
    cj = np.clip(np.floor((boxes[empty, 1] + config.range_m) / cell), 0, w - 1).astype(np.int64)
    owner = np.concatenate([owner[inside], np.flatnonzero(empty)])
    flat = np.concatenate([i[inside] * w + j[inside], ci * w + cj])
    values = features.reshape(c, -1)[:, torch.from_numpy(flat)].T  # (pairs, C)
    out = torch.full((len(boxes), c), -torch.inf, dtype=values.dtype)
    out.scatter_reduce_(0, torch.from_numpy(owner)[:, None].expand(-1, c), values, "amax")
    return out.numpy().astype(np.float32)


@torch.no_grad()
def feature_map(model: BevDetector, points: np.ndarray) -> torch.Tensor:
    """The final BEV feature map of one frame.

    Args:
        model: a trained detector.
        points: ``(N, >=4)`` float32 ``x, y, z, intensity`` in the vehicle frame.

    Returns:
        ``(feature_channels, G/2, G/2)`` float32 tensor on the CPU; cell ``(i, j)`` is
        centred at ``x = -R + (i + 0.5) 2c``, ``y = -R + (j + 0.5) 2c`` (see the module
        docstring).
    """
    device = next(model.parameters()).device
    _, features = model.eval()(bev_grid(points, model.config)[None].to(device))
    return features[0].cpu()


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


@torch.no_grad()
def detect(
    model: BevDetector,
    dataset: Dataset,
    segments: Sequence[str] | None = None,
    with_features: bool = True,
    gt_classes: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
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
    """
    config = model.config
    device = _torch_setup(config)
    model = model.eval().to(device)
    if segments is None:
        segments = dataset.segments["segment_id"].tolist()
    frames = dataset.frames[dataset.frames["segment_id"].isin(segments)]
    boxes = dataset.boxes
    gt_all = boxes[boxes["class"].isin(list(gt_classes)) & boxes["segment_id"].isin(segments)]
    gt_by_frame = {k: g for k, g in gt_all.groupby(["segment_id", "frame_index"])}
    total, done = len(frames), 0
    rows, feats, gt_rows, gt_feats = [], [], [], []
    start = time.perf_counter()
    for segment_id in segments:
        pts, offsets = dataset.segment_points(segment_id)
        seg_frames = frames.loc[frames["segment_id"] == segment_id, "frame_index"].sort_values()
        for row, f in enumerate(seg_frames):
            frame_pts = pts[offsets[row] : offsets[row + 1]]
            heads, fmap = model(bev_grid(frame_pts, config)[None].to(device))
            heads, fmap = heads.cpu(), fmap.cpu()
            found = _decode(heads[0], config)
            n_in_box = PointGrid(frame_pts).count_in_boxes(found[:, :7])
            rows.append(
                pd.DataFrame(
                    {
                        "segment_id": segment_id,
                        "frame_index": f,
                        "class": "vehicle",
                        **{c: found[:, k] for k, c in enumerate(BOX_COLUMNS)},
                        "score": found[:, 7],
                        "num_points": n_in_box,
                        "distance": np.hypot(found[:, 0], found[:, 1]),
                        "track_id": None,
                    }
                )
            )
            if with_features:
                feats.append(pool_roi_features(fmap[0], found[:, :7], config))
            gt = gt_by_frame.get((segment_id, f))
            if gt is not None:
                gt_rows.append(gt)
                gt_feats.append(pool_roi_features(fmap[0], gt[BOX_COLUMNS].to_numpy(), config))
            done += 1
            if progress is not None:
                progress(done, total)
    seconds = time.perf_counter() - start
    table = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame({f.name: [] for f in DETECTIONS})
    )
    table["detection_id"] = np.arange(len(table), dtype=np.int64)
    c = config.feature_channels
    return DetectionSet(
        detections=conform(table, DETECTIONS, "detections"),
        features=np.concatenate(feats) if feats else np.zeros((0, c), np.float32),
        gt=pd.concat(gt_rows, ignore_index=True) if gt_rows else boxes.iloc[:0],
        gt_features=np.concatenate(gt_feats) if gt_feats else np.zeros((0, c), np.float32),
        seconds=seconds,
        n_frames=total,
    )


# --- persistence ----------------------------------------------------------------------------


def save_detector(model: BevDetector, folder: str | Path, meta: dict | None = None) -> None:
    """Save weights (``model.pt``, a state_dict) and ``model.json`` (config and metadata)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model.pt.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(folder / "model.pt")
    info = {"config": asdict(model.config), **(meta or {})}
    tmp = folder / ".model.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(folder / "model.json")


def load_detector(folder: str | Path) -> BevDetector:
    """Load a detector saved by :func:`save_detector` (weights only: nothing is unpickled)."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "model.json").read_text())
        raw = dict(info["config"])
        raw["channels"] = tuple(raw["channels"])
        config = DetectorConfig(**raw)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder}: not a saved detector ({exc})") from None
    model = BevDetector(config)
    try:
        state = torch.load(folder / "model.pt", weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{folder}: cannot load the detector's weights ({exc})") from None
    return model.eval()


# --- ensemble -------------------------------------------------------------------------------


def ensemble_scores(
    main: pd.DataFrame, members: Sequence[pd.DataFrame], match_iou: float
) -> np.ndarray:
    """Each ensemble member's score for every detection of the main model (paper eq. 9).

    Per frame, the main model's detections are matched one-to-one to a member's detections
    by bird's-eye-view IoU (Hungarian assignment, pairs below ``match_iou`` excluded); a
    member that has no match scores 0 (a miss).

    Args:
        main: the main model's detections (``DETECTIONS`` columns).
        members: the other members' detections over the same frames.
        match_iou: minimum BEV IoU of a match.

    Returns:
        ``(N, 1 + len(members))`` float32: column 0 is the main model's own score.
    """
    from scipy.optimize import linear_sum_assignment

    from rem_core.evaluate import bev_iou

    out = np.zeros((len(main), 1 + len(members)), np.float32)
    out[:, 0] = main["score"].to_numpy(np.float32)
    keys = ["segment_id", "frame_index"]
    main_rows = main.reset_index(drop=True).groupby(keys, sort=False).indices
    for m, other in enumerate(members, start=1):
        other = other.reset_index(drop=True)
        other_rows = other.groupby(keys, sort=False).indices
        other_boxes = other[BOX_COLUMNS].to_numpy(np.float64)
        other_scores = other["score"].to_numpy(np.float32)
        main_boxes = main[BOX_COLUMNS].to_numpy(np.float64)
        for key, rows in main_rows.items():
            theirs = other_rows.get(key)
            if theirs is None:
                continue
            iou = bev_iou(main_boxes[rows], other_boxes[theirs])
            r, c = linear_sum_assignment(np.where(iou >= match_iou, -iou, 0.0))
            ok = iou[r, c] >= match_iou
            out[rows[r[ok]], m] = other_scores[theirs[c[ok]]]
    return out
