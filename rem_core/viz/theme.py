"""Colours and the dark theme shared by every figure.

Colours are chosen for the figures' own dark background, so they read the same under the
app's light and dark themes. Regular vehicles are drawn in cool blues; the rare families
(large and irregular vehicle subtypes, see ``VEHICLE_SUBTYPES``) in warm or vivid colours.
"""

from __future__ import annotations

import plotly.graph_objects as go

from rem_core.config import SPLITS

__all__ = [
    "BACKGROUND",
    "CLASS_COLORS",
    "GRID",
    "HIGHLIGHT_COLOR",
    "NOISE_COLOR",
    "OTHER_COLOR",
    "RARE_VEHICLE_COLOR",
    "SET_COLORS",
    "SPLIT_ORDER",
    "SUBTYPE_COLORS",
    "TEXT",
    "chart_layout",
]

#: Background of every figure (the dark theme's page colour): LiDAR reads best on dark.
BACKGROUND = "#0e1117"
GRID = "#2a303c"
TEXT = "#e6e9ef"

#: Box colour per class.
CLASS_COLORS: dict[str, str] = {
    "vehicle": "#4c9be8",
    "pedestrian": "#f5a623",
    "cyclist": "#3ddc97",
}

#: Box colour per vehicle subtype (and the other classes' own subtype): cool blues for the
#: regular family, warm colours for large vehicles, violet/lime/cyan for irregular ones.
SUBTYPE_COLORS: dict[str, str] = {
    "sedan": "#4c9be8",
    "hatchback": "#7fb2e5",
    "suv": "#3f72af",
    "pickup": "#5fa8a0",
    "van": "#8e9be0",
    "bus": "#ff4b4b",
    "box_truck": "#ff9f1c",
    "tractor_trailer": "#ffd23f",
    "car_carrier": "#ffb3a7",
    "roof_load": "#b388ff",
    "flatbed_ramp": "#76ff03",
    "microcar": "#18ffff",
    # muted here, so that they do not compete with the rare vehicles
    "pedestrian": "#c8b48a",
    "cyclist": "#8fc9a8",
}

#: Large and irregular vehicles when boxes are coloured by class.
RARE_VEHICLE_COLOR = "#ff5a5f"
#: Colour of any class or subtype missing from the maps.
OTHER_COLOR = "#b0b0b0"
#: Label-noise boxes (dashed).
NOISE_COLOR = "#ff00ff"
#: The highlighted track.
HIGHLIGHT_COLOR = "#ffffff"

#: Order of splits in summaries; unknown splits follow in alphabetical order.
SPLIT_ORDER = SPLITS

#: Colour per out-of-distribution set of ``rem_core.analysis.log_prob_groups`` and per size.
SET_COLORS: dict[str, str] = {
    "validation": "#4c9be8",
    "regular": "#4c9be8",
    "source": "#8e9be0",
    "large": "#ff4b4b",
    "other region": "#ffd23f",
    "pedestrian": "#3ddc97",
}


def chart_layout(
    fig: go.Figure, *, x_title: str, y_title: str, height: int, title: str | None = None
) -> go.Figure:
    """The dark theme of a 2D chart: background, grid, fonts, legend and axis titles."""
    axis = dict(gridcolor=GRID, zerolinecolor=GRID, color=TEXT)
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)) if title else None,
        height=height,
        margin=dict(l=50, r=10, t=40 if title else 30, b=40),
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        font=dict(color=TEXT, size=12),
        legend=dict(bgcolor="rgba(14, 17, 23, 0.7)"),
        hoverlabel=dict(bgcolor="#1f2430", font=dict(color=TEXT)),
        xaxis=dict(title=x_title, **axis),
        yaxis=dict(title=y_title, **axis),
    )
    return fig
