"""Home: what the workbench does, the data set's build status and a summary of it."""

from __future__ import annotations

import math
import os

import streamlit as st

from pages._pipeline import (
    ANALYSIS_PAGES,
    ESTIMATOR_LABELS,
    app_config,
    density_eta,
    feature_choice,
    forget_status,
    members_eta,
    pipeline_job,
    start_pipeline,
    status,
)
from pages._shared import (
    DataChoice,
    OpenData,
    build_world,
    default_preset,
    open_data,
    run_in_app,
    selected_data,
)
from rem_core.cluster import SCHEDULER_ENV, cluster_spec
from rem_core.config import RemConfig
from rem_core.experiment import read_verification
from rem_core.jobs import JobStatus, stop_job
from rem_core.pipeline import FIRST_DENSITY, detector_origin, feature_source


def _trained_on(origin: dict) -> str:
    """`, trained on <machine>` as the shipped weights recorded it, or nothing."""
    m, k = origin.get("machine") or {}, origin.get("kernels") or {}
    if not m:
        return ""
    kernels = f", {k['capability']} kernels on {k['threads']} threads" if k else ""
    return f", trained on {m.get('cpu_model', '?')} ({m.get('cpus', '?')} CPUs{kernels})"


def _verified() -> str:
    """What ``rem verify`` last found here, or that it has not run."""
    found = read_verification()
    if found is None:
        return (
            "Whether training here writes the same bytes has not been checked on this machine: "
            "`make verify` retrains one and compares (another CPU's kernels may write other "
            "bytes; docs/detector.md)."
        )
    return found.summary()


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


def first_start() -> bool:
    """Whether this session has not yet started the pipeline on the default world: the first
    visit of Home then starts it (the world too), once per session."""
    return (
        choice.source == "world"
        and choice.preset == default_preset()
        and not st.session_state.get("home_pipeline_started")
    )


def scheduler_field() -> tuple[str | None, bool]:
    """The Dask scheduler the pipeline's jobs run on, from the field ``home_cluster``
    (default ``$REM_DASK_SCHEDULER``): ``(scheduler, valid)``; the scheduler is ``None``
    for none (the job's own process). A value that is not one shows an error naming it, and
    nothing may start while it is there."""
    value = st.text_input(
        "Dask scheduler",
        value=os.environ.get(SCHEDULER_ENV, ""),
        key="home_cluster",
        placeholder="tcp://host:8786 or local:2",
        help="Runs the pipeline's segment-by-segment stages (the world, detection, tracks, "
        "scoring) on a Dask cluster: a scheduler's address, or local:N for N worker "
        "processes on this machine; training and the density fit stay in the job's process. "
        "Empty: all in the job's own process. The results are the same.",
        width=360,
    ).strip()
    try:
        parsed = cluster_spec(value)  # empty is none (the environment is read above)
    except ValueError as exc:
        st.error(f"Dask scheduler {str(exc).removeprefix('--cluster ')}", icon=":material/error:")
        return None, False
    return (value if parsed is not None else None), True


def show_job(job: JobStatus) -> None:
    """A running job's time so far and its stages, where it runs (with its cluster's
    dashboard), and a button that stops it."""
    minutes, seconds = divmod(int(job.elapsed), 60)
    where = f"on the Dask cluster `{job.cluster}`" if job.cluster else "in a process of its own"
    st.markdown(
        f":material/hourglass_top: Running the pipeline ({job.label}) {where}, "
        f"{minutes} min {seconds:02d} s so far. Other pages fill in as their inputs "
        "are ready; you can browse meanwhile, close this tab or restart the app."
    )
    if job.dashboard:
        st.link_button(
            "Dask dashboard",
            job.dashboard,
            key="home_dashboard",
            icon=":material/monitoring:",
            help=f"The dashboard of `{job.cluster}`: its workers, tasks and memory.",
        )
    elif job.cluster:
        st.caption(f"Connecting to `{job.cluster}`…")
    for stage, entry in job.stages.items():
        fraction = entry.done / entry.total if entry.total else 1.0
        text = f"{stage}: {entry.done:,} / {entry.total:,}"
        if entry.seconds is not None:
            text += f" ({entry.seconds:.0f} s)"
        st.progress(min(fraction, 1.0), text=text)
    if st.button("Stop the pipeline", key="home_stop", icon=":material/stop_circle:"):
        stop_job(job.key)
        st.rerun(scope="app")


def show_ended(job: JobStatus | None) -> None:
    if job is not None and job.state in ("failed", "stopped"):
        verb = "failed" if job.state == "failed" else "stopped"
        st.error(f"The pipeline {verb}: {job.error} (log: `{job.log}`)", icon=":material/error:")


