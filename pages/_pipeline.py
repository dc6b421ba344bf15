"""What the analysis pages share: the pipeline's settings, its job, cached results.

Not a page. The pipeline (detector ensemble, detections and features, tracks and
auto-labels, PCA and density, scores) runs as a job in a process of its own
(``rem_core.jobs``), one per data set and settings however many sessions ask for it, so that
the server stays free to answer, a user can browse or close the tab while it works, it
survives a restart of the server, and every page becomes usable as soon as its inputs are
cached. :func:`pipeline_job` reports how far it got.

Pages read results through :func:`require_detections`, :func:`require_rareness` and
:func:`require_pool`: each returns the cached result, or explains what is missing (with a
link to Home, which runs the pipeline) and stops the page.

The pipeline publishes a whole analysis first and refines it (``rem_core.pipeline.run_pipeline``):
the main model's detections and a fast density (``FIRST_DENSITY``) come minutes before the
ensemble members' scores and FFJORD. :func:`analysis_config` gives the settings of the best
analysis published so far, and says on the page which density and stages it shows until the
refinement is in; each page's caches are keyed by what they show, so a page switches to the
refined results on its next run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import streamlit as st

from pages._shared import OpenData, selected_data
from rem_core.config import ESTIMATORS, FeatureConfig, RemConfig, WorldConfig
from rem_core.jobs import JobStatus, job_key, read_job, start_job
from rem_core.mining import MiningPool
from rem_core.pipeline import (
    FIRST_DENSITY,
    MEMBERS_STAGE,
    DetectionRun,
    FeatureChoice,
    RarenessRun,
    choose_features,
    fitting_stage,
    load_detections,
    load_rareness,
    mining_pool,
    pipeline_status,
    scoring_stage,
    with_estimator,
)
from rem_core.schema import DataError

log = logging.getLogger(__name__)

#: The analysis pages: path, title, icon (registered by app.py, linked from Home).
ANALYSIS_PAGES = (
    ("pages/rareness_recall.py", "Rareness vs recall", ":material/trending_down:"),
    ("pages/log_prob.py", "Log-probability histograms", ":material/bar_chart:"),
    ("pages/rarest_tracks.py", "Rarest tracks", ":material/star:"),
    ("pages/mining.py", "Mining simulation", ":material/filter_alt:"),
    ("pages/rare_vs_hard.py", "Rare vs hard", ":material/scatter_plot:"),
    ("pages/experiments.py", "Experiments", ":material/science:"),
)

ESTIMATOR_NAMES = ESTIMATORS
ESTIMATOR_LABELS = {
    "ffjord": "FFJORD (continuous flow)",
    "gaussian": "Gaussian",
    "gmm": "Gaussian mixture",
    "knn": "k nearest neighbours",
    "realnvp": "RealNVP",
}


FEATURE_LABELS = {
    "auto": "Automatic (what the data supports)",
    "detector": "Our detector's ROI features",
    "geometry": "Geometric box descriptors",
    "imported": "Your detector's stored features",
}


def init_pipeline_state() -> None:
    """Defaults of the sidebar's density-model and feature choices (keys ``app_estimator``,
    ``app_features``)."""
    st.session_state.setdefault("app_estimator", "ffjord")
    st.session_state.setdefault("app_features", "auto")


def feature_choice(data: OpenData) -> FeatureChoice:
    """The features the sidebar's choice scores on ``data``, and why; a choice the data
    cannot support shows what is missing and stops the page."""
    init_pipeline_state()
    try:
        return choose_features(data.dataset, st.session_state["app_features"])
    except DataError as exc:
        st.error(f"{exc}", icon=":material/error:")
        st.stop()


def app_config(data: OpenData | None, estimator: str | None = None) -> RemConfig:
    """The settings the app runs the pipeline with on ``data``.

    A built-in world uses its preset's settings, a data set folder the demo preset's
    detector, tracker, density and scoring settings. The features are the sidebar's choice
    (``app_features``; automatic by default: see ``rem_core.pipeline.choose_features``).
    ``estimator`` (default: the sidebar's choice) picks the density model. ``data`` may be
    ``None`` for a built-in world not built yet (its preset's features, our detector's).
    """
    init_pipeline_state()
    choice = selected_data()
    preset = choice.preset if choice.source == "world" and choice.preset else "demo"
    config = RemConfig.preset(preset)
    name = estimator or st.session_state["app_estimator"]
    config = dataclasses.replace(
        config, rareness=dataclasses.replace(config.rareness, estimator=name)
    )
    if data is not None:
        source = feature_choice(data).source
        if source != config.features.source:
            config = dataclasses.replace(config, features=FeatureConfig(source=source))
    return config


def _root(data: OpenData | Path) -> Path:
    return Path(data.dataset.root) if isinstance(data, OpenData) else Path(data)


def pipeline_job(data: OpenData | Path, config: RemConfig) -> JobStatus | None:
    """The pipeline job for the data set ``data`` (opened, or its folder: a world not built
    yet) and ``config``, running or ended, if any (``rem_core.jobs.read_job``)."""
    return read_job(job_key("pipeline", config, _root(data)))


def start_pipeline(
    data: OpenData | Path,
    config: RemConfig,
    world: WorldConfig | None = None,
    retrain: bool = False,
    label: str | None = None,
    cluster: str | None = None,
) -> JobStatus:
    """Start the pipeline in a process of its own unless it runs already; its status.

    With ``world``, the job builds that world first (``data`` is then its folder); with
    ``retrain``, it trains the detectors from scratch; with ``cluster`` (``local:N`` or a
    scheduler address), it runs its segment-by-segment stages on that Dask cluster (see
    ``rem_core.jobs.start_job``). ``label`` names the data set in messages (default: its
    label, or its folder's name).
    """
    root = _root(data)
    label = f"{label or (data.label if isinstance(data, OpenData) else root.name)}, "
    label += config.rareness.estimator + (", retraining the detectors" if retrain else "")
    key = job_key("pipeline", config, root)
    return start_job(
        key,
        "pipeline",
        config,
        data=None if world is not None else root,  # a world's folder: the job builds it
        world=world,
        label=label,
        retrain=retrain,
        cluster=cluster,
    )


def experiment_job(data: OpenData, config: RemConfig) -> JobStatus | None:
    """The experiment job for ``data`` and ``config``, running or ended, if any."""
    return read_job(job_key("experiment", config, _root(data)))


def start_experiment(data: OpenData, config: RemConfig) -> JobStatus:
    """Start the active-learning experiment (``rem_core.experiment.run_experiment``; it runs
    the pipeline's missing stages first) in a process of its own unless it runs already."""
    root = _root(data)
    return start_job(
        job_key("experiment", config, root),
        "experiment",
        config,
        data=root,
        label=f"experiment on {data.label}",
    )


def status(data: OpenData, config: RemConfig) -> dict:
    """Which stages are cached (see ``rem_core.pipeline.pipeline_status``), as read at most
    a second ago: a page asks several times per run, and each read hashes the settings."""
    return _status(str(data.key), repr(config), config, data)


def forget_status() -> None:
    """Read the stages afresh on the next :func:`status` (a job was seen to end: what it
    published must show on the rerun that follows, not an answer from a second ago)."""
    _status.clear()


@st.cache_data(show_spinner=False, ttl=1.0, max_entries=64)
def _status(data_key: str, config_repr: str, _config: RemConfig, _data: OpenData) -> dict:
    return pipeline_status(_config, _data.dataset)


@st.cache_resource(show_spinner=False, max_entries=4)
def _detections(path: str, members_scored: bool) -> DetectionRun:
    # ``members_scored`` keys the cache: the run is read again once the members' part is in
    return load_detections(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _rareness(path: str) -> RarenessRun:
    return load_rareness(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _pool(
    rareness_path: str, members_scored: bool, _config: RemConfig, _data: OpenData
) -> MiningPool:
    det = _detections(str(status(_data, _config)["detections_path"]), members_scored)
    return mining_pool(_config, _data.dataset, det, _rareness(rareness_path))


def _missing(what: str, data: OpenData, config: RemConfig) -> None:
    job = pipeline_job(data, config)
    if job is not None and job.running:
        st.info(
            f"{what} are being computed ({job.label}; progress on Home); this page fills in "
            "when they are ready.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"{what} are not computed yet for {data.label}. Run the pipeline on **Home**.",
            icon=":material/info:",
        )
    st.page_link("pages/home.py", label="Home: run the pipeline", icon=":material/home:")
    st.stop()


def _minutes(seconds: float) -> str:
    return "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


def members_eta(job: JobStatus | None) -> str:
    """When the ensemble members' scores will be in, from the running job's pace: a phrase
    such as ", about 3 min from now" (empty when it cannot tell)."""
    stage = job.stage(MEMBERS_STAGE) if job is not None and job.running else None
    left = stage.remaining(job.elapsed) if stage is not None else None
    return "" if left is None else f", {_minutes(left)} from now"


def density_eta(job: JobStatus | None, estimator: str) -> str:
    """How far the running job got towards ``estimator``'s rareness, for a sentence: the
    members still scoring, the flow's epochs (its most: early stopping may end it sooner),
    or its scoring of every object."""
    if job is None or not job.running:
        return ""
    label = ESTIMATOR_LABELS[estimator].split(" (")[0]
    scoring = job.stage(scoring_stage(estimator))
    if scoring is not None:
        return f"; {label} is scoring every object now"
    fitting = job.stage(fitting_stage(estimator))
    if fitting is not None and fitting.total > 1:
        left = fitting.remaining(job.elapsed)
        eta = "" if left is None else f", at most {_minutes(left)} of training left"
        return f"; {label} has trained {fitting.done} of at most {fitting.total} epochs{eta}"
    if fitting is not None:
        return f"; {label} is being fitted"
    members = job.stage(MEMBERS_STAGE)
    if members is not None and members.ended is None:
        return f"; {label} follows the ensemble members (they finish{members_eta(job)})"
    return ""


#: Seconds between two looks, while the pipeline refines, at whether a page's refined
#: inputs are published (two small file reads; the page reruns when they are).
WATCH_S = 10.0


def _watch(data: OpenData, config: RemConfig, seen: tuple[bool, bool]) -> None:
    state = status(data, config)
    if (state["rareness"], state["detections"]) != seen:
        st.rerun(scope="app")


def analysis_config(data: OpenData) -> RemConfig:
    """The settings of the best analysis published for ``data``: the sidebar's density
    model (:func:`app_config`) once its rareness is computed; until then, while the fast
    first density's is (``FIRST_DENSITY``), that one, with a note on the page saying so
    and when the sidebar's will be in. Pages key their caches by what this gives; while the
    pipeline job refines, the page looks every ``WATCH_S`` seconds and reruns when the
    sidebar's model or the members' scores are published."""
    config = app_config(data)
    state = status(data, config)
    job = pipeline_job(data, config)
    if job is not None and job.running and not (state["rareness"] and state["detections"]):
        seen = (state["rareness"], state["detections"])
        st.fragment(_watch, run_every=WATCH_S)(data, config, seen)
    if state["rareness"] or not state["first_rareness"]:
        return config
    chosen = config.rareness.estimator
    first = ESTIMATOR_LABELS[FIRST_DENSITY].lower()
    if job is not None and job.running:
        st.info(
            f"Ranked by a {first} density until {ESTIMATOR_LABELS[chosen]} is ready"
            f"{density_eta(job, chosen)}. This page switches to it on its next run once it "
            "is published (progress on Home).",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"Ranked by a {first} density: {ESTIMATOR_LABELS[chosen]} is not computed for "
            f"{data.label}. Run the pipeline on **Home** to add it.",
            icon=":material/info:",
        )
    return with_estimator(config, FIRST_DENSITY)


def require_members(data: OpenData, config: RemConfig, what: str) -> bool:
    """Whether the ensemble members' scores are in; if not, a note that ``what`` (say,
    "Ensemble variance and M-REM") waits for them and when they will be in."""
    if status(data, config)["detections"]:
        return True
    job = pipeline_job(data, config)
    if job is not None and job.running:
        st.info(
            f"{what} wait for the ensemble members' scores, being computed"
            f"{members_eta(job)}; everything else on this page is final.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"{what} need the ensemble members' scores, not computed yet for {data.label}: "
            "run the pipeline on **Home**.",
            icon=":material/info:",
        )
    return False


def require_detections(data: OpenData, config: RemConfig) -> DetectionRun:
    """The detection stage's output, or a message and a stopped page: the main model's as
    soon as its part is published, the members' scores in once theirs is
    (``DetectionRun.members_scored``; :func:`require_members` says what waits for them)."""
    state = status(data, config)
    if not state["detections_main"]:
        _missing("Detections, features and tracks", data, config)
    return _detections(str(state["detections_path"]), state["detections"])


def require_rareness(data: OpenData, config: RemConfig) -> RarenessRun:
    """The rareness stage's output for ``config.rareness.estimator``, or a message and a
    stopped page (a missing estimator can be fitted from Home)."""
    state = status(data, config)
    if not state["rareness"]:
        _missing(f"Rareness scores ({ESTIMATOR_LABELS[config.rareness.estimator]})", data, config)
    return _rareness(str(state["rareness_path"]))


def require_pool(data: OpenData, config: RemConfig) -> MiningPool:
    """The unlabelled pool as mining sees it, or a message and a stopped page; its variance
    is NaN until the members' scores are in (:func:`require_members`)."""
    state = status(data, config)
    if not (state["detections_main"] and state["rareness"]):
        _missing("Detections and rareness scores", data, config)
    return _pool(str(state["rareness_path"]), state["detections"], config, data)


def pool_key(data: OpenData, config: RemConfig) -> str:
    """A key for what :func:`require_pool` gives: the data set, the density, and whether
    the members' scores are in."""
    members = "members" if status(data, config)["detections"] else "main"
    return f"{data.key}-{config.rareness.estimator}-{members}"
