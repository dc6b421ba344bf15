"""Mining simulation (paper Tables 1-2): every method under one budget, side by side.

Algorithm 1 runs on the unlabelled pool for each chosen method; the simulated labeller is the
pool's kept-aside ground truth. Moving the budget re-mines at once: rankings are cached per
method, and mining itself takes well under a second.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages._pipeline import analysis_config, pool_key, require_members, require_pool
from pages._shared import count, require_data, run_in_app
from rem_core.config import MINING_METHODS, MiningConfig, ScoreConfig
from rem_core.mining import (
    VARIANCE_METHODS,
    Composition,
    MiningPool,
    MiningResult,
    composition_table,
    describe_pool,
    describe_selection,
    merge_labels,
    mined_boxes,
    mined_tracks,
    rank_detections,
    resolve_budget,
    select_from_pool,
    write_label_set,
    write_mined,
)
from rem_core.pipeline import feature_source
from rem_core.viz import composition_figure

LABELS = {
    "random": "Random",
    "predict_size": "Predict size",
    "ensemble": "Ensemble variance",
    "m_rem": "M-REM",
    "d_rem": "D-REM",
    "md_rem": "MD-REM",
    "oracle_hard": "Oracle hard",
    "oracle_size": "Oracle size",
}
DEFAULT_METHODS = ["random", "ensemble", "m_rem", "d_rem", "md_rem"]
EXPORTS = {  # label -> suffix, MIME type
    "CSV": (".csv", "text/csv"),
    "Parquet": (".parquet", "application/vnd.apache.parquet"),
    "JSON": (".json", "application/json"),
}
state = st.session_state

run_in_app()
st.title("Mining simulation")
st.caption(
    "Algorithm 1 of the paper on the unlabelled pool: pop the rarest detection, have the "
    "labeller check it, label its whole track, drop the detections that touch that track, "
    "repeat until the budget is spent. The pool's ground truth plays the labeller; the "
    "auto-labeller fills in every other track."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
config = analysis_config(data)
pool = require_pool(data, config)
n_tracks = pool.num_tracks
if n_tracks == 0 or len(pool.detections) == 0:
    st.info(
        "The unlabelled pool holds no ground-truth vehicle tracks or no detections: nothing "
        "to mine.",
        icon=":material/info:",
    )
    st.stop()

source = feature_source(config.features.source)
# Without an ensemble every detection's score variance is 0: Ensemble and M-REM would rank
# all detections alike, so they are not picked by default (they can still be chosen).
defaults = [m for m in DEFAULT_METHODS if source.ensemble or m not in ("ensemble", "m_rem")]
# Until the members' scores are in, the methods that read the variance cannot run.
offered = list(MINING_METHODS)
if not require_members(data, config, "Ensemble variance and M-REM"):
    offered = [m for m in offered if m not in VARIANCE_METHODS]
    defaults = [m for m in defaults if m not in VARIANCE_METHODS]
    if any(m in VARIANCE_METHODS for m in st.session_state.get("mining_methods", ())):
        st.session_state["mining_methods"] = [
            m for m in st.session_state["mining_methods"] if m not in VARIANCE_METHODS
        ]
left, middle, right = st.columns([3, 2, 2])
methods = left.multiselect(
    "Methods",
    offered,
    default=defaults,
    format_func=LABELS.get,
    key="mining_methods",
    help="The oracles read the ground truth: upper bounds, not usable methods.",
)
unit = middle.radio(
    "Budget in", ["% of the pool's tracks", "tracks"], horizontal=True, key="mining_unit"
)
if unit == "tracks":
    budget = middle.slider(
        "Budget (tracks)", 0, n_tracks, min(max(1, round(0.03 * n_tracks)), n_tracks),
        key="mining_budget_tracks",
    )  # fmt: skip
else:
    pct = middle.slider("Budget (%)", 0.0, 20.0, 3.0, 0.5, key="mining_budget_pct")
    budget = resolve_budget(f"{pct}%", n_tracks)
rank_by = right.radio(
    "Rank detections by",
    ["track", "detection"],
    format_func={"track": "their track's mean", "detection": "their own value"}.get,
    key="mining_rank_by",
    help="Paper section 4.1: a detection ranks by the mean over its predicted track. "
    "Random and the oracles always rank detection by detection.",
)
fp_costs = right.checkbox(
    "A false positive costs budget", key="mining_fp_costs", help="A check that finds nothing."
)
mining = dataclasses.replace(
    config.mining, budget=budget, rank_by=rank_by, fp_costs_budget=fp_costs
)
st.caption(
    f"Budget: **{count(budget, 'track')}** of {count(n_tracks, 'ground-truth vehicle track')} "
    f"in the pool ({count(len(pool.detections), 'detection')} scoring at least "
    f"{config.rareness.min_score})."
)
if not methods:
    st.info("Pick at least one method.", icon=":material/info:")
    st.stop()
if not source.ensemble and {"ensemble", "m_rem"} & set(methods):
    st.caption(
        f":material/info: The features are {source.label}: one score per "
        "detection and no ensemble, so Ensemble variance and M-REM rank every detection "
        "alike (their variance is 0)."
    )


# --- load: rankings and mined tracks cached per method and settings ---------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def ranking(
    pool_key: str, method: str, rank_by: str, seed: int, score: ScoreConfig, _pool: MiningPool
) -> np.ndarray:
    return rank_detections(_pool, method, score=score, rank_by=rank_by, seed=seed)


@st.cache_data(show_spinner=False, max_entries=128)
def mined(
    pool_key: str, method: str, mining: MiningConfig, score: ScoreConfig, _pool: MiningPool
) -> tuple[MiningResult, Composition]:
    """Algorithm 1's tracks for one method under ``mining``'s budget, and what they hold
    (about 0.2 s a method on the demo pool; the same pool and settings mine the same)."""
    order = ranking(pool_key, method, mining.rank_by, mining.seed, score, _pool)
    result = select_from_pool(_pool, order, mining)
    return result, describe_selection(result, _pool, method, score)


key = pool_key(data, config)
results, rows = {}, [describe_pool(pool, config.score)]
for method in methods:
    results[method], row = mined(key, method, mining, config.score, pool)
    rows.append(row)
table = composition_table(rows)

# --- figures ---------------------------------------------------------------------------------
st.plotly_chart(composition_figure(table), width="stretch", theme=None, key="mining_figure")
shown = table.assign(method=table["method"].map(lambda m: LABELS.get(m, "the whole pool")))
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    column_config={
        "method": "method",
        "large_share": st.column_config.NumberColumn("Large", format="percent"),
        "irregular_share": st.column_config.NumberColumn("irregular", format="percent"),
        "label_noise_share": st.column_config.NumberColumn("label noise", format="percent"),
        "hard_share": st.column_config.NumberColumn("hard boxes", format="percent"),
        "mean_rareness": st.column_config.NumberColumn("mean rareness", format="%.2f"),
        "false_positives": "false positives",
    },
)
if budget > 0 and any(len(r.tracks) < budget for r in results.values()):
    st.warning(
        "Some methods ran out of detections before the budget was spent: the pool's "
        "detections do not reach more tracks.",
        icon=":material/warning:",
    )

st.subheader("The mined tracks")
method = st.selectbox("Method", methods, format_func=LABELS.get, key="mining_show")
result = results[method]
boxes = mined_boxes(result, pool, method)
per_track = mined_tracks(boxes)
if per_track.empty:
    st.info("No track mined at this budget.", icon=":material/info:")
    st.stop()
picked = st.dataframe(
    per_track,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="mining_tracks",
    column_config={
        "length": st.column_config.NumberColumn("length (m)", format="%.1f"),
        "label_noise": "label-noise boxes",
        "rareness": st.column_config.NumberColumn("method value", format="%.3g"),
        "track_rareness": st.column_config.NumberColumn("track -log p", format="%.2f"),
    },
)
chosen = picked.selection.rows if picked is not None else []
if chosen:
    row = per_track.iloc[chosen[0]]
    if st.button(
        f"Open track {row['track_id']} of {row['segment_id']} in the Scene explorer",
        key="mining_open_scene",
    ):
        state["scene_segment"] = row["segment_id"]
        state["scene_frame"] = int(row["first_frame"])
        state["scene_track"] = row["track_id"]
        st.switch_page("pages/scene_explorer.py")


# --- export ----------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=16)
def export_bytes(table: pd.DataFrame, suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_mined(table, Path(tmp) / f"mined{suffix}").read_bytes()


@st.cache_data(show_spinner=False, max_entries=8)
def label_set(
    pool_key: str, method: str, mining: MiningConfig, score: ScoreConfig, _pool: MiningPool,
    _frames: pd.DataFrame,
) -> tuple[bytes, int, int]:  # fmt: skip
    """The merged label set of one method's mined tracks as Waymo ``Objects`` bytes, with
    its human-labelled and auto-labelled box counts."""
    result, _ = mined(pool_key, method, mining, score, _pool)
    labels = merge_labels(result, _pool.gt, _pool.autolabels)
    human = int(np.count_nonzero(labels["source"] == "human"))
    with tempfile.TemporaryDirectory() as tmp:
        payload = write_label_set(labels, _frames, Path(tmp) / "labels.bin").read_bytes()
    return payload, human, len(labels) - human


st.markdown("**Export** the mined list (one row per box; JSON nests boxes under tracks):")
stem = f"mined-{method.replace('_', '-')}-{budget}"
cols = st.columns(len(EXPORTS) + 1)
for col, (label, (suffix, mime)) in zip(cols, EXPORTS.items(), strict=False):
    col.download_button(
        label,
        export_bytes(boxes, suffix),
        file_name=stem + suffix,
        mime=mime,
        key=f"mining_export_{suffix[1:]}",
        icon=":material/download:",
    )
payload, human, auto = label_set(key, method, mining, config.score, pool, data.dataset.frames)
cols[-1].download_button(
    "Label set (Waymo .bin)",
    payload,
    file_name=f"labels-{method.replace('_', '-')}-{budget}.bin",
    mime="application/octet-stream",
    key="mining_export_bin",
    icon=":material/download:",
    help=f"The merged label set: {human:,} human-labelled boxes of the mined tracks and "
    f"{auto:,} auto-labelled boxes of the tracks that do not touch them, as "
    "Waymo metrics_pb2.Objects.",
)
