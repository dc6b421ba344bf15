"""Figures of one track: the object in 3D among its surroundings, small thumbnails, and its
boxes' log p frame by frame (rareness along the track, ``rem_core.analysis.box_in_track``).

Points and boxes are in the vehicle frame of one frame (metres, radians; ``BOXES`` rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rem_core.errors import InputError
from rem_core.geometry import bev_corners
from rem_core.schema import BOX_COLUMNS
from rem_core.viz.frame import DISPLAY_POINTS, ColorBy, decimate_points, display_columns
from rem_core.viz.scene import scene_figure
from rem_core.viz.theme import (
    BACKGROUND,
    HIGHLIGHT_COLOR,
    NOISE_COLOR,
    RARE_VEHICLE_COLOR,
    TEXT,
    chart_layout,
)

__all__ = [
    "crop_around",
    "track_figure",
    "track_gallery",
    "track_log_prob_figure",
    "track_thumbnail",
]

_POINT_SCALE = [[0.0, "#3a3f4b"], [0.5, "#8a909c"], [1.0, "#f2f2f2"]]


def crop_around(points: np.ndarray, center_xy: np.ndarray, radius_m: float) -> np.ndarray:
    """The rows of ``points`` ``(N, >=3)`` within ``radius_m`` of ``center_xy`` in BEV."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 3:
        raise InputError(f"points: expected an (N, >=3) array, got shape {points.shape}")
    d = points[:, :2] - np.asarray(center_xy, dtype=np.float32)[None]
    return points[np.einsum("ij,ij->i", d, d) <= radius_m * radius_m]


def track_figure(
    points: np.ndarray,
    boxes: pd.DataFrame,
    track_id: str,
    *,
    radius_m: float = 15.0,
    max_points: int = DISPLAY_POINTS // 2,
    color_by: ColorBy = "subtype",
    height: int = 520,
) -> go.Figure:
    """The object of ``track_id`` in 3D, centred, with the points and boxes around it.

    The frame is shifted so that the object's centre is the origin; points within
    ``radius_m`` of it (BEV) are kept and decimated to ``max_points`` (a small view: half
    of a frame's ``DISPLAY_POINTS`` show it densely enough); the object's box is
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
        raise InputError(f"track_id: no box of this frame belongs to track {track_id!r}")
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


def _in_box_frame(
    points: np.ndarray, box: pd.Series, margin_m: float, max_points: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Points around ``box`` in its own frame (the object along x), its outline, half a side.

    Returns:
        ``(M, 3)`` float32 ``u, v, z`` of the points within the box's footprint plus
        ``margin_m``, at most ``max_points``; the ``(5, 2)`` closed outline; the half side
        of a square view holding both.
    """
    cx, cy, _, length, width, _, heading = (float(box[c]) for c in BOX_COLUMNS)
    pts = crop_around(points, np.array([cx, cy]), np.hypot(length, width) / 2 + margin_m)
    c, s = np.cos(heading), np.sin(heading)
    dx, dy = pts[:, 0] - cx, pts[:, 1] - cy
    u, v = c * dx + s * dy, -s * dx + c * dy
    keep = (np.abs(u) <= length / 2 + margin_m) & (np.abs(v) <= width / 2 + margin_m)
    local = np.column_stack([u[keep], v[keep], pts[keep, 2]]).astype(np.float32)
    local = decimate_points(local, max_points)
    outline = bev_corners(np.array([[0, 0, 0, length, width, 0, 0.0]]))[0]
    outline = np.vstack([outline, outline[:1]])
    return local, outline, max(length, width) / 2 + margin_m


def _thumbnail_traces(
    local: np.ndarray, outline: np.ndarray, noisy: bool, gl: bool
) -> list[go.Scattergl | go.Scatter]:
    """The points coloured by height, then the outline (magenta dashed for label noise)."""
    x, y, z = display_columns(local)
    marker = dict(size=3, color=z, colorscale=_POINT_SCALE)
    cloud = (go.Scattergl if gl else go.Scatter)(
        x=x, y=y, mode="markers", marker=marker, hoverinfo="skip", showlegend=False
    )
    line = dict(
        color=NOISE_COLOR if noisy else HIGHLIGHT_COLOR,
        width=2,
        dash="dash" if noisy else "solid",
    )
    box = go.Scatter(
        x=outline[:, 0], y=outline[:, 1], mode="lines", hoverinfo="skip", line=line,
        showlegend=False,
    )  # fmt: skip
    return [cloud, box]


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
    local, outline, half = _in_box_frame(points, box, margin_m, max_points)
    noisy = bool(box.get("label_noise", False))
    fig = go.Figure(_thumbnail_traces(local, outline, noisy, gl=True))
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


