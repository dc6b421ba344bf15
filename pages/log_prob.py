"""Log-probability histograms (paper Fig. 6): does the density model find the rare sets rare?

Log-density of every ground-truth object's features, overlaid by size (Regular vs Large),
by split (source vs validation) and by out-of-distribution set (Large vehicles, the other
region's vehicles, pedestrians seen through the vehicle detector), with the AUROC of
``-log p`` separating each set from the validation split's regular vehicles. Then "rare
beyond size" (paper Fig. 5, ``rem_core.analysis.rare_groups``): per rare subtype and kind of label
noise, the AUROC of rareness next to that of a size-only density, and the share of label
noise among the rarest 5% of vehicle boxes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._pipeline import (
    ESTIMATOR_LABELS,
    ESTIMATOR_NAMES,
    analysis_config,
    app_config,
    require_detections,
    require_rareness,
    status,
)
from pages._shared import require_data, run_in_app
from rem_core.analysis import (
    RareGroups,
    RarestNoise,
    label_noise_in_rarest,
    log_prob_groups,
    ood_aurocs,
    rare_group_aurocs,
    size_log_prob,
    size_train_boxes,
)
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
# The sidebar's model by default; another computed one while it is not (the fast first
# density while the pipeline refines), and back to the sidebar's once it is published,
# unless the reader picked a model here themselves.
preferred = state.get("app_estimator", "ffjord")
state.setdefault("logp_estimator", preferred)
if state.get("logp_fallback") and preferred in computed:
    state["logp_estimator"] = preferred
if computed and state["logp_estimator"] not in computed:
    state["logp_estimator"] = computed[0]
state["logp_fallback"] = state["logp_estimator"] != preferred and preferred not in computed
if state["logp_fallback"]:
    analysis_config(data)  # says which model the page shows until the sidebar's is in
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


@st.cache_data(show_spinner=False, max_entries=8)
def rare_groups(
    rareness_path: str, fit_splits: tuple[str, ...], _det, _run, _splits: pd.Series
) -> tuple[RareGroups, RarestNoise] | None:
    """Rare groups and label noise among the rarest 5%; None without regular vehicles."""
    train = size_train_boxes(_det.gt, _splits, fit_splits)
    if len(train) < 4:
        return None
    size_lp = size_log_prob(train, _det.gt)
    return (
        rare_group_aurocs(_det.gt, _run.gt_log_prob, size_lp, _splits),
        label_noise_in_rarest(_det.gt, _run.gt_log_prob, 0.05, _splits),
    )


splits = data.dataset.segments.set_index("segment_id")["split"]
table = groups(str(run.path), det, run, splits)
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

# --- rare beyond size ------------------------------------------------------------------------
st.subheader("Rare beyond size")
found = rare_groups(str(run.path), tuple(config.rareness.fit_splits), det, run, splits)
if found is None or found[0].table.empty:
    st.info(
        "No rare groups to measure: this data set holds no vehicle subtypes the app knows "
        "(regular, large or irregular) and no label noise.",
        icon=":material/info:",
    )
    st.stop()
rare, noise = found
t = rare.table[rare.table["n"] > 0]  # groups seen only in other splits: nothing to measure
st.caption(
    f"Each rare group's boxes against {rare.n_reference:,} regular, non-noisy vehicle boxes "
    f"of the {' and '.join(rare.eval_splits)} splits: the AUROC of −log p (D-REM) next to "
    "that of a size-only rareness, −log p of a Gaussian on log length, width and height "
    "fitted on the training pool's regular vehicles. Groups of fewer than "
    f"{rare.min_boxes} boxes get no AUROC. *Regular size*: the group's median length, width "
    "and height each lie within the regular boxes' 1st–99th percentile."
)
st.dataframe(
    t[["group", "family", "n", "d_rem", "size_only", "regular_size"]],
    hide_index=True,
    width="stretch",
    key="logp_rare_groups",
    column_config={
        "n": st.column_config.NumberColumn("boxes", format="%d"),
        "d_rem": st.column_config.NumberColumn("D-REM AUROC", format="%.3f"),
        "size_only": st.column_config.NumberColumn("size-only AUROC", format="%.3f"),
        "regular_size": st.column_config.CheckboxColumn("regular size?"),
    },
)
beyond = rare.beyond_size(0.1)
measured = t.dropna(subset=["d_rem", "size_only"])
if beyond:
    verdict = (
        f"Rareness finds {', '.join(beyond)} where a size rule would not (D-REM AUROC at "
        "least 0.1 above size-only)."
    )
elif len(measured):
    verdict = (
        "A size rule finds every measured group about as well as rareness or better (no "
        "D-REM AUROC 0.1 above size-only): here, what is rare is unusually sized."
    )
else:
    verdict = "No group holds enough boxes to measure."
if noise.n_noise:
    verdict += (
        f" Of the {noise.n_noise:,} label-noise vehicle boxes, "
        f"{noise.noise_in_rarest:.0%} are among the rarest 5% of vehicle boxes (the paper "
        f"finds at least half; 5% at chance); they make up {noise.rarest_that_are_noise:.1%} "
        f"of the rarest 5% ({noise.base_rate:.1%} of all vehicle boxes)."
    )
st.markdown(verdict)
