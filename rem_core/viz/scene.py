"""The 3D view of a LiDAR frame: arrays and tables in, a plotly figure out.

Pure functions with no streamlit: the app and notebooks call them alike. Frames, units and
colours are those of ``rem_core.viz.frame`` (vehicle frame, metres; ``BOXES`` rows; rare
families in warm colours, label noise dashed, a highlighted track in white). The
bird's-eye view is ``rem_core.viz.bev`` (importable from here too, as before the split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.viz.frame import (
    _POINT_SCALE,
    _POINT_SYMBOL,
    DISPLAY_POINTS,
    ColorBy,
    PointColor,
    _across_extent,
    _box_traces,
    _check_boxes,
    _check_points,
    _dark_layout,
    _ego_trace,
    _point_colors,
    _with_gaps,
    box_edges,
    decimate_points,
    display_columns,
)
from rem_core.viz.theme import BACKGROUND, GRID, TEXT

__all__ = [
    "scene_figure",
]


def scene_figure(
    points: np.ndarray | None,
    boxes: pd.DataFrame | None,
    color_by: ColorBy = "class",
    max_points: int = DISPLAY_POINTS,
    point_color: PointColor = "height",
    highlight_track: str | None = None,
    extent_m: float = 75.0,
    seed: int = 0,
    height: int = 620,
    show_legend: bool = True,
) -> go.Figure:
    """A 3D view of one frame: points and box wireframes (WebGL).

    Points are decimated with :func:`decimate_points` and drawn as small squares in a grey
    ramp by height or intensity, sent as float32 arrays (:func:`display_columns`); the
    browser's drawing time grows with their number (``DISPLAY_POINTS``). Boxes are drawn as
    their 12 edges, one trace per colour group (see the module docstring), with a hover
    label per box. The camera chases the ego from behind and above.

    Args:
        points: ``(N, >=3)`` float ``x, y, z[, intensity]`` in the vehicle frame, metres;
            ``None`` or ``(0, 4)`` for none.
        boxes: rows of the ``BOXES`` schema in the same frame, or ``None``.
        color_by: colour boxes by ``"class"`` or by ``"subtype"``.
        max_points: at most this many points are drawn.
        point_color: colour points by ``"height"`` (z, metres) or ``"intensity"``.
        highlight_track: a ``track_id`` drawn thick and white, on top.
        extent_m: the view spans ``[-extent_m, extent_m]`` along x; across (y) it is fitted
            to the points, at most as wide. Points outside are dropped before decimation.
        seed: seed of the point decimation.
        height: figure height in pixels.
        show_legend: show the legend of box groups.

    Returns:
        A figure with a point trace, the ego marker, and one ``Scatter3d`` line trace per box
        group; box traces carry ``meta={"kind": "boxes", "group": ..., "boxes": M}``.
    """
    points, across = _points_in_view(points, extent_m, max_points, seed)
    boxes = _check_boxes(boxes)
    fig = go.Figure()
    fig.add_trace(_point_trace(points, point_color))
    fig.add_trace(_ego_trace("3d"))
    for trace in _wireframe_traces(boxes, color_by, highlight_track):
        fig.add_trace(trace)
    _dark_layout(fig, height, show_legend)
    _scene_layout(fig, extent_m, across, _top_m(points, boxes))
    return fig


def _points_in_view(
    points: np.ndarray | None, extent_m: float, max_points: int, seed: int
) -> tuple[np.ndarray, float]:
    """The checked points inside the view, decimated, and the view's half-width across (y)."""
    points = _check_points(points)
    across = _across_extent(points, extent_m)
    inside = (np.abs(points[:, 0]) <= extent_m) & (np.abs(points[:, 1]) <= across)
    return decimate_points(points[inside], max_points, seed), across


def _point_trace(points: np.ndarray, point_color: PointColor) -> go.Scatter3d:
    """The points as small squares in a grey ramp, with a colour bar when there are any."""
    values, (cmin, cmax), label = _point_colors(points, point_color)
    x, y, z = display_columns(points)
    return go.Scatter3d(
        x=x,
        y=y,
        z=z,
        mode="markers",
        name=f"points ({len(points):,})",
        marker=dict(
            size=1.6,
            symbol=_POINT_SYMBOL,
            color=values,
            colorscale=_POINT_SCALE,
            cmin=cmin,
            cmax=cmax,
            showscale=len(points) > 0,
            colorbar=dict(title=dict(text=label, side="right"), thickness=10, len=0.5, x=1.0),
        ),
        hoverinfo="skip",
        showlegend=False,
    )


def _wireframe_traces(
    boxes: pd.DataFrame, color_by: ColorBy, highlight_track: str | None
) -> list[go.Scatter3d]:
    """One line trace of the 12 edges of its boxes per box group, with a hover label per box."""
    traces: list[go.Scatter3d] = []
    for array, hover, style in _box_traces(boxes, color_by, highlight_track, "3d"):
        xyz = _with_gaps(box_edges(array).reshape(-1, 2, 3))
        traces.append(
            go.Scatter3d(
                x=xyz[:, 0].tolist(),
                y=xyz[:, 1].tolist(),
                z=xyz[:, 2].tolist(),
                text=np.repeat(hover, 12 * 3).tolist(),
                connectgaps=False,
                **style,
            )
        )
    return traces


def _top_m(points: np.ndarray, boxes: pd.DataFrame) -> float:
    """Top of the vertical axis, metres: the highest point or box top, at least 4, rounded up."""
    return float(
        np.ceil(
            max(
                4.0,
                points[:, 2].max(initial=0.0),
                (boxes["center_z"] + boxes["height"] / 2).max() if len(boxes) else 0.0,
            )
        )
    )


def _scene_layout(fig: go.Figure, extent_m: float, across: float, top: float) -> None:
    """Set the dark 3D axes around the ego and the chase camera from behind and above."""
    axis = dict(
        backgroundcolor=BACKGROUND,
        gridcolor=GRID,
        zerolinecolor=GRID,
        showspikes=False,
        color=TEXT,
    )
    fig.update_layout(
        scene=dict(
            aspectmode="data",
            bgcolor=BACKGROUND,
            # ranges centred on the ego, so that the camera's centre is the ego
            xaxis=dict(axis, range=[-extent_m, extent_m], title=dict(text="x forward (m)")),
            yaxis=dict(axis, range=[-across, across], title=dict(text="y left (m)")),
            zaxis=dict(axis, range=[-1.0, top], showticklabels=False, title=dict(text="")),
            camera=dict(
                up=dict(x=0, y=0, z=1),
                center=dict(x=0.1, y=0, z=-0.15),
                eye=dict(x=-0.9, y=0.0, z=0.7),
            ),
            dragmode="orbit",
        ),
    )
