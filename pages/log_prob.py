"""Log-probability histograms (paper Fig. 6): does the density model find the rare sets rare?

Log-density of every ground-truth object's features, overlaid by size (Regular vs Large),
by split (source vs validation) and by out-of-distribution set (Large vehicles, the other
region's vehicles, pedestrians seen through the vehicle detector), with the AUROC of
``-log p`` separating each set from the validation split's regular vehicles.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._pipeline import (
    ESTIMATOR_LABELS,
    ESTIMATOR_NAMES,
    app_config,
    require_detections,
    require_rareness,
    status,
)
from pages._shared import require_data, run_in_app
from rem_core.analysis import log_prob_groups, ood_aurocs
from rem_core.viz import log_prob_histogram

VIEWS = {"set": "Out-of-distribution sets", "size": "Size: Regular vs Large", "split": "Split"}
SET_LABELS = {
    "large": "Large vehicles",
    "other region": "Vehicles of the other region (rain)",
    "pedestrian": "Pedestrians",
}
state = st.session_state

run_in_app()
st.title("Log-probability histograms")
st.caption(
    "How likely the density model finds each ground-truth object's detector features. "
    "Rare sets should sit to the left (lower log p); the AUROC says how well −log p "
    "separates a set from the validation split's regular vehicles (1: perfectly, 0.5: not "
    "at all)."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
computed = [n for n in ESTIMATOR_NAMES if status(data, app_config(data, estimator=n))["rareness"]]
state.setdefault("logp_estimator", state.get("app_estimator", "ffjord"))
if computed and state["logp_estimator"] not in computed:
    state["logp_estimator"] = computed[0]
c1, c2, c3 = st.columns([2, 2, 1])
estimator = c1.selectbox(
    "Density model",
    computed or [state["logp_estimator"]],
    format_func=ESTIMATOR_LABELS.get,
    key="logp_estimator",
    help="Only the models computed for this data set are listed; pick another in the "
    "sidebar and run the pipeline on Home to add it.",
)
by = c2.radio("Compare", list(VIEWS), format_func=VIEWS.get, horizontal=True, key="logp_by")
bins = c3.select_slider("Bins", [20, 40, 60, 100, 150], 60, key="logp_bins")
config = app_config(data, estimator=estimator)
det = require_detections(data, config)
run = require_rareness(data, config)


# --- load ------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def groups(rareness_path: str, _det, _run, _splits: pd.Series) -> pd.DataFrame:
    return log_prob_groups(_det.gt, _run.gt_log_prob, _splits)


table = groups(str(run.path), det, run, data.dataset.segments.set_index("segment_id")["split"])
undescribed = int(table["log_prob"].isna().sum())
if undescribed:
    table = table.dropna(subset=["log_prob"])
    st.caption(
        f"{undescribed:,} of {undescribed + len(table):,} ground-truth objects have no log p: "
        "your detector's features describe only what it detected, and a box takes the "
        "features of the detection overlapping it best, so missed objects are left out."
    )

# --- figures ---------------------------------------------------------------------------------
aurocs = ood_aurocs(table)
cols = st.columns(len(aurocs))
for col, (name, value) in zip(cols, aurocs.items(), strict=True):
    col.metric(
        f"AUROC, {SET_LABELS[name]}",
        "–" if value != value else f"{value:.3f}",
        help="Area under the ROC curve of −log p against the validation split's regular "
        "vehicles; – when the data set holds no such objects.",
    )
figure = log_prob_histogram(table, by, bins=bins, height=420)
if not figure.data:
    st.info("No objects in these groups for this data set.", icon=":material/info:")
else:
    st.plotly_chart(figure, width="stretch", theme=None, key="logp_figure")
counts = (
    table.groupby(["class", "split", "size"], dropna=False)["log_prob"]
    .agg(objects="size", mean_log_p="mean", median_log_p="median")
    .reset_index()
)
with st.expander("Counts and means by class, split and size"):
    st.dataframe(counts, hide_index=True, width="stretch")
