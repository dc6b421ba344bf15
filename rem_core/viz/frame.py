"""What the 3D and bird's-eye views of a LiDAR frame share: points, box traces, layout.

Frames and units follow ``rem_core.schema``: points and boxes are in the vehicle frame
(x forward, y left, z up, metres); boxes are rows of the ``BOXES`` schema (only the
``BOX_COLUMNS`` are required; ``track_id``, ``class``, ``subtype``, ``num_points``,
``distance``, ``label_noise`` and ``noise_kind`` are used when present).

Colours are chosen for the figures' own dark background, so they read the same under the
app's light and dark themes. Regular vehicles are drawn in cool blues with thin lines; the
rare families (large and irregular vehicle subtypes, see ``VEHICLE_SUBTYPES``) in warm or
vivid colours with thicker lines; label-noise boxes in dashed magenta, in a trace of their
own; a highlighted track in thick white on top of everything (:func:`_box_groups`).

The figures themselves are ``rem_core.viz.scene_figure`` (3D) and
``rem_core.viz.bev_figure`` (bird's-eye view).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.config import VEHICLE_SUBTYPES
from rem_core.errors import InputError
from rem_core.geometry import box_corners, size_subset
from rem_core.schema import BOX_COLUMNS
from rem_core.viz import theme

__all__ = ["DISPLAY_POINTS", "box_edges", "decimate_points", "display_columns"]

# Points drawn in a 3D view unless asked otherwise: in Chromium's software WebGL (no GPU), a
# frame of the demo world drew in about 0.5 s at 15k points and 0.8 s at 20k (squares); the
# former default, 60k as circles, took 3 s.
DISPLAY_POINTS = 15_000

ColorBy = Literal["class", "subtype"]
PointColor = Literal["height", "intensity"]
View = Literal["3d", "bev"]

# Points are drawn in a neutral grey ramp so that coloured boxes stand out on them.
_POINT_SCALE = [[0.0, "#3a3f4b"], [0.5, "#8a909c"], [1.0, "#f2f2f2"]]
_HEIGHT_RANGE_M = (-0.2, 4.0)

# Scatter3d draws every marker as a small glyph mesh; in Chromium's software WebGL, squares
# drew in half the time of circles (60k points: 1.0 s against 2.0 s), and look alike at this size.
_POINT_SYMBOL = "square"

# Line widths per view, per kind of box group and of the ego marker.
_WIDTH: dict[View, dict[str, float]] = {
    "3d": {"regular": 3.0, "rare": 5.0, "noise": 5.0, "highlight": 9.0, "ego": 4},
    "bev": {"regular": 1.5, "rare": 2.5, "noise": 2.0, "highlight": 3.5, "ego": 1.5},
}

# Edges of a box as pairs of corner indices of ``box_corners``: corner ``4*i + 2*j + k`` has
# signs ``(±x, ±y, ±z)[i, j, k]``, so an edge joins corners differing in one bit.
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


@dataclass(frozen=True)
class _Group:
    """Boxes drawn as one trace."""

    name: str
    color: str
    kind: Literal["regular", "rare", "noise", "highlight"]
    rows: np.ndarray  # (M,) int64 row positions in the boxes table


def display_columns(points: np.ndarray, columns: int = 3) -> list[np.ndarray]:
    """The first ``columns`` columns of ``points`` as contiguous float32 arrays, for plotly.

    Plotly sends numpy arrays to the browser as base64 typed arrays (``{"dtype": "f4",
    "bdata": ...}``), float32 at 4 bytes a value, where a list would be JSON text.

    Example:
        >>> [c.dtype.name for c in display_columns(np.zeros((5, 4)), 3)]
        ['float32', 'float32', 'float32']
    """
    return [np.ascontiguousarray(points[:, i], dtype=np.float32) for i in range(columns)]


def decimate_points(points: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` rows of ``points``, the same rows for the same input.

    A seeded random subset rather than a stride: LiDAR points are stored ring by ring, so a
    stride would drop whole beams or azimuth sectors.

    Args:
        points: ``(N, D)`` array (any dtype), e.g. ``x, y, z, intensity``.
        max_points: the cap, >= 0.
        seed: seed of the subset.

    Returns:
        ``(min(N, max_points), D)`` rows of ``points`` in their original order.

    Example:
        >>> decimate_points(np.zeros((10, 4)), 3).shape
        (3, 4)
    """
    if max_points < 0:
        raise InputError(f"max_points must be >= 0, got {max_points}")
    if len(points) <= max_points:
        return points
    rows = np.random.default_rng(seed).choice(len(points), size=max_points, replace=False)
    return points[np.sort(rows)]


