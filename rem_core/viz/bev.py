"""The bird's-eye view of a LiDAR frame: the highest point per cell, with box outlines.

Frames, units and colours are those of ``rem_core.viz.frame``. The view puts x (forward) up
and y (left) to the left, as seen from above with the ego driving up the screen: it matches
the 3D view's (``rem_core.viz.scene``) default chase camera.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.errors import InputError
from rem_core.geometry import bev_corners
from rem_core.viz.frame import (
    _HEIGHT_RANGE_M,
    _POINT_SCALE,
    ColorBy,
    _across_extent,
    _box_traces,
    _check_boxes,
    _check_points,
    _dark_layout,
    _ego_trace,
    _with_gaps,
)
from rem_core.viz.theme import GRID, TEXT

__all__ = ["bev_figure"]


def _bev_height_image(
    points: np.ndarray, extent_m: float, cell_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Highest point per BEV cell.

    Returns:
        ``(n, n)`` float32 max z per cell (NaN where empty), rows along x and columns along
        y, and ``(n,)`` cell centres in metres (the same along both axes).
    """
    n = max(1, int(np.ceil(2 * extent_m / cell_m)))
    centres = -extent_m + (np.arange(n) + 0.5) * cell_m
    top = np.full(n * n, -np.inf, np.float32)
    if len(points):
        ix = np.floor((points[:, 0] + extent_m) / cell_m).astype(np.int64)
        iy = np.floor((points[:, 1] + extent_m) / cell_m).astype(np.int64)
        inside = (ix >= 0) & (ix < n) & (iy >= 0) & (iy < n)
        np.maximum.at(top, ix[inside] * n + iy[inside], points[inside, 2].astype(np.float32))
    top[np.isinf(top)] = np.nan
    return top.reshape(n, n), centres


def bev_figure(
    points: np.ndarray | None,
    boxes: pd.DataFrame | None,
    color_by: ColorBy = "class",
    extent_m: float = 75.0,
    cell_m: float = 0.4,
    highlight_track: str | None = None,
    height: int = 620,
    show_legend: bool = False,
) -> go.Figure:
    """A bird's-eye view of one frame: the highest point per cell, with box outlines.

    Orientation: x (forward) points up and y (left) to the left, axes at equal scale; the
    view covers ``[-extent_m, extent_m]`` along x around the ego, and across (y) a width
    fitted to the points (a multiple of 10 m, at most ``extent_m``), as in the 3D view.
    Each box is drawn as its outline plus a tick from its centre to the middle of its front
    edge (its heading).
    Colours and trace groups are those of :func:`scene_figure`.

    Args:
        points: ``(N, >=3)`` float ``x, y, z`` in the vehicle frame, metres; all are used
            (they are binned, not drawn one by one), ``None`` for none.
        boxes: rows of the ``BOXES`` schema in the same frame, or ``None``.
        color_by: colour boxes by ``"class"`` or by ``"subtype"``.
        extent_m: half the side of the square view, metres.
        cell_m: side of an image cell, metres.
        highlight_track: a ``track_id`` drawn thick and white, on top.
        height: figure height in pixels.
        show_legend: show the legend of box groups.

    Returns:
        A figure with a float32 ``Heatmap`` of max z per cell (the columns in view), the ego
        marker, and one ``Scatter`` line trace per box group (``meta`` as in
        :func:`scene_figure`).
    """
    if extent_m <= 0 or cell_m <= 0:
        raise InputError(f"extent_m and cell_m must be > 0, got {extent_m} and {cell_m}")
    points = _check_points(points)
    boxes = _check_boxes(boxes)
    fig = go.Figure()
    across = _across_extent(points, extent_m)
    fig.add_trace(_height_trace(points, extent_m, cell_m, across))
    fig.add_trace(_ego_trace("bev"))
    for array, hover, style in _box_traces(boxes, color_by, highlight_track, "bev"):
        fig.add_trace(_outline_trace(array, hover, style))
    _bev_layout(fig, extent_m, across, height, show_legend)
    return fig


def _height_trace(points: np.ndarray, extent_m: float, cell_m: float, across: float) -> go.Heatmap:
    """The highest point per cell as a float32 heatmap of the columns in view."""
    image, centres = _bev_height_image(points, extent_m, cell_m)
    # only the columns in view are sent (about half of them for a road scene)
    seen = np.abs(centres) <= across + cell_m
    return go.Heatmap(
        x=centres[seen].astype(np.float32),  # plot x = vehicle y
        y=centres.astype(np.float32),  # plot y = vehicle x
        z=np.ascontiguousarray(image[:, seen]),
        colorscale=_POINT_SCALE,
        zmin=_HEIGHT_RANGE_M[0],
        zmax=_HEIGHT_RANGE_M[1],
        showscale=False,
        hovertemplate="x %{y:.1f} m, y %{x:.1f} m<br>top %{z:.1f} m<extra></extra>",
        name="points",
    )


def _outline_trace(array: np.ndarray, hover: np.ndarray, style: dict[str, Any]) -> go.Scatter:
    """One group's boxes as one line trace: each box's closed outline, then its heading tick."""
    corners = bev_corners(array)  # (M, 4, 2), front-left first
    front = (corners[:, 0] + corners[:, 3]) / 2
    # outline closed, a gap, then the heading tick: 5 + 2 vertices per box
    path = np.concatenate([corners, corners[:, :1]], axis=1)
    ticks = np.stack([array[:, :2], front], axis=1)
    xy = np.concatenate([_with_gaps(path), _with_gaps(ticks)])
    texts = np.concatenate([np.repeat(hover, 6), np.repeat(hover, 3)])
    return go.Scatter(
        x=xy[:, 1].tolist(),  # vehicle y across
        y=xy[:, 0].tolist(),  # vehicle x up
        text=texts.tolist(),
        **style,
    )


def _bev_layout(
    fig: go.Figure, extent_m: float, across: float, height: int, show_legend: bool
) -> None:
    """Set the dark layout and the axes: x forward up, y left to the left, at equal scale."""
    _dark_layout(fig, height, show_legend)
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=45))
    axis = dict(
        gridcolor=GRID,
        zerolinecolor=GRID,
        color=TEXT,
        showgrid=True,
        ticksuffix=" m",
        constrain="domain",
    )
    fig.update_layout(
        # y (left) increases to the left: a reversed horizontal axis
        xaxis=dict(axis, range=[across, -across], title=dict(text="y left")),
        yaxis=dict(
            axis,
            range=[-extent_m, extent_m],
            title=dict(text="x forward"),
            scaleanchor="x",
            scaleratio=1,
        ),
        dragmode="pan",
    )
