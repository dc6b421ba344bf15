"""The Rarest tracks page's review sections: the boxes to re-check (rareness along a track,
``rem_core.analysis.box_in_track``) and two runs compared (``rem_core.analysis.compare_runs``).

Both open what a row names in the page's track viewer: a pick sets ``_tracks_open`` to
``(segment_id, track_id, frame)`` (frame -1: the track's best), which the page reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from pages._pipeline import ESTIMATOR_LABELS, require_rareness, status
from pages._shared import OpenData
from rem_core.analysis import RunComparison, compare_runs
from rem_core.config import ESTIMATORS, RemConfig
from rem_core.dataset import Dataset
from rem_core.mining import aggregate_tracks
from rem_core.pipeline import DetectionRun, RarenessRun, with_estimator

__all__ = ["compare_section", "recheck_section"]

state = st.session_state


@st.cache_data(show_spinner=False, max_entries=8)
def recheck(
    rareness_path: str, source: str, split: str, cls: str | None, _boxes, _ds
) -> pd.DataFrame:
    """The scored boxes of the split (and class), most suspect first (``_boxes`` is ranked)."""
    keep = np.isfinite(_boxes["box_in_track"].to_numpy())
    if cls is not None:
        keep &= (_boxes["class"] == cls).to_numpy()
    if split != "all splits":
        keep &= _boxes["segment_id"].isin(_ds.split_ids(split)).to_numpy()
    return _boxes[keep]


@st.cache_data(show_spinner=False, max_entries=8)
def compared(paths: tuple[str, str], shown: tuple, budget: str, _runs, _det, _ds) -> RunComparison:
    """The two runs' rankings of the split's tracks compared (``compare_runs``); ``shown``:
    the page's ``(source, split, class)``."""
    source, split, cls = shown
    boxes = _det.gt if source == "gt" else _det.detections
    keep = np.ones(len(boxes), bool)
    if split != "all splits":
        keep &= boxes["segment_id"].isin(_ds.split_ids(split)).to_numpy()
    if cls is not None:
        keep &= (boxes["class"] == cls).to_numpy()
    tables = [
        aggregate_tracks(boxes[keep], (r.gt_log_prob if source == "gt" else r.log_prob)[keep])
        for r in _runs
    ]
    return compare_runs(*tables, budget=budget)


def _open_moved() -> None:
    """A row of the compared runs' moved tracks picked: the track opens above."""
    rows = state["tracks_moved"].selection.rows
    if rows:
        state["_tracks_open"] = state["_moved_rows"][rows[0]]


def _open_box() -> None:
    """A row of "Boxes to re-check" picked: its track and frame open above."""
    rows = state["tracks_recheck"].selection.rows
    if rows:
        state["_tracks_open"] = state["_recheck_rows"][rows[0]]


def recheck_section(
    run: RarenessRun, source: str, split: str, cls: str | None, boxes: pd.DataFrame, ds: Dataset
) -> None:
    """ "Boxes to re-check": the boxes of the split whose log p falls furthest below their
    own track's; ``boxes``: the page's track boxes with their ``box_in_track`` columns."""
    st.subheader("Boxes to re-check")
    ranked = recheck(str(run.path), source, split, cls, boxes, ds)
    unit = boxes.attrs.get("unit")
    unit_text = f" (one unit: {unit:.2f} nats)" if unit is not None and np.isfinite(unit) else ""
    st.caption(
        "Boxes whose log p falls furthest below the median of their own track, in robust units"
        f"{unit_text}: a bad box in an ordinary track, where global rareness ranks a rare "
        "object's every box first. Select a row to open its track at that frame."
    )
    top = ranked.head(200)
    state["_recheck_rows"] = list(
        zip(
            top["segment_id"],
            top["track_id"].astype(str),
            top["frame_index"].astype(int),
            strict=True,
        )
    )
    recheck_columns = ["segment_id", "track_id", "frame_index", "log_prob", "track_median_log_prob",
                       "box_in_track", "num_points", "distance"]  # fmt: skip
    if source == "gt":
        recheck_columns[2:2] = ["subtype"]
        top = top.assign(noise=np.where(top["label_noise"], "⚠ " + top["noise_kind"], ""))
        recheck_columns.append("noise")
    st.dataframe(
        top[recheck_columns],
        hide_index=True,
        width="stretch",
        height=240,
        on_select=_open_box,
        selection_mode="single-row",
        key="tracks_recheck",
        column_config={
            "frame_index": "frame",
            "log_prob": st.column_config.NumberColumn("log p", format="%.2f"),
            "track_median_log_prob": st.column_config.NumberColumn("track median", format="%.2f"),
            "box_in_track": st.column_config.NumberColumn("units below", format="%.1f"),
            "distance": st.column_config.NumberColumn("distance (m)", format="%.0f"),
            "noise": "label noise",
        },
    )
    flagged_n = int(ranked["flagged"].sum())
    st.caption(
        f"{flagged_n:,} of {len(ranked):,} scored boxes lie at least 3.5 units below their "
        "track (the first 200 shown)."
    )