def box_edges(boxes: np.ndarray) -> np.ndarray:
    """The 12 edges of each box as line segments.

    Args:
        boxes: ``(N, 7)`` boxes (``BOX_COLUMNS``), metres and radians.

    Returns:
        ``(N, 12, 2, 3)`` float64 segment end points in the boxes' frame.
    """
    return box_corners(boxes)[:, _EDGES]


def _check_points(points: np.ndarray | None) -> np.ndarray:
    if points is None:
        return np.zeros((0, 4), np.float32)
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise InputError(f"points must be an (N, >=3) array of x, y, z, got shape {points.shape}")
    return points


def _check_boxes(boxes: pd.DataFrame | None) -> pd.DataFrame:
    if boxes is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in BOX_COLUMNS})
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise InputError(f"boxes table is missing column(s) {', '.join(missing)}")
    return boxes.reset_index(drop=True)


def _color_key(boxes: pd.DataFrame, color_by: ColorBy) -> tuple[np.ndarray, dict[str, str]]:
    if color_by not in ("class", "subtype"):
        raise InputError(f"color_by must be 'class' or 'subtype', got {color_by!r}")
    if color_by == "subtype" and "subtype" in boxes.columns:
        return boxes["subtype"].astype(str).to_numpy(), theme.SUBTYPE_COLORS
    if "class" in boxes.columns:
        return boxes["class"].astype(str).to_numpy(), theme.CLASS_COLORS
    return np.full(len(boxes), "object"), {}


def _is_rare(boxes: pd.DataFrame) -> np.ndarray:
    """Boxes of a large or irregular vehicle subtype, or of a large size."""
    rare = np.zeros(len(boxes), bool)
    if "subtype" in boxes.columns:
        family = boxes["subtype"].astype(str).map(VEHICLE_SUBTYPES).fillna("")
        rare |= family.isin(["large", "irregular"]).to_numpy()
    if "class" in boxes.columns and len(boxes):
        vehicle = (boxes["class"] == "vehicle").to_numpy()
        large = size_subset(boxes["length"], boxes["width"], boxes["height"]) == "large"
        rare |= vehicle & large
    return rare


def _box_groups(
    boxes: pd.DataFrame, color_by: ColorBy, highlight_track: str | None
) -> list[_Group]:
    """Boxes split into traces: one per colour, then label noise, then the highlighted track."""
    keys, colors = _color_key(boxes, color_by)
    n = len(boxes)
    noise = (
        boxes["label_noise"].fillna(False).to_numpy(bool)
        if "label_noise" in boxes.columns
        else np.zeros(n, bool)
    )
    highlight = np.zeros(n, bool)
    if highlight_track is not None and "track_id" in boxes.columns:
        highlight = (boxes["track_id"].astype(str) == str(highlight_track)).to_numpy()
    noise = noise & ~highlight
    plain = ~(noise | highlight)
    rare = _is_rare(boxes)

    # rare boxes get their own, thicker trace even when they share a colour (class mode)
    present = set(keys[plain].tolist())
    order = [k for k in colors if k in present] + sorted(present - set(colors))
    groups = []
    for key in order:
        for is_rare in (False, True):
            rows = np.flatnonzero(plain & (keys == key) & (rare == is_rare))
            if len(rows) == 0:
                continue
            name, color = key.replace("_", " "), colors.get(key, theme.OTHER_COLOR)
            if is_rare and color_by == "class":
                name, color = f"large/irregular {name}", theme.RARE_VEHICLE_COLOR
            elif is_rare and VEHICLE_SUBTYPES.get(key) not in ("large", "irregular"):
                name += " (large)"
            kind: Literal["regular", "rare"] = "rare" if is_rare else "regular"
            groups.append(_Group(name, color, kind, rows))
    if noise.any():
        groups.append(_Group("label noise", theme.NOISE_COLOR, "noise", np.flatnonzero(noise)))
    if highlight.any():
        name = f"track {highlight_track}"
        groups.append(_Group(name, theme.HIGHLIGHT_COLOR, "highlight", np.flatnonzero(highlight)))
    return groups


