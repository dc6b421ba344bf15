"""Home runs the pipeline in the background with progress; pages fill in when it is done."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rem_core.artifacts import ensure_world
from rem_core.config import RemConfig
from rem_core.pipeline import pipeline_status

ROOT = Path(__file__).resolve().parents[2]


def test_home_with_the_pipeline_done_links_the_analyses(app_env: Path, app_pipeline: Path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "rareness scores (FFJORD (continuous flow)) are ready" in at.success[0].value
    assert not at.button  # nothing to run


def test_first_start_runs_the_pipeline_in_the_background(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    world = ensure_world(RemConfig.tiny().world, root=tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("Running the pipeline" in m.value for m in at.markdown)
    # Meanwhile another page says what it waits for, without an exception.
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    page.session_state["home_pipeline_started"] = True
    page.run()
    page = page.switch_page("pages/mining.py").run()
    assert not page.exception
    assert "being computed on Home" in page.info[0].value or "Run the pipeline" in (
        page.info[0].value
    )
    deadline = time.monotonic() + 300
    while not pipeline_status(RemConfig.tiny(), world, root=tmp_path)["rareness"]:
        assert time.monotonic() < deadline, "the tiny pipeline did not finish in 5 minutes"
        time.sleep(1)
    time.sleep(1)  # let the job record its end
    at.run()
    assert not at.exception
    assert "are ready" in at.success[0].value


def test_the_pipeline_runs_only_behind_the_button_after_the_first_start(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    ensure_world(RemConfig.tiny().world, root=tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True
    at.run()
    assert not at.exception
    assert at.button(key="home_pipeline").label == "Run the pipeline"
    assert not (tmp_path / "detector").exists()
