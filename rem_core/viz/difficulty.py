"""Rare against hard (paper Fig. 4): detections by rareness and by how hard they are to see."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rem_core.errors import InputError
from rem_core.viz.theme import OTHER_COLOR, SET_COLORS, TEXT, chart_layout

__all__ = ["DIFFICULTY_AXES", "SUBSET_COLORS", "rare_vs_hard_figure"]

Difficulty = Literal["num_points", "distance", "variance"]

#: Difficulty columns and their axis titles.
DIFFICULTY_AXES: dict[str, str] = {
    "num_points": "points in the predicted box (log scale)",
    "distance": "distance from the sensor (m)",
    "variance": "ensemble score variance",
}

#: Colour per subset of the ground truth a detection lies on.
SUBSET_COLORS: dict[str, str] = {
    "regular": SET_COLORS["regular"],
    "large": SET_COLORS["large"],
    "small": "#3ddc97",
    "false positive": OTHER_COLOR,
}


def rare_vs_hard_figure(
    table: pd.DataFrame,
    x: Difficulty = "num_points",
    *,
    min_points: int = 200,
    max_distance_m: float = 50.0,
    max_points: int = 50_000,
    seed: int = 0,
    height: int = 480,
) -> go.Figure:
    """Detections scattered by rareness (y) against a difficulty (x), coloured by subset.

    Args:
        table: one row per detection: ``rareness`` (``-log p``), ``subset`` (``regular``,
            ``large``, ``small`` or ``false positive``) and the column named by ``x``.
        x: the difficulty on the x axis: ``num_points``, ``distance`` or ``variance``.
        min_points, max_distance_m: the hard-example filter (eqs. 10-11), drawn as a line on
            the axis it applies to, with the hard side shaded.
        max_points: at most this many markers (WebGL); every non-regular detection is kept
            and regular ones are sampled (seeded).
        seed: seed of the sampling.
        height: figure height in pixels.

    Returns:
        One ``Scattergl`` trace per subset present; the legend counts each subset in full.
    """
    if x not in DIFFICULTY_AXES:
        raise InputError(f"x: must be one of {', '.join(DIFFICULTY_AXES)}, got {x!r}")
    for column in ("rareness", "subset", x):
        if column not in table.columns:
            raise InputError(f"table: missing column {column!r}")
    rows = table[np.isfinite(table["rareness"].to_numpy(float))]
    keep = np.ones(len(rows), bool)
    regular = (rows["subset"] == "regular").to_numpy()
    if len(rows) > max_points:
        budget = max(max_points - int((~regular).sum()), 0)
        picked = np.random.default_rng(seed).permutation(np.flatnonzero(regular))[:budget]
        keep = ~regular
        keep[picked] = True
    fig = go.Figure()
    for subset, color in SUBSET_COLORS.items():
        everything = rows[rows["subset"] == subset]
        shown = rows[keep & (rows["subset"] == subset).to_numpy()]
        if everything.empty:
            continue
        xs = shown[x].to_numpy(float)
        if x == "num_points":
            xs = np.maximum(xs, 1.0)  # a log axis cannot show 0 points
        fig.add_trace(
            go.Scattergl(
                x=xs,
                y=shown["rareness"],
                mode="markers",
                name=f"{subset} ({len(everything):,})",
                marker=dict(
                    color=color, size=4 if subset in ("regular", "false positive") else 6,
                    opacity=0.5 if subset in ("regular", "false positive") else 0.9,
                ),
                hovertemplate="%{x:.3g}, -log p %{y:.1f}<extra>" + subset + "</extra>",
            )
        )  # fmt: skip
    chart_layout(fig, x_title=DIFFICULTY_AXES[x], y_title="rareness (−log p)", height=height)
    fig.update_xaxes(type="log" if x == "num_points" else "linear")
    shade = dict(fillcolor="rgba(255, 255, 255, 0.06)", line_width=0, layer="below")
    line = dict(color="#ffd23f", width=2, dash="dash")
    if x == "num_points":
        # the log axis takes positions as powers of ten
        fig.add_vrect(x0=0, x1=np.log10(max(min_points, 1)), **shade)
        fig.add_vline(
            x=np.log10(max(min_points, 1)), line=line, annotation_text=f"{min_points} points",
            annotation_font_color=TEXT,
        )  # fmt: skip
    elif x == "distance":
        far = float(rows[x].max()) if len(rows) else 0.0
        fig.add_vrect(x0=max_distance_m, x1=max(far, max_distance_m) + 1, **shade)
        fig.add_vline(
            x=max_distance_m, line=line, annotation_text=f"{max_distance_m:g} m",
            annotation_font_color=TEXT,
        )  # fmt: skip
    return fig
