"""The detector's input grid and network, and saving and loading trained weights."""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rem_core.boxes import wrap_angle
from rem_core.config import DetectorConfig

log = logging.getLogger(__name__)

Z_EDGES = np.array([0.15, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0], dtype=np.float32)
# Height slices, count, max z, mean z, mean and max intensity, range, and the mean x and y
# offsets of the cell's above-ground points from its centre (sub-cell position, as PointPillars).
N_INPUT = len(Z_EDGES) + 1 + 8
N_HEAD = 10  # heatmap, offset x/y, z, log l/w/h, sin 2h, cos 2h, direction logit
STRIDE = 2


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


def _torch_setup(config: DetectorConfig) -> torch.device:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    return torch.device(config.device)


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
