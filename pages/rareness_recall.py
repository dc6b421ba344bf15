"""Rareness vs recall (paper Fig. 2): do rarer objects get detected less often?

Ground-truth objects of a split are sorted by rareness (``-log p`` of their ROI-pooled
features) into percentile bins; the main detector's recall in each bin is drawn for every
density model computed so far, with the rank correlation between rareness and recall.
"""

from __future__ import annotations

import streamlit as st

from pages._pipeline import (
    ESTIMATOR_LABELS,
    ESTIMATOR_NAMES,
    app_config,
    require_detections,
    status,
)
from pages._shared import count, require_data, run_in_app
from rem_core.analysis import RecallCurve, recall_by_rareness
from rem_core.evaluation import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.experiment import EXPERIMENT_ROWS, plan_experiment, read_experiment
from rem_core.pipeline import feature_source, load_rareness
from rem_core.viz import mean_recall_curve, recall_figure

SPLITS = ("validation", "source", "unlabelled", "ood")

run_in_app()
st.title("Rareness vs recall")
st.caption(
    "Ground-truth vehicles sorted by rareness (−log p of their detector features) into "
    "percentile bins, rarest on the right, and the share of each bin the main detector "
    f"finds (a match at the chosen IoU, scoring at least the threshold; boxes with fewer than "
    f"{LEVEL_1_MIN_POINTS} points are not counted). A falling curve is the paper's Fig. 2: "
    "rare objects are the ones detectors miss."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
config = app_config(data)
det = require_detections(data, config)
if not feature_source(det.source_name).own_gt_features:
    st.info(
        "Recall by rareness needs the rareness of every object, found or missed. This data "
        "set's features come from your detector (`rem import detections --features`), "
        "which described only the objects it detected: a missed object has no features, "
        "so recall against rareness would be 1 by construction. Import the detections "
        "without `--features` (geometric descriptors describe every box) to see this curve.",
        icon=":material/info:",
    )
    st.stop()
available = [s for s in SPLITS if (data.dataset.segments["split"] == s).any()]
c1, c2, c3, c4 = st.columns(4)
split = c1.selectbox("Split", available, key="recall_split")
bin_width = c2.select_slider("Bin width (percentiles)", [1, 2, 5, 10], 2, key="recall_bin_width")
iou = c3.selectbox(
    "IoU", ["3D IoU 0.5", "BEV IoU 0.5", "3D IoU 0.7"], key="recall_iou",
    help="Waymo's vehicle AP uses 3D IoU 0.7; the paper's figures use 0.5.",
)  # fmt: skip
threshold = c4.slider(
    "Score threshold", 0.0, 0.9, float(config.rareness.min_score), 0.05, key="recall_threshold"
)
kind, cut = ("bev" if iou.startswith("BEV") else "3d"), float(iou.split()[-1])


# --- load ------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=16)
def evaluation(det_path: str, split: str, kind: str, cut: float, _det, _segments):
    ids = set(_segments.loc[_segments["split"] == split, "segment_id"])
    gt_rows = _det.gt.index[_det.gt["segment_id"].isin(ids)].to_numpy()
    preds = _det.detections[_det.detections["segment_id"].isin(ids)].reset_index(drop=True)
    gt = _det.gt.loc[gt_rows].reset_index(drop=True)
    result = evaluate_detections(
        preds, gt, iou_threshold=cut, iou=kind, min_points=LEVEL_1_MIN_POINTS
    )
    return result, gt_rows[result.gt["gt_index"].to_numpy()]


@st.cache_resource(show_spinner=False, max_entries=8)
def gt_log_prob(path: str):
    return load_rareness(path).gt_log_prob


result, rows = evaluation(str(det.path), split, kind, cut, det, data.dataset.segments)
if len(rows) == 0:
    st.info(f"The {split} split holds no vehicle with enough points.", icon=":material/info:")
    st.stop()
curves: dict[str, RecallCurve] = {}
missing = []
for name in ESTIMATOR_NAMES:
    state = status(data, app_config(data, estimator=name))
    if not state["rareness"]:
        missing.append(ESTIMATOR_LABELS[name])
        continue
    rareness = -gt_log_prob(str(state["rareness_path"]))[rows]
    curves[ESTIMATOR_LABELS[name]] = recall_by_rareness(
        result, rareness, bin_width=bin_width, score_threshold=threshold
    )
if not curves:
    st.info(
        "No density model is computed yet for this data set: run the pipeline on **Home**.",
        icon=":material/info:",
    )
    st.page_link("pages/home.py", label="Home", icon=":material/home:")
    st.stop()

# --- figures ---------------------------------------------------------------------------------
found = (result.gt["matched"] & (result.gt["score"] >= threshold)).to_numpy()
cols = st.columns(len(curves) + 1)
cols[0].metric("Recall, all", f"{found.mean():.1%}", help=count(len(found), "object"))
for col, (name, curve) in zip(cols[1:], curves.items(), strict=True):
    col.metric(
        f"Spearman, {name.split(' (')[0]}",
        "–" if curve.spearman != curve.spearman else f"{curve.spearman:+.2f}",
        help="Rank correlation between a bin's rareness and its recall: negative when "
        "rarer objects are found less often.",
    )
st.plotly_chart(recall_figure(curves), width="stretch", theme=None, key="recall_figure")
if missing:
    st.caption(
        f"Not computed for this data set: {', '.join(missing)}. Pick one in the sidebar and "
        "run the pipeline on Home to add its curve."
    )
name = st.selectbox("Bins of", list(curves), key="recall_table_of")
st.dataframe(
    curves[name].bins,
    hide_index=True,
    width="stretch",
    column_config={"recall": st.column_config.NumberColumn(format="%.3f")},
)

# --- retrained models (the Experiments page) -------------------------------------------------
plan = plan_experiment(config, data.dataset) if split == "validation" else None
retrained = read_experiment(config, data.dataset, every_seed=True, plan=plan) if plan else None
if retrained is not None:
    st.subheader("After mining and retraining")
    exp = config.experiment
    have = [r for r in EXPERIMENT_ROWS if r in retrained.curves]
    picked = st.multiselect(
        "Retrained models (Experiments page)",
        have,
        default=[r for r in ("partial", "full", "md-rem++") if r in have] or have[:2],
        format_func=lambda r: EXPERIMENT_ROWS[r].label,
        key="recall_retrained",
    )
    if picked:
        shown = {
            f"{EXPERIMENT_ROWS[r].label}, retrained": mean_recall_curve(retrained.curves[r])
            for r in picked
        }
        st.plotly_chart(
            recall_figure(shown), width="stretch", theme=None, key="recall_retrained_figure"
        )
        recipe = plan.config.detector.epochs
        st.caption(
            "Validation vehicles by the rareness the experiment's density model "
            f"({ESTIMATOR_LABELS[config.rareness.estimator]}, on the features of its "
            f"{recipe}-epoch detector) gives them; recall of each retrained detector at "
            f"{exp.iou.upper()} IoU {exp.iou_threshold}, every score, "
            f"{exp.curve_bin_width:g}-percentile bins, counts pooled over its seeds. The "
            "controls above do not apply here."
        )
