"""Rarest tracks (paper Fig. 5): the objects the density model finds least likely.

Tracks ranked by their mean log-probability over their frames (paper section 4.1), with
filters; the selected track in 3D, frame by frame, among its surroundings, with a
bird's-eye-view context and a gallery of the top tracks. Label-noise boxes are flagged in
the table (with their kinds) and dashed magenta in the views; a line gives the share of
label-noise boxes among the rarest 5% of vehicle boxes (``rem_core.analysis.rare_groups``), and the
table filters by rare group (a subtype family other than regular, or a kind of label noise).
Rareness along the track (``rem_core.analysis.box_in_track``): the selected track's log p
frame by frame beside the views, the boxes that fall far below their own track marked, and
a ranking of those boxes across the data set ("Boxes to re-check"), each openable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._pipeline import (
    analysis_config,
    require_detections,
    require_rareness,
)
from pages._shared import count, require_data, run_in_app
from pages._track_review import compare_section, recheck_section
from rem_core.analysis import (
    RarestNoise,
    box_in_track,
    boxes_to_recheck,
    label_noise_in_rarest,
    track_table,
)
from rem_core.viz import bev_figure, track_figure, track_gallery, track_log_prob_figure

SOURCES = {"gt": "Ground-truth tracks", "detected": "Detected tracks (tracker)"}
SPLITS = ("unlabelled", "source", "validation", "ood", "all splits")
state = st.session_state

run_in_app()
st.title("Rarest tracks")
st.caption(
    "Tracks by rareness: minus the mean log p of their boxes' detector features. Ground-truth "
    "tracks carry their subtype and label-noise flags; detected tracks are what the mining "
    "sees. Select a row to view the track."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
config = analysis_config(data)
det = require_detections(data, config)
run = require_rareness(data, config)
ds = data.dataset
c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
source = c1.radio("Tracks", list(SOURCES), format_func=SOURCES.get, key="tracks_source")
present = [s for s in SPLITS[:-1] if (ds.segments["split"] == s).any()] + [SPLITS[-1]]
split = c2.selectbox("Split", present, key="tracks_split")
min_boxes = c4.number_input("Boxes at least", 1, 200, 3, key="tracks_min_boxes")


# --- load ------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def tracks_of(rareness_path: str, source: str, _det, _run, _ds) -> pd.DataFrame:
    """One row per track, rarest first (``rem_core.analysis.track_table``)."""
    if source == "gt":
        return track_table(_ds, _det.gt, _run.gt_log_prob, gt=_det.gt)
    return track_table(_ds, _det.detections, _run.log_prob)


@st.cache_data(show_spinner=False, max_entries=8)
def noise_in_rarest(
    rareness_path: str, split: str, _det, _run, _ds
) -> tuple[RarestNoise, RarestNoise]:
    """Label noise among the rarest 5% of the split's vehicle boxes (all splits together),
    and among the top 5% of the same boxes by how far they fall below their own track."""
    in_track = box_in_track(_det.gt, _run.gt_log_prob).score
    if split == "all splits":
        splits, among = None, ()
    else:
        splits, among = _ds.segments.set_index("segment_id")["split"], (split,)
    return tuple(
        label_noise_in_rarest(_det.gt, _run.gt_log_prob, 0.05, splits, among, rank_by=by)
        for by in (None, in_track)
    )


@st.cache_data(show_spinner=False, max_entries=4)
def track_boxes(rareness_path: str, source: str, _det, _run) -> pd.DataFrame:
    """The boxes of tracks, most suspect first, with their log p and how far it falls below
    their track's (``rem_core.analysis.boxes_to_recheck``; NaN for tracks too short)."""
    boxes, log_prob = (_det.gt, _run.gt_log_prob) if source == "gt" else (
        _det.detections, _run.log_prob)  # fmt: skip
    ranked = boxes_to_recheck(boxes, log_prob, scored_only=False)
    out = ranked.dropna(subset=["track_id"])
    out.attrs["unit"] = ranked.attrs["unit"]
    return out


def _track_picked() -> None:
    state.pop("_tracks_open", None)


@st.cache_data(show_spinner=False, max_entries=16)
def viewer(
    key: tuple, rareness_path: str, source: str, segment_id: str, track_id: str, frame: int,
    radius_m: float, _points: np.ndarray, _boxes: pd.DataFrame,
) -> go.Figure:  # fmt: skip
    """The track's 3D view at one frame (``key``: the data set's)."""
    return track_figure(_points, _boxes, track_id, radius_m=radius_m)


