"""Rare vs hard (paper Fig. 4): rareness is not difficulty.

Detections of the unlabelled pool by rareness (``-log p``) against how hard they are to see
(points in the predicted box, distance, or the ensemble's disagreement), coloured by the
ground truth they lie on. The hard-example filter of M-REM and MD-REM (eqs. 10-11) is drawn
in: REM wants the rare objects on its easy side, not merely the hard ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from pages._pipeline import analysis_config, pool_key, require_members, require_pool
from pages._shared import require_data, run_in_app
from rem_core.geometry import size_subset
from rem_core.mining import easy_filter
from rem_core.viz import DIFFICULTY_AXES, rare_vs_hard_figure

run_in_app()
st.title("Rare vs hard")
st.caption(
    "Each dot is a detection of the unlabelled pool. Hard objects (few points, far away, or "
    "where the ensemble disagrees) are not the same as rare ones (low log p): the "
    "hard-example filter (dashed, the hard side shaded) keeps only easy objects for M-REM "
    "and MD-REM."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
config = analysis_config(data)
pool = require_pool(data, config)
# The variance axis waits for the ensemble members; points and distance are final meanwhile.
axes = list(DIFFICULTY_AXES)
if not require_members(data, config, "The ensemble score variance axis"):
    axes.remove("variance")
c1, c2 = st.columns([3, 1])
x = c1.radio(
    "Difficulty", axes, format_func=DIFFICULTY_AXES.get, horizontal=True, key="hard_x",
)  # fmt: skip
max_points = c2.select_slider(
    "Dots at most", [10_000, 20_000, 50_000, 100_000], 50_000, key="hard_max_points"
)


# --- load ------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def detection_table(pool_key: str, _pool) -> pd.DataFrame:
    det = _pool.detections
    row, _ = _pool.overlap
    hit = row >= 0
    subset = np.full(len(det), "false positive", dtype=object)
    gt = _pool.gt
    subset[hit] = size_subset(
        gt["length"].to_numpy()[row[hit]],
        gt["width"].to_numpy()[row[hit]],
        gt["height"].to_numpy()[row[hit]],
    )
    return pd.DataFrame(
        {
            "rareness": -np.asarray(_pool.log_prob, float),
            "subset": subset,
            "num_points": det["num_points"].to_numpy(),
            "distance": det["distance"].to_numpy(),
            "variance": np.asarray(_pool.variance, float),
        }
    )


table = detection_table(pool_key(data, config), pool)
if table.empty:
    st.info("The unlabelled pool holds no detections.", icon=":material/info:")
    st.stop()

# --- figures ---------------------------------------------------------------------------------
easy = easy_filter(table["num_points"], table["distance"], config.score)
rare = table["rareness"] >= table["rareness"].quantile(0.9)
cols = st.columns(4)
cols[0].metric("Detections", f"{len(table):,}")
cols[1].metric(
    "Easy", f"{easy.mean():.1%}",
    help=f"More than {config.score.min_points} points and closer than "
    f"{config.score.max_distance_m:g} m.",
)  # fmt: skip
cols[2].metric("Rarest 10% that are easy", f"{easy[rare].mean():.1%}")
large = (table["subset"] == "large").to_numpy()
cols[3].metric(
    "Large among the rarest 10%", f"{large[rare].mean():.1%}",
    help=f"Against {large.mean():.1%} of all detections.",
)  # fmt: skip
st.plotly_chart(
    rare_vs_hard_figure(
        table,
        x,
        min_points=config.score.min_points,
        max_distance_m=config.score.max_distance_m,
        max_points=max_points,
    ),
    width="stretch",
    theme=None,
    key="hard_figure",
)
quadrants = pd.crosstab(
    np.where(rare, "rarest 10%", "other 90%"), np.where(easy, "easy", "hard"), margins=True
)
st.markdown("**Detections by rareness and the hard-example filter**")
st.dataframe(quadrants, width="stretch")
