"""What a detector learns from: CenterPoint targets of a frame, and the training loss."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from rem_core.config import DetectorConfig
from rem_core.detect.model import STRIDE, _direction
from rem_core.geometry import LARGE_MIN_M, bev_corners, expand_ranges


def _targets(
    boxes: np.ndarray, ignore: np.ndarray, config: DetectorConfig
) -> dict[str, np.ndarray]:
    """CenterPoint targets of one frame on the output grid.

    Args:
        boxes: ``(N, 7)`` vehicle boxes to detect.
        ignore: ``(K, 7)`` vehicle boxes too sparse to learn from: neither positive nor negative.
        config: the grid, and the options for long vehicles (``long_weight``,
            ``dense_long_targets``).

    Returns:
        ``heat`` and ``weight`` ``(g, g)``; ``reg`` ``(9, g, g)``; ``mask`` ``(g, g)``: the
        weight of the regression at each cell, 0 where nothing is regressed.
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
        long = boxes[:, 3] >= LARGE_MIN_M
        if config.dense_long_targets and long.any():
            li, lj, lowner = _cells_inside(boxes, np.flatnonzero(long), config)
            ni, nj, owner = np.r_[ni, li], np.r_[nj, lj], np.r_[owner, lowner]
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
        mask[ni, nj] = np.where(long[owner], config.long_weight, 1.0)
    return {"heat": heat, "weight": weight, "reg": reg, "mask": mask}


def _cells_inside(
    boxes: np.ndarray, which: np.ndarray, config: DetectorConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, owner)`` of the output cells whose centres lie in the footprints of
    ``boxes[which]`` (cells may fall outside the grid)."""
    cell = config.cell_m * STRIDE
    sub = boxes[which]
    corners = bev_corners(sub)
    lo = np.floor((corners.min(1) + config.range_m) / cell - 0.5).astype(np.int64)
    hi = np.ceil((corners.max(1) + config.range_m) / cell - 0.5).astype(np.int64)
    span = hi - lo + 1
    owner, k = expand_ranges(np.zeros(len(sub), np.int64), span[:, 0] * span[:, 1])
    i = lo[owner, 0] + k // span[owner, 1]
    j = lo[owner, 1] + k % span[owner, 1]
    dx = (i + 0.5) * cell - config.range_m - sub[owner, 0]
    dy = (j + 0.5) * cell - config.range_m - sub[owner, 1]
    cos, sin = np.cos(sub[owner, 6]), np.sin(sub[owner, 6])
    inside = (np.abs(cos * dx + sin * dy) <= sub[owner, 3] / 2) & (
        np.abs(-sin * dx + cos * dy) <= sub[owner, 4] / 2
    )
    return i[inside], j[inside], which[owner[inside]]


def _loss(heads: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """CenterNet focal loss on the heatmap, L1 on the regression and cross-entropy on the
    direction at the regression cells, each cell weighted by ``mask``."""
    pred = torch.sigmoid(heads[:, 0]).clamp(1e-4, 1 - 1e-4)
    heat, weight = t["heat"], t["weight"]
    pos = heat.eq(1).float()
    pos_loss = -torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = -torch.log(1 - pred) * pred**2 * (1 - heat) ** 4 * (1 - pos) * weight
    n_pos = pos.sum().clamp(min=1)
    focal = (pos_loss.sum() + neg_loss.sum()) / n_pos
    mask = t["mask"].unsqueeze(1)
    n = (mask > 0).sum().clamp(min=1)
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