def _box_traces(
    boxes: pd.DataFrame, color_by: ColorBy, highlight_track: str | None, view: View
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """The box groups (:func:`_box_groups`) with what their line traces in ``view`` share.

    Yields:
        Per group: its boxes ``(M, 7)`` float64 (``BOX_COLUMNS``), their ``(M,)`` hover
        labels, and the trace's keywords: name, line style, hover template and
        ``meta={"kind": "boxes", "group": ..., "boxes": M}``.
    """
    array = boxes[BOX_COLUMNS].to_numpy(np.float64)
    hover = np.array(_hover_text(boxes), dtype=object)
    for group in _box_groups(boxes, color_by, highlight_track):
        style = dict(
            mode="lines",
            name=f"{group.name} ({len(group.rows)})",
            line=dict(
                color=group.color,
                width=_WIDTH[view][group.kind],
                dash="dash" if group.kind == "noise" else "solid",
            ),
            hovertemplate="%{text}<extra></extra>",
            meta={"kind": "boxes", "group": group.name, "boxes": len(group.rows)},
        )
        yield array[group.rows], hover[group.rows], style


def _hover_text(boxes: pd.DataFrame) -> list[str]:
    """One hover label per box: track, class, subtype, points and distance."""

    def column(name: str, default: object = "") -> list:
        return boxes[name].tolist() if name in boxes.columns else [default] * len(boxes)

    texts = []
    for track, cls, subtype, pts, dist, noise, kind in zip(
        column("track_id", "?"),
        column("class", "?"),
        column("subtype", "?"),
        column("num_points", None),
        column("distance", None),
        column("label_noise", False),
        column("noise_kind"),
        strict=True,
    ):
        lines = [f"<b>track {track}</b>", f"{cls} / {str(subtype).replace('_', ' ')}"]
        if pts is not None:
            lines.append(f"{int(pts)} points")
        if dist is not None:
            lines.append(f"{float(dist):.1f} m away")
        if noise:
            lines.append(f"label noise{f': {kind}' if kind else ''}")
        texts.append("<br>".join(lines))
    return texts


def _with_gaps(segments: np.ndarray) -> np.ndarray:
    """``(S, K, D)`` polylines as one ``(S * (K + 1), D)`` object array, None between them."""
    s, k, d = segments.shape
    out = np.full((s, k + 1, d), None, dtype=object)
    out[:, :k] = segments
    return out.reshape(-1, d)


def _point_colors(points: np.ndarray, point_color: PointColor) -> tuple[np.ndarray, tuple, str]:
    if point_color == "height":
        return np.ascontiguousarray(points[:, 2], np.float32), _HEIGHT_RANGE_M, "height (m)"
    if point_color == "intensity":
        if points.shape[1] < 4:
            raise InputError("point_color='intensity' needs (N, 4) points with an intensity column")
        values = np.ascontiguousarray(points[:, 3], np.float32)
        top = float(np.percentile(values, 99)) if len(values) else 1.0
        return values, (0.0, max(top, 1e-3)), "intensity"
    raise InputError(f"point_color must be 'height' or 'intensity', got {point_color!r}")


def _ego_trace(view: View) -> go.Scatter3d | go.Scatter:
    """The ego marker: a closed triangle on the ground at the origin, pointing forward (+x),
    outlined in 3D, filled in the bird's-eye view (vehicle y across, x up)."""
    ego = np.array([[2.5, 0.0, 0.0], [-1.5, 1.2, 0.0], [-1.5, -1.2, 0.0], [2.5, 0.0, 0.0]])
    line = dict(color=theme.HIGHLIGHT_COLOR, width=_WIDTH[view]["ego"])
    style = dict(mode="lines", name="ego", line=line, hoverinfo="name", showlegend=False)
    if view == "bev":
        return go.Scatter(x=ego[:, 1], y=ego[:, 0], fill="toself", **style)
    return go.Scatter3d(x=ego[:, 0], y=ego[:, 1], z=ego[:, 2], **style)


def _across_extent(points: np.ndarray, extent_m: float) -> float:
    """Half-width of the view across (y), metres: fitted to the points, a multiple of 10 m."""
    if len(points) == 0:
        return extent_m
    near = np.abs(points[:, 0]) <= extent_m
    reach = float(np.percentile(np.abs(points[near, 1]), 99.5)) if near.any() else extent_m
    return float(min(extent_m, max(20.0, np.ceil((reach + 5.0) / 10.0) * 10.0)))


def _dark_layout(fig: go.Figure, height: int, show_legend: bool) -> None:
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=30, b=0),
        paper_bgcolor=theme.BACKGROUND,
        plot_bgcolor=theme.BACKGROUND,
        font=dict(color=theme.TEXT, size=12),
        showlegend=show_legend,
        legend=dict(
            orientation="h",
            yanchor="bottom",
            y=0.0,
            xanchor="left",
            x=0.0,
            bgcolor="rgba(14, 17, 23, 0.7)",
            itemsizing="constant",
        ),
        hoverlabel=dict(bgcolor="#1f2430", font=dict(color=theme.TEXT)),
        # keep zoom and camera while the user steps through frames
        uirevision="rem-scene",
    )
