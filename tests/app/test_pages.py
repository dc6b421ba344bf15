"""Every page under Streamlit's AppTest, on the tiny world (``REM_PRESET=tiny``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rem_core.dataset import Dataset, DatasetWriter

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30  # seconds per script run; a run takes well under one on the tiny world


def chart_specs(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as the JSON Streamlit sends to the browser."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def box_trace_names(spec: dict) -> list[str]:
    return [t["name"] for t in spec["data"] if (t.get("meta") or {}).get("kind") == "boxes"]


def open_scene(at: AppTest) -> AppTest:
    at.run()
    return at.switch_page("pages/scene_explorer.py").run()


@pytest.fixture
def app(app_env: Path) -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def open_folder(at: AppTest, folder: Path) -> AppTest:
    at.run()
    at.radio(key="app_source").set_value("folder").run()
    return at.text_input(key="app_folder").input(str(folder)).run()


@pytest.fixture
def one_empty_frame(app_world: Dataset, tmp_path: Path) -> Path:
    """A data set of one segment with one frame: no points, the boxes of a world frame."""
    segment = app_world.segments.iloc[:1].assign(segment_id="lone", num_frames=1)
    frames = app_world.frames.iloc[:1].assign(segment_id="lone", num_points=0)
    first = frames["frame_index"].iloc[0]
    boxes = app_world.frame_boxes(app_world.segments["segment_id"].iloc[0], first)
    with DatasetWriter(tmp_path / "lone", {"source": "test"}) as writer:
        writer.add_segment(
            segment, frames, boxes.assign(segment_id="lone"), [np.zeros((0, 4), np.float32)]
        )
    return tmp_path / "lone"


def test_home_summarises_the_default_world(app: AppTest, app_world: Dataset) -> None:
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "REM Workbench"
    assert at.selectbox(key="app_preset").value == "tiny"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Segments"] == str(len(app_world.segments))
    assert metrics["Frames"] == str(len(app_world.frames))
    assert metrics["Large vehicle tracks"].endswith("%")
    splits = at.dataframe[0].value
    assert splits["segments"].sum() == len(app_world.segments)
    assert set(at.dataframe[1].value["class"]) == set(app_world.tracks["class"])


def test_home_builds_a_missing_world_in_the_pipeline_job_with_progress(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from rem_core.jobs import read_job

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    at = app.run()
    assert not at.exception
    assert "Building the **tiny** world" in at.info[0].value
    (folder,) = (tmp_path / "jobs").iterdir()
    deadline = time.monotonic() + 300
    while (job := read_job(folder.name, tmp_path)).running:
        assert time.monotonic() < deadline, "the tiny job did not finish in 5 minutes"
        time.sleep(0.5)
    assert job.state == "done", job.error
    assert "building the world" in job.stages
    # the next run shows the summary, and the analyses ready
    at.run()
    assert not at.exception
    assert at.metric[0].label == "Segments"
    assert (tmp_path / "world").is_dir()
    assert "are ready" in at.success[-1].value


def test_other_preset_is_built_only_behind_a_button(
    app: AppTest, app_world: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("REM_PRESET", "demo")  # the default is demo: tiny is "another" preset
    app.session_state["home_pipeline_started"] = True  # not the first start
    app.session_state["app_preset"] = "tiny"
    at = app.run()
    assert not at.exception
    assert at.button(key="home_build").label == "Build the tiny world"
    assert not (tmp_path / "world").exists()


def test_folder_source_explains_a_bad_folder(app: AppTest, tmp_path: Path) -> None:
    at = app.run()
    at.radio(key="app_source").set_value("folder").run()
    assert not at.exception
    assert "Enter the path" in at.info[0].value
    at.text_input(key="app_folder").input(str(tmp_path)).run()
    assert not at.exception
    assert "is not a REM data set" in at.info[0].value
    # the preset is kept while the folder source is picked
    at.radio(key="app_source").set_value("world").run()
    assert at.selectbox(key="app_preset").value == "tiny"


def test_folder_source_opens_a_data_set_folder(app: AppTest, app_world: Dataset) -> None:
    at = app.run()
    at.radio(key="app_source").set_value("folder").run()
    at.text_input(key="app_folder").input(str(app_world.root)).run()
    assert not at.exception
    assert at.metric[0].value == str(len(app_world.segments))
    at = at.switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert len(chart_specs(at)) == 2


def test_scene_explorer_draws_3d_bev_and_table(app: AppTest, app_world: Dataset) -> None:
    at = open_scene(app)
    assert not at.exception
    assert at.title[0].value == "Scene explorer"
    scene, bev = chart_specs(at)
    assert scene["data"][0]["type"] == "scatter3d"
    assert bev["data"][0]["type"] == "heatmap"
    segment = at.selectbox(key="scene_segment").value
    frame = at.select_slider(key="scene_frame").value
    boxes = app_world.frame_boxes(segment, frame)
    assert len(at.dataframe[0].value) == len(boxes)
    assert at.query_params == {"scene_segment": segment, "scene_frame": str(frame)}


def test_scene_widgets_change_the_output(app: AppTest, app_world: Dataset) -> None:
    at = open_scene(app)
    before = chart_specs(at)
    table_before = at.dataframe[0].value

    at.select_slider(key="scene_frame").set_value(5).run()
    assert not at.exception
    after = chart_specs(at)
    assert after[0]["data"][0] != before[0]["data"][0]  # other points
    assert not at.dataframe[0].value.equals(table_before)
    assert at.query_params["scene_frame"] == "5"

    names = box_trace_names(after[0])
    at.radio(key="scene_color_by").set_value("subtype").run()
    assert not at.exception
    by_subtype = box_trace_names(chart_specs(at)[0])
    assert by_subtype != names
    assert any(name.startswith("sedan") for name in by_subtype)

    at.radio(key="scene_point_color").set_value("intensity").run()
    at.select_slider(key="scene_max_points").set_value(10_000).run()
    assert not at.exception
    cloud = chart_specs(at)[0]["data"][0]
    assert cloud["marker"]["colorbar"]["title"]["text"] == "intensity"
    assert len(cloud["x"]["bdata"]) < len(after[0]["data"][0]["x"]["bdata"])

    last = app_world.segments["segment_id"].iloc[-1]
    at.selectbox(key="scene_segment").set_value(last).run()
    assert not at.exception
    assert at.query_params["scene_segment"] == last
    assert chart_specs(at)[1] != after[1]


def test_scene_figures_are_cached_per_frame(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second visit of a frame (or any rerun that keeps it) builds no figure."""
    import streamlit as st

    import rem_core.viz

    st.cache_data.clear()  # the figures of earlier tests' frames
    built = []
    scene_figure = rem_core.viz.scene_figure

    def counted(*args: object, **kwargs: object) -> object:
        built.append(kwargs.get("max_points"))
        return scene_figure(*args, **kwargs)

    monkeypatch.setattr(rem_core.viz, "scene_figure", counted)
    at = open_scene(app)
    at.select_slider(key="scene_frame").set_value(6).run()
    at.select_slider(key="scene_max_points").set_value(5_000).run()
    assert not at.exception
    first = chart_specs(at)
    n = len(built)
    at.run()
    at.switch_page("pages/home.py").run()
    at = at.switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert len(built) == n  # drawn from the cache
    assert chart_specs(at) == first
    at.select_slider(key="scene_max_points").set_value(10_000).run()
    assert len(built) == n + 1 and built[-1] == 10_000  # another setting: built once more
    assert len(chart_specs(at)[0]["data"][0]["x"]["bdata"]) > len(first[0]["data"][0]["x"]["bdata"])