@st.cache_data(show_spinner=False, max_entries=16)
def gallery(
    key: tuple, rareness_path: str, source: str, shots: tuple, _boxes: list, _data
) -> go.Figure:
    """One figure of the tracks' thumbnails (``key``: the data set's).

    ``shots``: ``(segment, frame, track, title)`` per panel, the cache key; ``_boxes`` their
    boxes (``BOXES`` rows).
    """
    return track_gallery(
        [
            (_data.points(segment, frame), box, title)
            for (segment, frame, _, title), box in zip(shots, _boxes, strict=True)
        ]
    )


table = tracks_of(str(run.path), source, det, run, ds)
boxes = track_boxes(str(run.path), source, det, run)
if table.empty:
    st.info(
        "The tracker formed no tracks on this data set (its detections score too low to start one)."
        if source == "detected"
        else "This data set holds no tracks.",
        icon=":material/info:",
    )
    st.stop()
if source == "gt":
    classes = sorted(table["class"].dropna().unique())
    cls = c3.selectbox(
        "Class", classes, index=classes.index("vehicle") if "vehicle" in classes else 0,
        key="tracks_class",
    )  # fmt: skip
    table = table[table["class"] == cls]
else:
    cls = None
flags = boxes[boxes["flagged"]].groupby(["segment_id", "track_id"]).size()
table = table.join(flags.rename("to_recheck"), on=["segment_id", "track_id"])
table["to_recheck"] = table["to_recheck"].fillna(0).astype(int)
subtypes = sorted(s for s in table["subtype"].dropna().unique() if s)
# Rare groups, from the data: families other than regular, and every kind of label noise.
families = sorted(set(table["family"]) - {"", "regular"})
kinds = sorted({k for ks in table["noise_kinds"] for k in ks.split(", ") if k})
f1, f2, f3 = st.columns([3, 2, 1])
picked_subtypes = f1.multiselect("Subtypes", subtypes, key="tracks_subtypes") if subtypes else []
picked_groups = (
    f2.multiselect(
        "Rare groups",
        families + kinds,
        key="tracks_groups",
        help="Tracks of a rare subtype family, or with boxes of a kind of label noise.",
    )
    if families or kinds
    else []
)
noisy_only = f3.checkbox("Label noise only", key="tracks_noisy") if source == "gt" else False
view = table[table["num_boxes"] >= min_boxes]
if split != "all splits":
    view = view[view["split"] == split]
if picked_subtypes:
    view = view[view["subtype"].isin(picked_subtypes)]
if picked_groups:
    # bool even when no track is left (map() of an empty column is not)
    has_kind = view["noise_kinds"].map(lambda ks: bool(set(ks.split(", ")) & set(picked_groups)))
    view = view[view["family"].isin(picked_groups).to_numpy() | has_kind.to_numpy(bool)]
if noisy_only:
    view = view[view["label_noise_boxes"] > 0]
if view.empty:
    st.info("No track matches these filters.", icon=":material/info:")
    st.stop()
view = view.assign(rank=np.arange(1, len(view) + 1))  # rank among the tracks shown

# --- the table -------------------------------------------------------------------------------
noise, noise_in_track = noise_in_rarest(str(run.path), split, det, run, ds)
if noise.n_noise:
    where = "all splits" if split == "all splits" else f"the {split} split"
    st.caption(
        f"Label noise among the rarest 5% of vehicle boxes of {where}: "
        f"{noise.noise_in_rarest:.0%} of its {noise.n_noise:,} label-noise boxes (paper: at "
        f"least half; 5% at chance), {noise.rarest_that_are_noise:.1%} of the rarest 5% "
        f"({noise.base_rate:.1%} of all). Among the top 5% of the same boxes by how far "
        f"they fall below their own track (Boxes to re-check): "
        f"{noise_in_track.noise_in_rarest:.0%}."
    )
flag = np.where(view["label_noise_boxes"] > 0, "⚠ " + view["noise_kinds"], "")
shown = view.assign(noise=flag)
columns = [
    "rank", "segment_id", "track_id", "subtype", "family", "num_boxes", "mean_log_prob",
    "min_log_prob", "percentile", "to_recheck", "max_points", "min_distance", "length", "noise",
]  # fmt: skip
picked = st.dataframe(
    shown[columns],
    hide_index=True,
    width="stretch",
    height=280,
    on_select=_track_picked,
    selection_mode="single-row",
    key="tracks_table",
    column_config={
        "mean_log_prob": st.column_config.NumberColumn("mean log p", format="%.2f"),
        "min_log_prob": st.column_config.NumberColumn("min log p", format="%.2f"),
        "percentile": st.column_config.ProgressColumn(
            "rareness percentile", min_value=0, max_value=100, format="%.1f"
        ),
        "min_distance": st.column_config.NumberColumn("closest (m)", format="%.0f"),
        "length": st.column_config.NumberColumn("length (m)", format="%.1f"),
        "to_recheck": st.column_config.NumberColumn(
            "boxes to re-check",
            help="Boxes whose log p falls at least 3.5 robust units below the track's median "
            "(Boxes to re-check, below).",
        ),
        "noise": "label noise",
    },
)
st.caption(f"{count(len(view), 'track')} of {count(len(table), 'track')}.")
rows = picked.selection.rows if picked is not None else []
track = view.iloc[rows[0] if rows else 0]
opened = state.get("_tracks_open")  # a box picked in "Boxes to re-check"
if opened is not None:
    at_box = table[
        (table["segment_id"] == opened[0]) & (table["track_id"].astype(str) == opened[1])
    ]
    if len(at_box):
        track = at_box.iloc[0]
