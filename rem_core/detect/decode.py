"""From the head's outputs to boxes: heatmap peaks decoded into scored boxes, then the boxes
whose centres another, higher-scoring box covers dropped."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from rem_core.config import DetectorConfig
from rem_core.detect.model import STRIDE, _heading
from rem_core.geometry import wrap_angle

__all__ = ["decode_boxes"]


def decode_boxes(heads: torch.Tensor, config: DetectorConfig) -> np.ndarray:
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
