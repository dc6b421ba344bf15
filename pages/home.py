"""Home: what the workbench does, the data set's build status and a summary of it."""

from __future__ import annotations

import math

import streamlit as st

from pages._pipeline import (
    ANALYSIS_PAGES,
    ESTIMATOR_LABELS,
    PipelineJob,
    app_config,
    pipeline_job,
    start_pipeline,
    status,
)
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

# --- the pipeline: detectors, features, density, scores -------------------------------------
st.subheader("Pipeline")
config = app_config(data)
estimator = ESTIMATOR_LABELS[config.rareness.estimator]
state = status(data, config)
job = pipeline_job(data, config)


def show_stages(job: PipelineJob) -> None:
    # a copy: the pipeline thread adds stages while this runs
    for stage, (done, total) in dict(job.stages).items():
        fraction = done / total if total else 1.0
        st.progress(min(fraction, 1.0), text=f"{stage}: {done} / {total}")


if state["rareness"]:
    st.success(
        f"Detections, tracks, auto-labels and rareness scores ({estimator}) are ready.",
        icon=":material/check_circle:",
    )
    cols = st.columns(len(ANALYSIS_PAGES))
    for col, (path, label, icon) in zip(cols, ANALYSIS_PAGES, strict=True):
        col.page_link(path, label=label, icon=icon)
else:
    needs = {
        "geometry": "geometric descriptors of every box (this data set has no point cloud "
        "to train a detector on: its own detections, or else its ground-truth boxes, stand in)",
        "imported": "the features your detector gave its detections (stored with `rem import "
        "detections --features`)",
    }.get(
        config.features.source,
        f"the detector ensemble ({config.detector.ensemble_size} detectors trained on "
        "the source pool), its detections and features on every segment",
    )
    st.markdown(
        f"The analyses need {needs}, tracks and auto-labels, and a density model "
        f"({estimator}) of the features. Done so far: "
        + ", ".join(
            f"{name} {':material/check:' if state[name] else ':material/close:'}"
            for name in ("detectors", "detections", "rareness")
        )
        + "."
    )
    first_start = (
        choice.source == "world"
        and choice.preset == default_preset()
        and not st.session_state.get("home_pipeline_started")
    )
    if job is None and first_start:
        # first start on the default world: compute in the background, once per session
        st.session_state["home_pipeline_started"] = True
        job = start_pipeline(data, config)
    if job is not None and job.running:

        @st.fragment(run_every=5.0)
        def progress_view() -> None:
            if not job.running:
                st.rerun(scope="app")
            minutes, seconds = divmod(int(job.elapsed), 60)
            st.markdown(
                f":material/hourglass_top: Running the pipeline ({job.label}), "
                f"{minutes} min {seconds:02d} s so far. Other pages fill in as their inputs "
                "are ready; you can browse meanwhile."
            )
            show_stages(job)

        progress_view()
    else:
        if job is not None and job.error:
            st.error(f"The pipeline failed: {job.error}", icon=":material/error:")
        if st.button("Run the pipeline", key="home_pipeline", type="primary"):
            start_pipeline(data, config)
            st.rerun()
