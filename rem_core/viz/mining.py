"""Figures of mining: what each selection method mined, side by side (paper Table 1)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from rem_core.errors import InputError
from rem_core.viz.theme import chart_layout

__all__ = ["SHARES", "composition_figure"]

#: Shares of a composition table drawn as bars: column -> (label, colour).
SHARES: dict[str, tuple[str, str]] = {
    "large_share": ("Large vehicles (tracks)", "#ff4b4b"),
    "irregular_share": ("irregular subtypes (tracks)", "#b388ff"),
    "label_noise_share": ("label noise (boxes)", "#ff00ff"),
    "hard_share": ("hard: few points or far (boxes)", "#8a909c"),
}


def composition_figure(table: pd.DataFrame, *, height: int = 380) -> go.Figure:
    """Grouped bars of the shares of each method's selection, in percent.

    Args:
        table: a ``composition_table`` (one row per method; a ``"pool"`` row is drawn as
            the first group, the reference).
        height: figure height in pixels.

    Returns:
        One bar trace per share in ``SHARES``; x is the method.
    """
    missing = [c for c in ["method", *SHARES] if c not in table.columns]
    if missing:
        raise InputError(f"table: missing columns {missing} (see composition_table)")
    methods = table["method"].str.replace("_", "-")
    fig = go.Figure()
    for column, (label, color) in SHARES.items():
        fig.add_trace(
            go.Bar(
                x=methods,
                y=table[column] * 100,
                name=label,
                marker_color=color,
                hovertemplate="%{x}: %{y:.1f}%<extra>" + label + "</extra>",
            )
        )
    chart_layout(fig, x_title="method", y_title="% of the selection", height=height)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.1))
    return fig
