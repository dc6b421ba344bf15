"""The pages while the pipeline refines: the main model's detections and the fast first density
are published, the ensemble members' scores and FFJORD are not (a copy of the tiny pipeline's
cache without them). Every page shows an analysis and says what it is ranked by."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rem_core.config import RemConfig
from rem_core.jobs import JobStatus, StageStatus
from rem_core.pipeline import (
    DETECTION_STAGE,
    FIRST_DENSITY,
    RARENESS_STAGE,
    ensure_world,
    fitting_stage,
    pipeline_status,
    scoring_stage,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def refining(app_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache as the pipeline leaves it before the members and FFJORD: the tiny pipeline's
    (hard links), its members' part and its FFJORD rareness taken out."""
    cache = tmp_path_factory.mktemp("refining") / "cache"
    shutil.copytree(app_pipeline, cache, copy_function=os.link)
    config = RemConfig.tiny()
    world = ensure_world(config.world, root=cache)
    shutil.rmtree(DETECTION_STAGE.entry(config, world, cache).path / "members")
    shutil.rmtree(RARENESS_STAGE.entry(config, world, cache).path)
    state = pipeline_status(config, world, cache)
    assert state["detections_main"] and state["first_rareness"]
    assert not state["detections"] and not state["rareness"]
    return cache


@pytest.fixture
def env(refining: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REM_PRESET", "tiny")
    monkeypatch.setenv("REM_CACHE_DIR", str(refining))
    return refining


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True  # no job: the cache stays as it is
    at.run()
    return at.switch_page(f"pages/{name}.py").run()


def infos(at: AppTest) -> str:
    return " ".join(info.value for info in at.info)


def test_home_says_a_first_analysis_is_ready(env: Path) -> None:
    at = open_page("home")
    assert not at.exception
    text = " ".join(s.value for s in at.success)
    assert "A first analysis is ready on every page" in text and "Gaussian" in text
    assert "ensemble members' scores" in text


@pytest.mark.parametrize("page", ["rarest_tracks", "mining", "rare_vs_hard"])
def test_each_page_shows_the_first_density_and_says_so(env: Path, page: str) -> None:
    at = open_page(page)
    assert not at.exception
    assert "Ranked by a gaussian density" in infos(at)
    assert "FFJORD (continuous flow) is not computed" in infos(at)
    assert len(at.get("plotly_chart")) >= 1


def test_mining_offers_what_needs_no_ensemble(env: Path) -> None:
    at = open_page("mining")
    methods = at.dataframe[0].value["method"].tolist()
    assert methods == ["the whole pool", "Random", "D-REM", "MD-REM"]
    assert "Ensemble variance and M-REM need the ensemble members' scores" in infos(at)
    assert "ensemble" not in at.multiselect(key="mining_methods").options


def test_rare_vs_hard_waits_for_the_variance_axis(env: Path) -> None:
    at = open_page("rare_vs_hard")
    assert at.radio(key="hard_x").options == [
        "points in the predicted box (log scale)",
        "distance from the sensor (m)",
    ]


def test_log_prob_shows_the_computed_density(env: Path) -> None:
    at = open_page("log_prob")
    assert not at.exception
    assert at.selectbox(key="logp_estimator").value == FIRST_DENSITY
    assert "Ranked by a gaussian density" in infos(at)


def _job(**stages: StageStatus) -> JobStatus:
    job = JobStatus("k", "pipeline", "tiny", "running", stages=stages, started=0.0)
    return job


def test_the_notes_say_how_far_the_refinement_got(monkeypatch: pytest.MonkeyPatch) -> None:
    from pages._pipeline import density_eta, members_eta

    monkeypatch.setattr(JobStatus, "elapsed", property(lambda self: 300.0))
    members = StageStatus(done=60, total=180, started=240.0)
    job = _job(**{"ensemble members 2-5 on the unlabelled pool": members})
    assert members_eta(job) == ", about 2 min from now"
    assert density_eta(job, "ffjord") == (
        "; FFJORD follows the ensemble members (they finish, about 2 min from now)"
    )
    done = StageStatus(done=180, total=180, started=0.0, ended=200.0)
    fitting = StageStatus(done=10, total=40, started=200.0)
    job = _job(members=done, **{f"{fitting_stage('ffjord')} on 9 detections": fitting})
    assert density_eta(job, "ffjord") == (
        "; FFJORD has trained 10 of at most 40 epochs, at most about 5 min of training left"
    )
    scoring = StageStatus(done=0, total=1, started=290.0)
    job = _job(**{f"{scoring_stage('ffjord')} every detection": scoring})
    assert density_eta(job, "ffjord") == "; FFJORD is scoring every object now"
    assert members_eta(None) == "" and density_eta(None, "ffjord") == ""