if choice.source == "world" and not choice.exists:
    world_config = app_config(None)
    cluster, cluster_ok = scheduler_field()
    job = pipeline_job(choice.path, world_config)
    if job is None and first_start() and cluster_ok:
        # first start on the default world: build it and run the pipeline in a job
        st.session_state["home_pipeline_started"] = True
        job = start_pipeline(
            choice.path,
            world_config,
            world=world_config.world,
            label=choice.label,
            cluster=cluster,
        )
    if job is not None and job.running:
        st.info(
            f"Building the **{choice.preset}** world, then running the pipeline on it.",
            icon=":material/hourglass_top:",
        )

        @st.fragment(run_every=2.0)
        def world_progress(choice: DataChoice, config: RemConfig) -> None:
            job = pipeline_job(choice.path, config)
            if choice.exists or job is None or not job.running:
                st.rerun(scope="app")
            show_job(job)

        world_progress(choice, world_config)
        st.stop()
    show_ended(job)
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
features = feature_choice(data)
st.caption(f":material/tune: Features: **{features.source}**: {features.reason}.")
chosen = config.rareness.estimator
estimator = ESTIMATOR_LABELS[chosen]
source = feature_source(config.features.source)
needs = source.needs(config)
cluster, cluster_ok = scheduler_field()


def page_links() -> None:
    """A link to each analysis page, side by side."""
    cols = st.columns(len(ANALYSIS_PAGES))
    for col, (path, label, icon) in zip(cols, ANALYSIS_PAGES, strict=True):
        col.page_link(path, label=label, icon=icon)


def checklist(state: dict) -> str:
    """What is cached, as the cache holds it now (a stage counts once it is published)."""
    return ", ".join(
        f"{name} {':material/check:' if state[name] else ':material/close:'}"
        for name in ("detectors", "detections", "rareness")
    )


def pipeline_view(
    data: OpenData, config: RemConfig, live: bool, cluster: str | None, cluster_ok: bool
) -> None:
    """The pipeline's state, read afresh from the cache and the job's status file on every
    run: every 5 s while a job runs (``live``; two small file reads, the server stays idle),
    and once more when it ends. A job starts on ``cluster`` (see :func:`scheduler_field`),
    and only while ``cluster_ok``."""
    state = status(data, config)
    job = pipeline_job(data, config)
    if job is None and first_start() and not state["rareness"] and cluster_ok:
        # first start on the default world: compute in a job, once per session
        st.session_state["home_pipeline_started"] = True
        job = start_pipeline(data, config, cluster=cluster)
    running = job is not None and job.running
    if live and not running:
        # it ended: show the result (read afresh: the stages read above may predate its
        # end by up to a second), stop refreshing
        forget_status()
        st.rerun(scope="app")
    if state["rareness"] and state["detections"]:
        st.success(
            f"Detections, tracks, auto-labels and rareness scores ({estimator}) are ready.",
            icon=":material/check_circle:",
        )
        page_links()
        return
    if state["rareness"] or state["first_rareness"]:
        shown = estimator if state["rareness"] else ESTIMATOR_LABELS[FIRST_DENSITY]
        st.success(
            f"A first analysis is ready on every page: the main model's detections, tracks "
            f"and auto-labels, ranked by a {shown} density. "
            + (
                ""
                if state["rareness"]
                else f"{estimator} replaces it when it is fitted{density_eta(job, chosen)}. "
            )
            + (
                ""
                if state["detections"]
                else f"The ensemble members' scores (M-REM, the variance axes) follow"
                f"{members_eta(job)}."
            )
            + ("" if running else " The pipeline is not running: run it below to refine it."),
            icon=":material/check_circle:",
        )
        page_links()
    else:
        st.markdown(
            f"The analyses need {needs}, tracks and auto-labels, and a density model "
            f"({estimator}) of the features. A first analysis, ranked by a "
            f"{ESTIMATOR_LABELS[FIRST_DENSITY].lower()} density, comes as soon as the main "
            f"model's detections are in. Done so far: {checklist(state)}."
        )
    if running:
        show_job(job)
        return
    show_ended(job)
    if (
        st.button("Run the pipeline", key="home_pipeline", type="primary", disabled=not cluster_ok)
        and cluster_ok
    ):
        start_pipeline(data, config, cluster=cluster)
        st.rerun(scope="app")


job = pipeline_job(data, config)
ready = status(data, config)["rareness"]
first = job is None and first_start() and not ready and cluster_ok  # it starts now
live = (job is not None and job.running) or first
st.fragment(pipeline_view, run_every=5.0 if live else None)(data, config, live, cluster, cluster_ok)

origin = detector_origin(config, data.dataset) if source.trains_detector else {}
if origin:
    with st.expander("Detectors", icon=":material/model_training:"):
        if origin["origin"] == "shipped":
            st.markdown(
                f"The {config.detector.ensemble_size} detectors **ship with the app**: trained "
                "with these very settings, on this very world, by this code (their cache key "
                "holds the settings, the world's bytes and the detector code's fingerprint; "
                f"their files' hashes are checked), shipped at commit `{origin['commit']}`"
                f"{_trained_on(origin)}. {_verified()} Retraining them takes about 4 minutes "
                "on 2 cores."
            )
        else:
            st.markdown(f"The {config.detector.ensemble_size} detectors were trained here.")
        if (
            st.button(
                "Retrain the detectors",
                key="home_retrain",
                disabled=live or not cluster_ok,
                help="Trains the ensemble from scratch and recomputes the detections and rareness "
                "scores from it, in a job of its own (on the Dask scheduler above, if any).",
            )
            and cluster_ok
        ):
            start_pipeline(data, config, retrain=True, cluster=cluster)
            st.rerun()