def track_gallery(
    shots: list[tuple[np.ndarray, pd.Series, str]],
    *,
    columns: int = 4,
    margin_m: float = 1.0,
    max_points: int = 800,
    row_height: int = 200,
    gl: bool = False,
) -> go.Figure:
    """Top-down views of several boxes in one figure, a panel each (as :func:`track_thumbnail`).

    One figure rather than one per box: a browser builds one plot instead of a dozen (in
    Chromium without a GPU, 8 panels drew in 0.2 s against 1 s for 8 WebGL thumbnails).

    Args:
        shots: ``(points, box, title)`` per panel, row by row: the ``(N, >=3)`` points of the
            box's frame, one ``BOXES`` row, a caption.
        columns: panels per row.
        margin_m: metres shown around each box.
        max_points: at most this many points per panel.
        row_height: pixels per row of panels.
        gl: draw the points with WebGL (``Scattergl``), else as SVG.

    Returns:
        A figure with two traces per panel (points coloured by height, outline white or
        magenta dashed for label noise), each panel on axes of its own at equal scale.
    """
    if columns < 1:
        raise InputError(f"columns must be >= 1, got {columns}")
    rows = max(1, -(-len(shots) // columns))
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[title for _, _, title in shots] or None,
        horizontal_spacing=0.02,
        vertical_spacing=0.12 / rows,
    )
    for i, (points, box, _) in enumerate(shots):
        row, col = i // columns + 1, i % columns + 1
        local, outline, half = _in_box_frame(points, box, margin_m, max_points)
        noisy = bool(box.get("label_noise", False))
        for trace in _thumbnail_traces(local, outline, noisy, gl):
            fig.add_trace(trace, row=row, col=col)
        n = i + 1
        fig.update_xaxes(visible=False, range=[-half, half], row=row, col=col)
        fig.update_yaxes(
            visible=False, range=[-half, half], scaleanchor=f"x{n if n > 1 else ''}",
            scaleratio=1, row=row, col=col,
        )  # fmt: skip
    fig.update_annotations(font=dict(size=11, color=TEXT))
    fig.update_layout(
        height=rows * row_height,
        margin=dict(l=0, r=0, t=24, b=0),
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        font=dict(color=TEXT, size=10),
        showlegend=False,
    )
    return fig


def track_log_prob_figure(
    boxes: pd.DataFrame, *, frame: int | None = None, height: int = 240
) -> go.Figure:
    """One track's log p frame by frame, its median, and the boxes that fall far below it.

    Args:
        boxes: the track's boxes with ``frame_index``, ``log_prob``,
            ``track_median_log_prob``, ``box_in_track`` and ``flagged``
            (``rem_core.analysis.boxes_to_recheck``'s columns); ``label_noise`` and
            ``noise_kind`` when they are ground truth (label-noise boxes are ringed).
        frame: the frame shown beside it (a vertical line), if any.
        height: pixels.
    """
    missing = [c for c in ("frame_index", "log_prob", "box_in_track", "flagged") if c not in boxes]
    if missing:
        raise InputError(f"boxes: missing column(s) {', '.join(missing)}")
    b = boxes.sort_values("frame_index")
    x = b["frame_index"].to_numpy()
    units = b["box_in_track"].to_numpy(np.float64)
    hover = [
        f"frame {f}<br>log p {lp:.2f}<br>{u:.1f} units below the track" if np.isfinite(u)
        else f"frame {f}<br>log p {lp:.2f}"
        for f, lp, u in zip(x, b["log_prob"], units, strict=True)
    ]  # fmt: skip
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=b["log_prob"],
            mode="lines+markers",
            name="log p",
            line=dict(color="#4c9be8"),
            marker=dict(size=6),
            hovertext=hover,
            hoverinfo="text",
        )  # fmt: skip
    )
    median = b["track_median_log_prob"].dropna() if "track_median_log_prob" in b else []
    if len(median):
        fig.add_hline(y=float(median.iloc[0]), line=dict(color=TEXT, dash="dot", width=1),
                      annotation_text="track median", annotation_font_color=TEXT)  # fmt: skip
    flagged = b["flagged"].to_numpy(bool)
    if flagged.any():
        fig.add_trace(
            go.Scatter(
                x=x[flagged],
                y=b["log_prob"].to_numpy()[flagged],
                mode="markers",
                name="to re-check",
                marker=dict(symbol="x", size=12, color=RARE_VEHICLE_COLOR),
                hoverinfo="skip",
            )  # fmt: skip
        )
    if "label_noise" in b and b["label_noise"].any():
        noisy = b["label_noise"].to_numpy(bool)
        kinds = b["noise_kind"].to_numpy()[noisy] if "noise_kind" in b else None
        fig.add_trace(
            go.Scatter(
                x=x[noisy],
                y=b["log_prob"].to_numpy()[noisy],
                mode="markers",
                name="label noise",
                text=kinds,
                hoverinfo="text",
                marker=dict(symbol="circle-open", size=16, color=NOISE_COLOR, line=dict(width=2)),
            )  # fmt: skip
        )
    if frame is not None:
        fig.add_vline(x=frame, line=dict(color=HIGHLIGHT_COLOR, width=1))
    chart_layout(fig, x_title="frame", y_title="log p", height=height)
    fig.update_layout(legend=dict(orientation="h", y=1.15, x=0), margin=dict(t=30))
    return fig