def compare_section(
    data: OpenData,
    config: RemConfig,
    run: RarenessRun,
    det: DetectionRun,
    ds: Dataset,
    shown: tuple[str, str, str | None],
) -> None:
    """ "Two runs compared": the page's density model against another one computed on the
    same detections; ``shown``: the page's ``(source, split, class)``."""
    source, split, cls = shown
    st.subheader("Two runs compared")
    chosen = config.rareness.estimator
    others = [
        e for e in ESTIMATORS if e != chosen and status(data, with_estimator(config, e))["rareness"]
    ]
    if not others:
        st.caption(
            f"How stable is this ranking? No other density model is computed on these detections: "
            f"pick one in the sidebar and run it from Home, then compare it with "
            f"{ESTIMATOR_LABELS[chosen]} here (or `rem compare-runs`)."
        )
    else:
        k1, k2 = st.columns([2, 3])
        against = k1.selectbox(
            f"{ESTIMATOR_LABELS[chosen]} against",
            others,
            format_func=ESTIMATOR_LABELS.get,
            key="tracks_against",
        )
        other = require_rareness(data, with_estimator(config, against))
        budget = str(config.mining.budget)
        paths = (str(run.path), str(other.path))
        comparison = compared(paths, shown, budget, (run, other), det, ds)
        m1, m2, m3 = k2.columns(3)
        m1.metric("Spearman of track rareness", f"{comparison.spearman:.3f}")
        m2.metric(f"top {comparison.budget:,} overlap (Jaccard)", f"{comparison.top_jaccard:.3f}")
        m3.metric("tracks ranked by both", f"{comparison.n_tracks:,}")
        moved = comparison.moved_most(50)
        state["_moved_rows"] = [
            (segment, str(track_name), -1)
            for segment, track_name in zip(moved["segment_id"], moved["track_id"], strict=True)
        ]
        st.dataframe(
            moved,
            hide_index=True,
            width="stretch",
            height=220,
            on_select=_open_moved,
            selection_mode="single-row",
            key="tracks_moved",
            column_config={
                "rank_a": f"rank, {chosen}",
                "rank_b": f"rank, {against}",
                "moved": st.column_config.NumberColumn("moved", help="rank B minus rank A"),
                "rareness_a": st.column_config.NumberColumn(f"rareness, {chosen}", format="%.2f"),
                "rareness_b": st.column_config.NumberColumn(f"rareness, {against}", format="%.2f"),
                "in_top_a": f"top {comparison.budget:,}, {chosen}",
                "in_top_b": f"top {comparison.budget:,}, {against}",
            },
        )
        st.caption(
            f"Tracks of {'all splits' if split == 'all splits' else 'the ' + split + ' split'} "
            f"ranked by both runs; the top is the mining budget ({budget}). Listed: the tracks "
            "in either top whose rank moved most. Select one to view it above."
        )
