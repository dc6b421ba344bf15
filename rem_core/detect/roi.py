"""REM's features (paper section 3.1): the detector's final BEV feature map, max-pooled inside
each box."""

from __future__ import annotations

import numpy as np
import torch

from rem_core.config import DetectorConfig
from rem_core.detect.model import STRIDE, BevDetector, bev_grid
from rem_core.geometry import bev_corners, expand_ranges

__all__ = ["feature_map", "pool_roi_features"]


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
