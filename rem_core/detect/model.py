"""The detector's input grid and network, and saving and loading trained weights."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rem_core.config import DetectorConfig
from rem_core.errors import InputError
from rem_core.geometry import wrap_angle
from rem_core.memory import keep_freed_memory

__all__ = [
    "N_HEAD",
    "N_INPUT",
    "STRIDE",
    "Z_EDGES",
    "BevDetector",
    "bev_grid",
    "load_detector",
    "save_detector",
]

log = logging.getLogger(__name__)

Z_EDGES = np.array([0.15, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0], dtype=np.float32)
# Height slices, count, max z, mean z, mean and max intensity, range, and the mean x and y
# offsets of the cell's above-ground points from its centre (sub-cell position, as PointPillars).
N_INPUT = len(Z_EDGES) + 1 + 8
N_HEAD = 10  # heatmap, offset x/y, z, log l/w/h, sin 2h, cos 2h, direction logit
STRIDE = 2


def bev_grid(
    points: np.ndarray, config: DetectorConfig, window: tuple[int, int, int] | None = None
) -> torch.Tensor:
    """The detector's input: a BEV voxel grid of one frame, or a square window of it.

    Args:
        points: ``(N, >=4)`` float32 ``x, y, z, intensity`` in the vehicle frame.
        config: grid extent and cell size.
        window: ``(i0, j0, n)``: only cells ``i0 <= i < i0 + n``, ``j0 <= j < j0 + n`` of
            the whole grid (a training crop); equal to slicing the whole grid, at the cost
            of the window's cells and points alone.

    Returns:
        ``(N_INPUT, G, G)`` float32 tensor, ``G = config.grid_size`` (or ``n``): log counts
        per height slice (the first is the ground, below 0.15 m), log total count, max z / 4,
        mean z / 4, mean and max intensity, the cell's distance from the sensor / range, and
        the mean x and y offsets of the cell's above-ground points from the cell centre /
        cell size.
    """
    # numpy's bincount on contiguous columns, and no copy of the points: points outside the
    # grid (or the window) go to one spare cell that is dropped at the end. Voxelising a
    # training batch competes with the network for the cores.
    g, r, c = config.grid_size, config.range_m, config.cell_m
    i0, j0, n = (0, 0, g) if window is None else window
    cols = np.asarray(points, dtype=np.float32)[:, :4].T.copy()  # rows x, y, z, intensity
    u = (cols[0] + np.float32(r)) / np.float32(c) - np.float32(i0)  # position in the window
    v = (cols[1] + np.float32(r)) / np.float32(c) - np.float32(j0)
    i, j = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    cells = n * n
    outside = (i.astype(np.uint64) >= n) | (j.astype(np.uint64) >= n)  # negatives wrap to huge
    cell = np.where(outside, cells, i * n + j)
    zbin = _z_slice(cols[2])
    n_slices = len(Z_EDGES) + 1
    out = np.zeros((N_INPUT, cells), np.float32)
    slices = np.bincount(cell * n_slices + zbin, minlength=(cells + 1) * n_slices)
    slices = slices[: cells * n_slices].reshape(cells, n_slices)
    out[:n_slices] = _log1p_counts(slices.T)
    count = slices.sum(1).astype(np.float32)
    out[n_slices] = np.log1p(count)
    occupied, per_point = count > 0, 1 / np.maximum(count, 1)
    cell_t = torch.from_numpy(cell)
    zmax = torch.full((cells + 1,), -10.0).scatter_reduce(
        0, cell_t, torch.from_numpy(cols[2]), "amax"
    )
    out[n_slices + 1] = np.where(occupied, zmax[:cells].numpy() / 4, 0.0)
    zsum = np.bincount(cell, weights=cols[2], minlength=cells + 1)[:cells]
    out[n_slices + 2] = np.where(occupied, zsum * per_point / 4, 0.0)
    isum = np.bincount(cell, weights=cols[3], minlength=cells + 1)[:cells]
    out[n_slices + 3] = isum * per_point
    imax = torch.zeros(cells + 1).scatter_reduce(0, cell_t, torch.from_numpy(cols[3]), "amax")
    out[n_slices + 4] = imax[:cells].numpy()
    out[n_slices + 5] = _range_channel(config)[i0 : i0 + n, j0 : j0 + n].reshape(-1).numpy()
    above = np.flatnonzero(zbin > 0)
    n_above = np.maximum(count - slices[:, 0], 1)
    above_cell = cell[above]
    for k, (position, index) in enumerate(((u, i), (v, j))):
        offset = position[above] - index[above] - 0.5
        total = np.bincount(above_cell, weights=offset, minlength=cells + 1)[:cells]
        out[n_slices + 6 + k] = total / n_above
    out = torch.from_numpy(out)
    return out.view(N_INPUT, n, n)


# Every edge of Z_EDGES is a multiple of 5 cm, so the slice of a height is a lookup of
# floor(20 z): exact in float32 at the edges too (closed below), and three times faster than
# a binary search over the edges.
_Z_STEPS = 80
_Z_LOOKUP = np.searchsorted(np.round(Z_EDGES * 20), np.arange(_Z_STEPS + 1), side="right")


def _z_slice(z: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 height slice of float32 heights: ``searchsorted(Z_EDGES, z, "right")``."""
    q = np.floor(z * np.float32(20)).astype(np.int64)
    return _Z_LOOKUP[np.clip(q, 0, _Z_STEPS)]


