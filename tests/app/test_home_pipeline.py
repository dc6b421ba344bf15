"""Home runs the pipeline as a job in a process of its own, with progress; pages fill in when
it is done. (The job surviving a restart of a real server, and two browser tabs sharing one
job, are tested in ``test_server_jobs.py``.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.jobs import job_key, read_job
from rem_core.pipeline import pipeline_status

ROOT = Path(__file__).resolve().parents[2]


def test_home_with_the_pipeline_done_links_the_analyses(app_env: Path, app_pipeline: Path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "rareness scores (FFJORD (continuous flow)) are ready" in at.success[0].value
    assert [b.key for b in at.button] == ["home_retrain"]  # nothing to run but a retrain
    assert "trained here" in at.expander[0].markdown[0].value


def test_first_start_runs_the_pipeline_in_the_background(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    world = seed_tiny_world(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("Running the pipeline" in m.value for m in at.markdown)
    # Meanwhile another page says what it waits for, without an exception.
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    page.session_state["home_pipeline_started"] = True
    page.run()
    page = page.switch_page("pages/mining.py").run()
    assert not page.exception
    assert "being computed" in page.info[0].value or "Run the pipeline" in (page.info[0].value)
    deadline = time.monotonic() + 300
    while not pipeline_status(RemConfig.tiny(), world, root=tmp_path)["rareness"]:
        assert time.monotonic() < deadline, "the tiny pipeline did not finish in 5 minutes"
        time.sleep(1)
    job = pipeline_job(tmp_path, world)
    while job.running:
        assert time.monotonic() < deadline, "the job did not record its end"
        time.sleep(0.2)
        job = pipeline_job(tmp_path, world)
    assert job.state == "done" and job.pid != os.getpid()
    at.run()
    assert not at.exception
    assert "are ready" in at.success[0].value


def test_the_pipeline_runs_only_behind_the_button_after_the_first_start(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    seed_tiny_world(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True
    at.run()
    assert not at.exception
    assert at.button(key="home_pipeline").label == "Run the pipeline"
    assert not (tmp_path / "detector").exists()


def pipeline_job(root: Path, world: Dataset):
    """The status of the app's pipeline job for the tiny world in cache ``root``."""
    return read_job(job_key("pipeline", RemConfig.tiny(), world.root), root)


def test_two_sessions_on_a_cold_cache_start_one_job_that_builds_the_world(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    first = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    second = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for at in (first, second):
        assert not at.exception
        assert "Building the **tiny** world" in at.info[0].value
    (folder,) = (tmp_path / "jobs").iterdir()  # one job for both sessions
    pid = int((folder / "pid").read_text())
    deadline = time.monotonic() + 300
    while (status := read_job(folder.name, tmp_path)).running:
        assert time.monotonic() < deadline, "the tiny job did not finish in 5 minutes"
        time.sleep(0.5)
    assert status.state == "done", status.error
    assert int((folder / "pid").read_text()) == pid
    assert list(status.stages)[0] == "building the world"
    for at in (first, second):
        at.run()
        assert not at.exception
        assert "are ready" in at.success[-1].value
    assert len(list((tmp_path / "jobs").iterdir())) == 1


def test_home_says_why_the_pipeline_failed_and_offers_to_run_it_again(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from rem_core.jobs import job_folder

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    world = seed_tiny_world(tmp_path)
    folder = job_folder(job_key("pipeline", RemConfig.tiny(), world.root), tmp_path)
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(
        '{"kind": "pipeline", "label": "tiny world, ffjord", "state": "failed", '
        '"stages": [], "started": 0, "error": "ValueError: too few detections"}'
    )
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "The pipeline failed: ValueError: too few detections" in at.error[0].value
    assert at.button(key="home_pipeline").label == "Run the pipeline"
    assert not (tmp_path / "detector").exists()  # a failed job is not restarted unasked


def test_retrain_trains_the_detectors_again_in_a_job(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from rem_core.pipeline import run_pipeline

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    world = seed_tiny_world(tmp_path)
    run_pipeline(RemConfig.tiny(), world, root=tmp_path)
    model = next(tmp_path.glob("detector/*/member-0/model.pt"))
    before = model.stat().st_mtime_ns
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.button(key="home_retrain").click().run()
    assert not at.exception
    job = pipeline_job(tmp_path, world)
    assert job is not None and "retraining the detectors" in job.label
    deadline = time.monotonic() + 300
    while (job := pipeline_job(tmp_path, world)).running:
        assert time.monotonic() < deadline, "the retrain did not finish in 5 minutes"
        time.sleep(0.5)
    assert job.state == "done", job.error
    assert next(tmp_path.glob("detector/*/member-0/model.pt")).stat().st_mtime_ns > before
    at.run()
    assert "are ready" in at.success[-1].value


def _rerun_past_the_status_cache(at: AppTest) -> None:
    """Run Home again once what it last read of the cache has expired: pages read which
    stages are published at most a second ago (``pages._pipeline.status``), and a stage of
    the tiny pipeline can be published within that second."""
    time.sleep(1.1)
    at.run()


def test_the_checklist_shows_each_stage_as_soon_as_it_is_published(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A job "runs" (its lock held here, as the job process would), and the stages are
    # published one by one underneath Home, as the job publishes them.
    import fcntl
    import json

    from rem_core.jobs import job_folder
    from rem_core.pipeline import ensure_detections, ensure_detectors, ensure_rareness

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    config = RemConfig.tiny()
    world = seed_tiny_world(tmp_path)
    folder = job_folder(job_key("pipeline", config, world.root), tmp_path)
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(
        json.dumps(
            {"kind": "pipeline", "label": "tiny world, ffjord", "state": "running",
             "stages": [["detecting", [3, 48, 1.0, None]]], "started": time.time()}
        )
    )  # fmt: skip
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        checklist = next(m.value for m in at.markdown if "Done so far" in m.value)
        assert "detectors :material/close:" in checklist
        assert any("detecting: 3 / 48" in p.proto.text for p in at.get("progress"))
        ensure_detectors(config, world, root=tmp_path)
        _rerun_past_the_status_cache(at)
        checklist = next(m.value for m in at.markdown if "Done so far" in m.value)
        assert "detectors :material/check:, detections :material/close:" in checklist
        ensure_detections(config, world, root=tmp_path)
        _rerun_past_the_status_cache(at)
        checklist = next(m.value for m in at.markdown if "Done so far" in m.value)
        assert "detections :material/check:, rareness :material/close:" in checklist
        ensure_rareness(config, world, root=tmp_path)
        _rerun_past_the_status_cache(at)
        assert "are ready" in at.success[-1].value
    assert not at.exception
