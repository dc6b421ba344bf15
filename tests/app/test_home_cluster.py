"""Home runs the pipeline on the Dask scheduler its field names, and links the dashboard of a
job that runs on one. (The job on a cluster itself: ``tests/test_jobs_cluster.py``.)"""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rem_core.cluster import SCHEDULER_ENV
from rem_core.config import RemConfig
from rem_core.jobs import JobStatus, job_folder, job_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The jobs Home starts, recorded instead of started (``start_job`` as
    ``pages._pipeline`` calls it)."""
    import pages._pipeline

    calls: list[dict] = []

    def record(key: str, kind: str, config: RemConfig, **kwargs: object) -> JobStatus:
        calls.append(dict(kwargs, key=key, kind=kind))
        return JobStatus(key, kind, str(kwargs.get("label")), "running", started=time.time())

    monkeypatch.setattr(pages._pipeline, "start_job", record)
    return calls


@pytest.fixture
def fresh(app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of its own, no scheduler in the environment."""
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    return tmp_path


def _home(started: bool = True) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = started
    return at.run()


def test_a_bad_scheduler_says_so_and_starts_nothing(
    seed_tiny_world, fresh: Path, starts: list[dict]
):
    seed_tiny_world(fresh)
    at = _home()
    assert not at.exception and not at.error
    at.text_input(key="home_cluster").input("my-cluster").run()
    assert not at.exception
    assert "Dask scheduler 'my-cluster': expected local" in at.error[0].value
    assert at.button(key="home_pipeline").disabled  # AppTest, as a browser, cannot click it
    assert starts == [] and not (fresh / "jobs").exists()


def test_the_first_start_on_a_bad_scheduler_waits_for_a_good_one(
    seed_tiny_world, fresh: Path, starts: list[dict], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(SCHEDULER_ENV, "local:0")
    seed_tiny_world(fresh)
    at = _home(started=False)
    assert not at.exception
    assert "Dask scheduler 'local:0'" in at.error[0].value
    assert starts == []
    at.text_input(key="home_cluster").input("").run()  # empty: in the job's own process
    assert not at.exception and not at.error
    assert [(c["cluster"], c["world"]) for c in starts] == [(None, None)]


@pytest.mark.parametrize("built", [True, False], ids=["built", "cold"])
def test_the_first_start_runs_on_the_environments_scheduler(
    seed_tiny_world, fresh: Path, starts: list[dict], monkeypatch: pytest.MonkeyPatch, built: bool
):
    monkeypatch.setenv(SCHEDULER_ENV, "local:2")
    if built:
        seed_tiny_world(fresh)
    at = _home(started=False)
    assert not at.exception
    assert at.text_input(key="home_cluster").value == "local:2"
    (call,) = starts
    assert call["cluster"] == "local:2"
    assert (call["world"] is None) == built  # a cold cache: the job builds the world first


def test_run_the_pipeline_starts_the_job_on_the_scheduler_given(
    seed_tiny_world, fresh: Path, starts: list[dict]
):
    world = seed_tiny_world(fresh)
    at = _home()
    at.text_input(key="home_cluster").input(" tcp://10.0.0.5:8786 ").run()
    assert not at.exception and not at.error
    at.button(key="home_pipeline").click().run()
    (call,) = starts
    assert call["cluster"] == "tcp://10.0.0.5:8786"
    assert call["kind"] == "pipeline" and not call["retrain"]
    # the same key as in process: the cluster computes the same results
    assert call["key"] == job_key("pipeline", RemConfig.tiny(), world.root)


def test_retrain_runs_on_the_scheduler_given(
    app_env: Path, app_pipeline: Path, starts: list[dict], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    at = _home()
    at.text_input(key="home_cluster").input("local:1").run()
    at.button(key="home_retrain").click().run()
    assert not at.exception
    (call,) = starts
    assert call["retrain"] and call["cluster"] == "local:1"


def test_a_job_on_a_cluster_shows_where_it_runs_and_its_dashboard(seed_tiny_world, fresh: Path):
    # A job "runs" (its lock held here, as the job process would) on a cluster.
    config = RemConfig.tiny()
    world = seed_tiny_world(fresh)
    folder = job_folder(job_key("pipeline", config, world.root), fresh)
    folder.mkdir(parents=True)
    status = {
        "kind": "pipeline", "label": "tiny world, ffjord", "state": "running",
        "stages": [["detecting", [3, 48, 1.0, None]]], "started": time.time(),
        "cluster": "tcp://10.0.0.5:8786",
    }  # fmt: skip
    (folder / "status.json").write_text(json.dumps(status))
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        at = _home()
        assert not at.exception
        running = next(m.value for m in at.markdown if "Running the pipeline" in m.value)
        assert "on the Dask cluster `tcp://10.0.0.5:8786`" in running
        assert not at.link_button  # not connected yet
        assert any("Connecting to `tcp://10.0.0.5:8786`" in c.value for c in at.caption)
        status["dashboard"] = "http://10.0.0.5:8787/status"
        (folder / "status.json").write_text(json.dumps(status))
        at.run()
        assert not at.exception
        assert at.link_button(key="home_dashboard").proto.url == "http://10.0.0.5:8787/status"
