"""Home: what the workbench does, the data set's build status and a summary of it."""

from __future__ import annotations

import math

import streamlit as st

from pages._shared import build_world, default_preset, open_data, run_in_app, selected_data

run_in_app()

st.title("REM Workbench")
st.markdown(
    "**Rare Example Mining** for 3D LiDAR detectors (after Jiang et al., ECCV 2022). "
    "A detector's features of every tracked object are scored by how *unlikely* they are "
    "under a density model fitted on the labelled data (rareness = −log p); the rarest "
    "tracks are the ones worth labelling next. Start with the data: the **Scene explorer** "
    "shows any frame in 3D and from above, with its labelled boxes."
)
st.caption(
    "The built-in world is a ray-cast LiDAR simulation whose ground truth knows which "
    "objects are rare: large and irregular vehicles make up a few percent of vehicle tracks, "
    "and about 1% of boxes carry label noise."
)

# config -> load
choice = selected_data()
if message := st.session_state.pop("built_message", None):
    st.success(message, icon=":material/check_circle:")
if choice.source == "world" and not choice.exists:
    first_start = choice.preset == default_preset() and not st.session_state.get("home_built")
    if first_start:
        # first start on the default world: build it now, with progress, once per session
        st.session_state["home_built"] = True
        if build_world(choice.preset):
            st.rerun()
        st.stop()
    st.info(f"The **{choice.preset}** world is not built yet.", icon=":material/info:")
    if choice.preset == "full":
        st.warning(
            "The full world is large (130 segments of 200 frames): building it takes a long "
            "time and tens of GB of disk.",
            icon=":material/warning:",
        )
    if st.button(f"Build the {choice.preset} world", key="home_build", type="primary"):
        if build_world(choice.preset):
            st.rerun()
    st.stop()

data = open_data(choice)
if isinstance(data, str):
    st.info(data, icon=":material/info:")
    st.stop()
summary = data.summary()

# figures: the summary
st.subheader(f"Data set: {data.label}")
st.caption(f"`{data.dataset.root}`")
if summary.n_segments == 0:
    st.warning("This data set holds no segments.", icon=":material/warning:")
    st.stop()

c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Segments", f"{summary.n_segments:,}")
c2.metric("Frames", f"{summary.n_frames:,}")
c3.metric("Tracks", f"{summary.n_tracks:,}")
c4.metric("Boxes", f"{summary.n_boxes:,}")
share = summary.large_vehicle_share
c5.metric(
    "Large vehicle tracks",
    "–" if math.isnan(share) else f"{share:.1%}",
    help="Vehicle tracks whose largest median dimension is at least 7 m "
    f"({summary.n_large_vehicle_tracks} of {summary.n_vehicle_tracks}).",
)

left, right = st.columns(2)
with left:
    st.markdown("**Segments by split**")
    st.dataframe(summary.segments_by_split, hide_index=True, width="stretch")
with right:
    st.markdown("**Tracks by class**")
    st.dataframe(
        summary.tracks_by_class,
        hide_index=True,
        width="stretch",
        column_config={"label_noise_boxes": "label-noise boxes"},
    )

st.page_link("pages/scene_explorer.py", label="Explore the scenes", icon=":material/view_in_ar:")