_LOG1P: list[np.ndarray] = [np.zeros(0, np.float32)]


def _log1p_counts(counts: np.ndarray) -> np.ndarray:
    """``np.log1p(counts.astype(np.float32))`` of non-negative integer counts, by a table of
    the same function's values: the same floats, without a logarithm per cell (most of a
    frame's 330,000 are 0)."""
    table = _LOG1P[0]  # read once: another thread may replace it meanwhile
    top = int(counts.max(initial=0))
    if top >= len(table):
        table = np.log1p(np.arange(max(top + 1, 4096), dtype=np.float32))
        _LOG1P[0] = table
    return table[counts]


_RANGE_CACHE: dict[tuple[float, float], torch.Tensor] = {}


def _range_channel(config: DetectorConfig) -> torch.Tensor:
    """``(G, G)`` distance of each cell centre from the sensor / ``range_m``."""
    key = (config.range_m, config.cell_m)
    if key not in _RANGE_CACHE:
        centres = (np.arange(config.grid_size) + 0.5) * config.cell_m - config.range_m
        dist = np.hypot(centres[:, None], centres[None, :]) / config.range_m
        _RANGE_CACHE[key] = torch.from_numpy(dist.astype(np.float32))
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
    keep_freed_memory()
    return torch.device(config.device)


def _train_in_bf16(config: DetectorConfig, device: torch.device) -> bool:
    """Whether training runs the network in bfloat16 autocast (``config.precision``)."""
    if config.precision != "auto":
        return config.precision == "bf16"
    if device.type == "cpu":
        try:  # oneDNN's own check: AVX512-BF16 or AMX
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return False


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
        if "paste_stretch" in raw:
            raw["paste_stretch"] = tuple(raw["paste_stretch"])
        config = DetectorConfig(**raw)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{folder}: not a saved detector ({exc})") from None
    model = BevDetector(config)
    # Any error of the load is a file that is not this model's weights: a damaged zip or
    # tensors of other shapes (RuntimeError), an empty file (EOFError), a payload the
    # weights-only loader refuses (pickle's UnpicklingError, caught as such without importing
    # pickle), a missing file.
    try:
        state = torch.load(folder / "model.pt", weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except Exception as exc:
        raise InputError(f"{folder}: cannot load the detector's weights ({exc})") from None
    return model.eval()
