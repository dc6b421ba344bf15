"""What the analysis pages share: the pipeline's settings, its background run, cached results.

Not a page. The pipeline (detector ensemble, detections and features, tracks and
auto-labels, PCA and density, scores) runs in a background thread of the server, one per
data set and settings, so that a user can browse while it works and every page becomes
usable as soon as its inputs are cached. :func:`pipeline_job` reports how far it got.

Pages read results through :func:`require_detections`, :func:`require_rareness` and
:func:`require_pool`: each returns the cached result, or explains what is missing (with a
link to Home, which runs the pipeline) and stops the page.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from pages._shared import OpenData, selected_data
from rem_core.config import RemConfig
from rem_core.density import ESTIMATORS
from rem_core.mining import MiningPool
from rem_core.pipeline import (
    DetectionRun,
    RarenessRun,
    ensure_mining_pool,
    features_for,
    load_detections,
    load_rareness,
    pipeline_status,
    run_pipeline,
)

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

ESTIMATOR_NAMES = tuple(ESTIMATORS)
ESTIMATOR_LABELS = {
    "ffjord": "FFJORD (continuous flow)",
    "gaussian": "Gaussian",
    "gmm": "Gaussian mixture",
    "knn": "k nearest neighbours",
    "realnvp": "RealNVP",
}


def init_pipeline_state() -> None:
    """Default of the sidebar's density-model choice (key ``app_estimator``)."""
    st.session_state.setdefault("app_estimator", "ffjord")


def app_config(data: OpenData, estimator: str | None = None) -> RemConfig:
    """The settings the app runs the pipeline with on ``data``.

    A built-in world uses its preset's settings; a data set folder uses the demo preset's
    detector, tracker, density and scoring settings, and, when it holds no point cloud to
    train a detector on (imported labels), geometric descriptors as features
    (``features.source = "geometry"``), and when it holds a detector's detections with their
    features, those (``"imported"``; see ``rem_core.pipeline.features_for``). ``estimator``
    (default: the sidebar's choice) picks the density model.
    """
    init_pipeline_state()
    choice = selected_data()
    preset = choice.preset if choice.source == "world" and choice.preset else "demo"
    config = RemConfig.preset(preset)
    name = estimator or st.session_state["app_estimator"]
    config = dataclasses.replace(
        config, rareness=dataclasses.replace(config.rareness, estimator=name)
    )
    if choice.source == "folder":
        config = features_for(config, data.dataset)
    return config


@dataclass
class PipelineJob:
    """A pipeline run in a background thread, and how far it got.

    Attributes:
        label: what runs, for messages.
        stages: ``stage -> (done, total)`` as reported, in the order they started.
        started: ``time.monotonic()`` at the start.
        finished: when it ended (``None`` while running).
        error: why it failed, if it did.
    """

    label: str
    stages: dict[str, tuple[int, int]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def elapsed(self) -> float:
        """Seconds since the start (to the end, once ended)."""
        return (self.finished or time.monotonic()) - self.started

    def report(self, stage: str, done: int, total: int) -> None:
        self.stages[stage] = (done, total)


@st.cache_resource(show_spinner=False)
def _jobs() -> dict[str, PipelineJob]:
    # one registry per server process: every session sees the same background runs
    return {}


@st.cache_resource(show_spinner=False)
def _jobs_lock() -> threading.Lock:
    return threading.Lock()


def _job_key(data: OpenData, config: RemConfig) -> str:
    from rem_core.config import config_hash

    return config_hash(config, data.key)


def pipeline_job(data: OpenData, config: RemConfig) -> PipelineJob | None:
    """The background run for ``data`` and ``config``, running or ended, if any."""
    return _jobs().get(_job_key(data, config))


def start_pipeline(data: OpenData, config: RemConfig) -> PipelineJob:
    """Start the pipeline in the background unless it already runs; return its job."""
    label = f"{data.label}, {config.rareness.estimator}"
    return _start(_job_key(data, config), label, lambda job: run_pipeline(
        config, data.dataset, progress=job.report
    ))  # fmt: skip


def experiment_job(data: OpenData, config: RemConfig) -> PipelineJob | None:
    """The background experiment for ``data`` and ``config``, running or ended, if any."""
    return _jobs().get("experiment-" + _job_key(data, config))


def start_experiment(data: OpenData, config: RemConfig) -> PipelineJob:
    """Start the active-learning experiment (``rem_core.experiment.run_experiment``; it runs
    the pipeline's missing stages first) in the background unless it already runs."""
    from rem_core.experiment import run_experiment

    label = f"experiment on {data.label}"
    return _start(
        "experiment-" + _job_key(data, config),
        label,
        lambda job: run_experiment(config, data.dataset, progress=job.report),
    )


def _start(key: str, label: str, work: Callable[[PipelineJob], object]) -> PipelineJob:
    with _jobs_lock():
        job = _jobs().get(key)
        if job is not None and job.running:
            return job
        job = PipelineJob(label=label)
        _jobs()[key] = job

    def run() -> None:
        try:
            work(job)
        except Exception as exc:  # noqa: BLE001 - reported on the page, never lost
            log.exception("%s failed", label)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.monotonic()

    threading.Thread(target=run, name=f"rem-{key[:20]}", daemon=True).start()
    return job


def status(data: OpenData, config: RemConfig) -> dict:
    """Which stages are cached (see ``rem_core.pipeline.pipeline_status``)."""
    return pipeline_status(config, data.dataset)


@st.cache_resource(show_spinner=False, max_entries=4)
def _detections(path: str) -> DetectionRun:
    return load_detections(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _rareness(path: str) -> RarenessRun:
    return load_rareness(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _pool(rareness_path: str, _config: RemConfig, _data: OpenData) -> MiningPool:
    return ensure_mining_pool(_config, _data.dataset)


def _missing(what: str, data: OpenData, config: RemConfig) -> None:
    job = pipeline_job(data, config)
    if job is not None and job.running:
        st.info(
            f"{what} are being computed on Home ({job.label}); this page fills in when they "
            "are ready.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"{what} are not computed yet for {data.label}. Run the pipeline on **Home**.",
            icon=":material/info:",
        )
    st.page_link("pages/home.py", label="Home: run the pipeline", icon=":material/home:")
    st.stop()


def require_detections(data: OpenData, config: RemConfig) -> DetectionRun:
    """The detection stage's output, or a message and a stopped page."""
    state = status(data, config)
    if not state["detections"]:
        _missing("Detections, features and ensemble scores", data, config)
    return _detections(str(state["detections_path"]))


def require_rareness(data: OpenData, config: RemConfig) -> RarenessRun:
    """The rareness stage's output for ``config.rareness.estimator``, or a message and a
    stopped page (a missing estimator can be fitted from Home)."""
    state = status(data, config)
    if not state["rareness"]:
        _missing(f"Rareness scores ({ESTIMATOR_LABELS[config.rareness.estimator]})", data, config)
    return _rareness(str(state["rareness_path"]))


def require_pool(data: OpenData, config: RemConfig) -> MiningPool:
    """The unlabelled pool as mining sees it, or a message and a stopped page."""
    state = status(data, config)
    if not (state["detections"] and state["rareness"]):
        _missing("Detections and rareness scores", data, config)
    return _pool(str(state["rareness_path"]), config, data)