def test_scene_explorer_follows_a_link(app: AppTest, app_world: Dataset) -> None:
    tracks = app_world.tracks
    track = tracks[tracks["class"] == "vehicle"].iloc[-1]
    app.query_params.update(scene_segment=track["segment_id"], scene_track=track["track_id"])
    at = open_scene(app)
    assert not at.exception
    assert at.selectbox(key="scene_segment").value == track["segment_id"]
    # no frame in the link: the track's first frame
    assert at.select_slider(key="scene_frame").value == track["first_frame"]
    assert at.selectbox(key="scene_track").value == track["track_id"]
    assert f"track {track['track_id']}" in box_trace_names(chart_specs(at)[0])[-1]
    assert at.query_params["scene_track"] == track["track_id"]


def test_scene_explorer_takes_session_state_from_another_page(
    app: AppTest, app_world: Dataset
) -> None:
    at = app.run()
    segment = app_world.segments["segment_id"].iloc[2]
    at.session_state["scene_segment"] = segment
    at.session_state["scene_frame"] = 3
    at = at.switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert at.selectbox(key="scene_segment").value == segment
    assert at.select_slider(key="scene_frame").value == 3


def test_scene_explorer_warns_on_a_bad_link(app: AppTest) -> None:
    app.query_params.update(scene_segment="nope", scene_frame="x")
    at = open_scene(app)
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "'nope' is not in this data set" in warnings and "'x'" in warnings
    assert len(chart_specs(at)) == 2


def test_scene_explorer_keeps_its_frame_across_pages(app: AppTest) -> None:
    at = open_scene(app)
    at.select_slider(key="scene_frame").set_value(4).run()
    at.switch_page("pages/home.py").run()
    at = at.switch_page("pages/scene_explorer.py").run()
    assert at.select_slider(key="scene_frame").value == 4


def test_scene_explorer_without_a_world_points_to_home(
    app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app.run()  # built on Home in the test cache; now point at an empty cache
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    at = at.switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert "not built yet" in at.info[0].value
    assert not at.get("plotly_chart")


def test_scene_explorer_page_runs_alone(app_env: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "scene_explorer.py"), default_timeout=TIMEOUT)
    at.session_state["scene_frame"] = 2
    at.run()
    assert not at.exception
    assert at.select_slider(key="scene_frame").value == 2
    assert len(chart_specs(at)) == 2


def test_an_empty_data_set_is_explained(app: AppTest, tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "empty", {"source": "test"}):
        pass
    at = open_folder(app, tmp_path / "empty")
    assert not at.exception
    assert "no segments" in at.warning[0].value
    at = at.switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert "no segments" in at.info[0].value


def test_a_frame_without_points_draws_its_boxes(app: AppTest, one_empty_frame: Path) -> None:
    at = open_folder(app, one_empty_frame).switch_page("pages/scene_explorer.py").run()
    assert not at.exception
    assert "no points" in at.warning[0].value
    assert "only frame" in at.caption[0].value  # one frame: no slider
    scene, bev = chart_specs(at)
    assert box_trace_names(scene) and box_trace_names(bev)
    assert len(at.dataframe[0].value) > 0
