"""Figures of one track: the object in 3D among its surroundings, and small thumbnails.

Points and boxes are in the vehicle frame of one frame (metres, radians; ``BOXES`` rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.boxes import bev_corners
from rem_core.schema import BOX_COLUMNS
from rem_core.viz.scene import ColorBy, decimate_points, scene_figure
from rem_core.viz.theme import BACKGROUND, HIGHLIGHT_COLOR, NOISE_COLOR, TEXT

__all__ = ["crop_around", "track_figure", "track_thumbnail"]

_POINT_SCALE = [[0.0, "#3a3f4b"], [0.5, "#8a909c"], [1.0, "#f2f2f2"]]


def crop_around(points: np.ndarray, center_xy: np.ndarray, radius_m: float) -> np.ndarray:
    """The rows of ``points`` ``(N, >=3)`` within ``radius_m`` of ``center_xy`` in BEV."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points: expected an (N, >=3) array, got shape {points.shape}")
    d = points[:, :2] - np.asarray(center_xy, dtype=np.float32)[None]
    return points[np.einsum("ij,ij->i", d, d) <= radius_m * radius_m]


def track_figure(
    points: np.ndarray,
    boxes: pd.DataFrame,
    track_id: str,
    *,
    radius_m: float = 15.0,
    max_points: int = 60_000,
    color_by: ColorBy = "subtype",
    height: int = 520,
) -> go.Figure:
    """The object of ``track_id`` in 3D, centred, with the points and boxes around it.

    The frame is shifted so that the object's centre is the origin; points within
    ``radius_m`` of it (BEV) are kept and decimated to ``max_points``; the object's box is
    drawn thick and white, label-noise boxes dashed magenta, the other boxes dimmed.

    Args:
        points: ``(N, >=3)`` float ``x, y, z[, intensity]`` of the frame.
        boxes: the frame's boxes (``BOXES`` rows); one must have ``track_id``.
        track_id: the object to centre on.
        radius_m: half the side of the view, metres.
        max_points: at most this many points are drawn.
        color_by: colour boxes by ``"class"`` or ``"subtype"``.
        height: figure height in pixels.

    Raises:
        ValueError: no box of the frame has ``track_id``.
    """
    mine = boxes[boxes["track_id"].astype(str) == str(track_id)]
    if mine.empty:
        raise ValueError(f"track_id: no box of this frame belongs to track {track_id!r}")
    center = mine[["center_x", "center_y"]].to_numpy(np.float64)[0]
    near = crop_around(points, center, radius_m).copy()
    near[:, :2] -= center.astype(np.float32)
    reach = np.hypot(boxes["length"], boxes["width"]).to_numpy() / 2
    dist = np.hypot(boxes["center_x"] - center[0], boxes["center_y"] - center[1]).to_numpy()
    shown = boxes[dist - reach <= radius_m].copy()
    shown["center_x"] -= center[0]
    shown["center_y"] -= center[1]
    fig = scene_figure(
        near,
        shown,
        color_by=color_by,
        max_points=max_points,
        highlight_track=str(track_id),
        extent_m=radius_m,
        height=height,
    )
    # Not around the ego here: drop its marker, and dim every box but the object's.
    fig.data = [t for t in fig.data if t.name != "ego"]
    for trace in fig.data:
        meta = trace.meta or {}
        if meta.get("kind") == "boxes" and not str(trace.name).startswith("track "):
            trace.opacity = 0.35
    fig.update_layout(
        scene_xaxis_range=[-radius_m, radius_m], scene_yaxis_range=[-radius_m, radius_m]
    )
    return fig


def track_thumbnail(
    points: np.ndarray,
    box: pd.Series,
    *,
    margin_m: float = 1.0,
    max_points: int = 4_000,
    height: int = 170,
    title: str = "",
) -> go.Figure:
    """A small top-down view of one box in its own frame: the object lies along x.

    Args:
        points: ``(N, >=3)`` float points of the box's frame.
        box: one ``BOXES`` row.
        margin_m: metres shown around the box.
        max_points: at most this many points.
        height: figure height in pixels.
        title: a caption drawn at the top.

    Returns:
        The points inside the box's footprint plus ``margin_m``, rotated into the box frame,
        coloured by height; the box outline white (magenta dashed for label noise).
    """
    cx, cy, _, length, width, _, heading = (float(box[c]) for c in BOX_COLUMNS)
    pts = crop_around(points, np.array([cx, cy]), np.hypot(length, width) / 2 + margin_m)
    c, s = np.cos(heading), np.sin(heading)
    dx, dy = pts[:, 0] - cx, pts[:, 1] - cy
    u, v = c * dx + s * dy, -s * dx + c * dy
    keep = (np.abs(u) <= length / 2 + margin_m) & (np.abs(v) <= width / 2 + margin_m)
    local = decimate_points(np.column_stack([u[keep], v[keep], pts[keep, 2]]), max_points)
    outline = bev_corners(np.array([[0, 0, 0, length, width, 0, 0.0]]))[0]
    outline = np.vstack([outline, outline[:1]])
    noisy = bool(box.get("label_noise", False))
    fig = go.Figure(
        [
            go.Scattergl(
                x=local[:, 0], y=local[:, 1], mode="markers",
                marker=dict(size=3, color=local[:, 2], colorscale=_POINT_SCALE),
                hoverinfo="skip", showlegend=False,
            ),
            go.Scatter(
                x=outline[:, 0], y=outline[:, 1], mode="lines", hoverinfo="skip",
                line=dict(color=NOISE_COLOR if noisy else HIGHLIGHT_COLOR, width=2,
                          dash="dash" if noisy else "solid"),
                showlegend=False,
            ),
        ]
    )  # fmt: skip
    half = max(length, width) / 2 + margin_m
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=22 if title else 0, b=0),
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        font=dict(color=TEXT, size=10),
        title=dict(text=title, font=dict(size=11), x=0.02, y=0.98) if title else None,
        xaxis=dict(visible=False, range=[-half, half]),
        yaxis=dict(visible=False, range=[-half, half], scaleanchor="x", scaleratio=1),
    )
    return fig
