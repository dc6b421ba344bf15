"""Scene explorer: one frame of a segment in 3D and in bird's-eye view, with its boxes.

Other pages link here with query parameters or Session State entries ``scene_segment``,
``scene_frame`` and ``scene_track`` (a track to highlight; without a frame, its first frame
is shown). The URL follows the widgets, so it can be copied to share a frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._shared import require_data, run_in_app
from rem_core.config import VEHICLE_SUBTYPES
from rem_core.schema import DataError
from rem_core.viz import DISPLAY_POINTS, bev_figure, scene_figure

COLOR_BY = ("class", "subtype")
POINT_COLOR = ("height", "intensity")
MAX_POINTS = (5_000, 10_000, 15_000, 20_000, 40_000, 60_000, 100_000, 200_000)
WIDGETS = {  # widget key -> default
    "scene_color_by": "class",
    "scene_point_color": "height",
    "scene_max_points": DISPLAY_POINTS,
    "scene_segment": None,
    "scene_frame": None,
    "scene_track": None,
}
LINK = ("scene_segment", "scene_frame", "scene_track")
state = st.session_state

run_in_app()

st.title("Scene explorer")

# --- config: the data set, a link's frame, the widgets -------------------------------------
data = require_data()
ds = data.dataset
segments = ds.segments
if segments.empty:
    st.info("This data set holds no segments.", icon=":material/info:")
    st.stop()

# Widget values survive a visit to another page (Streamlit drops them when not drawn).
for key, value in state.get("_scene_kept", {}).items():
    state.setdefault(key, value)
for key, value in WIDGETS.items():
    state.setdefault(key, value)

# A link (query parameters) is applied once, when it changes; then the widgets rule.
link = tuple(st.query_params.get(key) for key in LINK)
seek_track = False
if link != state.get("_scene_link"):
    state["_scene_link"] = link
    segment_arg, frame_arg, track_arg = link
    if segment_arg is not None:
        state["scene_segment"] = segment_arg
    if frame_arg is not None:
        try:
            state["scene_frame"] = int(frame_arg)
        except ValueError:
            st.warning(f"Ignoring frame {frame_arg!r} from the link: not a frame number.")
    if track_arg is not None:
        state["scene_track"] = track_arg
        seek_track = frame_arg is None

segment_ids = segments["segment_id"].tolist()
if state["scene_segment"] not in segment_ids:
    if state["scene_segment"] is not None:
        st.warning(f"Segment {state['scene_segment']!r} is not in this data set.")
    state["scene_segment"] = segment_ids[0]
split_of = dict(zip(segments["segment_id"], segments["split"], strict=True))

top = st.columns([2, 5])
segment = top[0].selectbox(
    "Segment",
    segment_ids,
    key="scene_segment",
    format_func=lambda s: f"{s} · {split_of[s]}",
)
frames = ds.frames[ds.frames["segment_id"] == segment]
frame_ids = sorted(frames["frame_index"].astype(int).tolist())
segment_boxes = ds.boxes[ds.boxes["segment_id"] == segment]
if not frame_ids:
    st.warning(f"Segment {segment} has no frames.", icon=":material/warning:")
    st.stop()

track_ids = set(segment_boxes["track_id"].astype(str))
if state["scene_track"] is not None and str(state["scene_track"]) not in track_ids:
    if seek_track:
        st.warning(f"Track {state['scene_track']!r} is not in segment {segment}.")
    state["scene_track"] = None
if seek_track and state["scene_track"] is not None:
    track_frames = segment_boxes.loc[segment_boxes["track_id"] == state["scene_track"]]
    state["scene_frame"] = int(track_frames["frame_index"].min())
if state["scene_frame"] not in frame_ids:
    state["scene_frame"] = frame_ids[0]

if len(frame_ids) > 1:
    frame = top[1].select_slider("Frame", frame_ids, key="scene_frame")
else:
    frame = frame_ids[0]
    top[1].caption(f"Frame {frame} (the segment's only frame)")

boxes = ds.frame_boxes(segment, frame)
frame_tracks = sorted(boxes["track_id"].astype(str))
track_options = [None, *frame_tracks]
if state["scene_track"] is not None and state["scene_track"] not in frame_tracks:
    track_options.append(state["scene_track"])  # kept while it is out of view
subtype_of = dict(zip(segment_boxes["track_id"], segment_boxes["subtype"], strict=False))

row = st.columns([2, 2, 3, 3])
color_by = row[0].radio("Colour boxes by", COLOR_BY, key="scene_color_by", horizontal=True)
point_color = row[1].radio(
    "Colour points by", POINT_COLOR, key="scene_point_color", horizontal=True
)
max_points = row[2].select_slider(
    "Points drawn in 3D (at most)",
    MAX_POINTS,
    key="scene_max_points",
    format_func=lambda n: f"{n // 1000}k",
    help="A random subset of the frame's points: the more, the longer the browser takes to "
    "draw the 3D view (about a second per 40k without a GPU). The view from above uses them all.",
)
track = row[3].selectbox(
    "Highlight track",
    track_options,
    key="scene_track",
    format_func=lambda t: "none" if t is None else f"{t} · {subtype_of.get(t, '?')}",
    placeholder="none",
)

# --- load ------------------------------------------------------------------------------------
try:
    points = data.points(segment, frame)
except (DataError, KeyError) as exc:
    st.error(f"Cannot read the points of {segment} frame {frame}: {exc}", icon=":material/error:")
    points = np.zeros((0, 4), np.float32)


@st.cache_data(show_spinner=False, max_entries=16)
def figures(
    key: tuple, segment: str, frame: int, color_by: str, point_color: str, max_points: int,
    track: str | None, _points: np.ndarray, _boxes: pd.DataFrame,
) -> tuple[go.Figure, go.Figure]:  # fmt: skip
    """The 3D view and the view from above of one frame (``key``: the data set's)."""
    scene = scene_figure(
        _points, _boxes, color_by=color_by, max_points=max_points, point_color=point_color,
        highlight_track=track,
    )  # fmt: skip
    return scene, bev_figure(_points, _boxes, color_by=color_by, highlight_track=track)


# --- figures ---------------------------------------------------------------------------------
n_noise = int(boxes["label_noise"].sum())
st.caption(
    f"{split_of[segment]} split · {len(points):,} points ({min(len(points), max_points):,} "
    f"of them drawn in 3D, a random subset) · {len(boxes)} boxes · {n_noise} with label noise "
    "(dashed magenta) · "
    "thick lines: large or irregular vehicles · white: the highlighted track (blue row)"
)
if len(points) == 0:
    st.warning("This frame has no points; only its boxes are drawn.", icon=":material/warning:")

scene, bev = figures(
    data.key, segment, frame, color_by, point_color, max_points, track, points, boxes
)
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(
        scene,
        theme=None,
        key="scene_3d",
        config={"displaylogo": False, "scrollZoom": True},
    )
with right:
    st.plotly_chart(
        bev,
        theme=None,
        key="scene_bev",
        config={"displaylogo": False, "scrollZoom": True},
    )

st.markdown(f"**Boxes of frame {frame}**")
if boxes.empty:
    st.info("No labelled boxes in this frame.", icon=":material/info:")
else:
    table = pd.DataFrame(
        {
            "label noise": np.where(
                boxes["label_noise"],
                "⚠ " + boxes["noise_kind"].astype(str).str.replace("_", " "),
                "",
            ),
            "track": boxes["track_id"].astype(str),
            "class": boxes["class"],
            "subtype": boxes["subtype"],
            "family": boxes["subtype"].map(VEHICLE_SUBTYPES).fillna(""),
            "points": boxes["num_points"],
            "distance (m)": boxes["distance"],
            "length (m)": boxes["length"],
            "width (m)": boxes["width"],
            "height (m)": boxes["height"],
            "heading (rad)": boxes["heading"],
            "speed (m/s)": np.hypot(boxes["speed_x"], boxes["speed_y"]),
        }
    ).sort_values(["label noise", "distance (m)"], ascending=[False, True])
    decimals = {"distance (m)": 1, "length (m)": 2, "width (m)": 2, "height (m)": 2,
                "heading (rad)": 2, "speed (m/s)": 1}  # fmt: skip

    def shade(row: pd.Series) -> list[str]:
        if row["track"] == track:
            return ["background-color: rgba(100, 150, 255, 0.28)"] * len(row)
        if row["label noise"]:
            return ["background-color: rgba(255, 0, 255, 0.22)"] * len(row)
        return [""] * len(row)

    styled = table.style.apply(shade, axis=1).format(
        {column: f"{{:.{n}f}}" for column, n in decimals.items()}
    )
    st.dataframe(styled, hide_index=True, width="stretch")

# The URL follows the widgets (shareable), and the kept values outlive a page switch.
state["_scene_kept"] = {key: state[key] for key in WIDGETS}
current = (segment, str(frame), None if track is None else str(track))
state["_scene_link"] = current
st.query_params.update({"scene_segment": segment, "scene_frame": str(frame)})
if track is None:
    st.query_params.pop("scene_track", None)
else:
    st.query_params["scene_track"] = str(track)