segment_id, track_id = track["segment_id"], str(track["track_id"])

# --- the selected track ----------------------------------------------------------------------
mine = boxes[(boxes["segment_id"] == segment_id) & (boxes["track_id"].astype(str) == track_id)]
frames = sorted(mine["frame_index"].astype(int).unique())
best = int(mine.loc[mine["num_points"].idxmax(), "frame_index"])
if state.get("_tracks_for") != (segment_id, track_id, source, opened):
    state["_tracks_for"] = (segment_id, track_id, source, opened)
    state["tracks_frame"] = opened[2] if opened is not None and opened[2] in frames else best
frame = st.select_slider("Frame", frames, key="tracks_frame") if len(frames) > 1 else frames[0]
rank = f" (rank {int(track['rank'])})" if "rank" in track and pd.notna(track["rank"]) else ""
st.subheader(
    f"Track {track_id} of {segment_id}: {track['subtype'] or 'vehicle'}, "
    f"mean log p {track['mean_log_prob']:.1f}{rank}"
)
points = data.points(segment_id, frame)
frame_boxes = boxes[(boxes["segment_id"] == segment_id) & (boxes["frame_index"] == frame)]
if source == "detected":
    frame_boxes = frame_boxes.assign(track_id=frame_boxes["track_id"].astype(str))
left, right = st.columns([3, 2])
with left:
    at = (segment_id, track_id, int(frame), float(max(15.0, 2.5 * track["length"])))
    st.plotly_chart(
        viewer(data.key, str(run.path), source, *at, points, frame_boxes),
        width="stretch",
        theme=None,
        key="tracks_3d",
    )
with right:
    context = ds.frame_boxes(segment_id, frame) if source == "gt" else frame_boxes
    st.plotly_chart(
        bev_figure(points, context, highlight_track=track_id, height=520),
        width="stretch",
        theme=None,
        key="tracks_bev",
    )
    st.plotly_chart(
        track_log_prob_figure(mine, frame=int(frame), height=220),
        width="stretch",
        theme=None,
        key="tracks_along",
    )
    n_flagged = int(mine["flagged"].sum())
    st.caption(
        "Log p of the track's boxes frame by frame; dotted: the track's median. "
        + (
            f"{n_flagged} of its boxes fall{'s' if n_flagged == 1 else ''} at least 3.5 robust "
            "units below it (×): a box "
            "to re-check, more likely a label error than a rare object."
            if n_flagged
            else "No box falls far below it."
            if mine["box_in_track"].notna().any()
            else "Too few boxes to tell (3 at least)."
        )
    )
if st.button("Open this frame in the Scene explorer", key="tracks_open_scene"):
    state["scene_segment"], state["scene_frame"] = segment_id, int(frame)
    state["scene_track"] = track_id if source == "gt" else None
    st.switch_page("pages/scene_explorer.py")

# --- boxes to re-check, two runs compared ----------------------------------------------------
recheck_section(run, source, split, cls, boxes, ds)
compare_section(data, config, run, det, ds, (source, split, cls))

# --- the gallery -----------------------------------------------------------------------------
st.subheader("The rarest tracks at a glance")
n = st.select_slider("Tracks", [4, 8, 12, 16], 8, key="tracks_gallery_n")
shots = []
for _, t in view.head(n).iterrows():
    these = boxes[(boxes["segment_id"] == t["segment_id"]) & (boxes["track_id"] == t["track_id"])]
    shot = these.loc[these["num_points"].idxmax()]
    title = f"#{int(t['rank'])} {t['subtype'] or 'vehicle'} · log p {t['mean_log_prob']:.1f}"
    shots.append(((t["segment_id"], int(shot["frame_index"]), str(t["track_id"]), title), shot))
st.plotly_chart(
    gallery(
        data.key, str(run.path), source, tuple(k for k, _ in shots), [b for _, b in shots], data
    ),
    width="stretch",
    theme=None,
    key="tracks_gallery",
    config={"displayModeBar": False},
)
st.caption(
    "Each track from above in its own frame (its heading to the right), at the frame with "
    "the most points in its box; white: its box, dashed magenta: label noise."
)
