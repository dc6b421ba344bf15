"""The app on an imported data set without point clouds: REM through geometric descriptors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rem_core.dataset import Dataset
from rem_core.io import import_waymo_objects

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = ROOT.parent / "shared" / "data" / "waymo" / "objects" / "fake_ground_truths.bin"


def _open_folder(root: Path, estimator: str | None = None) -> AppTest:
    """The app (not on its first start) with the data set folder ``root`` picked in the
    sidebar, and the density model ``estimator`` if given."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True
    if estimator is not None:
        at.session_state["app_estimator"] = estimator
    at.run()
    at.radio(key="app_source").set_value("folder").run()
    at.text_input(key="app_folder").input(str(root)).run()
    return at


def _run_pipeline(at: AppTest, timeout: float) -> None:
    """Press Home's *Run the pipeline* and rerun until the analyses are ready."""
    at.button(key="home_pipeline").click().run()
    deadline = time.monotonic() + timeout
    while not any("are ready" in s.value for s in at.success):
        assert time.monotonic() < deadline, f"the pipeline did not finish in {timeout:.0f} s"
        assert not at.error, at.error[0].value
        time.sleep(1)
        at.run()


@pytest.mark.skipif(not OBJECTS.is_file(), reason=f"no Waymo sample at {OBJECTS}")
def test_imported_labels_run_the_pipeline_and_fill_the_pages(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    ds: Dataset = import_waymo_objects(OBJECTS, tmp_path / "waymo")
    at = _open_folder(ds.root)
    assert not at.exception
    assert any("geometric descriptors" in m.value for m in at.markdown)
    _run_pipeline(at, 300)
    for page in ("rarest_tracks", "log_prob", "mining", "rare_vs_hard", "rareness_recall"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
    at.switch_page("pages/rarest_tracks.py").run()
    assert len(at.dataframe[0].value) > 0
    # One score per detection: the mining page does not pick the ensemble's methods itself,
    # and says why when they are picked.
    at.switch_page("pages/mining.py").run()
    methods = at.multiselect(key="mining_methods")
    assert "m_rem" not in methods.value and "ensemble" not in methods.value
    methods.set_value([*methods.value, "m_rem"]).run()
    assert not at.exception
    assert any("variance is 0" in c.value for c in at.caption)


@pytest.mark.skipif(not OBJECTS.is_file(), reason=f"no Waymo sample at {OBJECTS}")
def test_imported_features_fill_the_pages_that_can_use_them(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from rem_core.io import attach_detections, detections_from_waymo_objects

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    ds: Dataset = import_waymo_objects(OBJECTS, tmp_path / "waymo")
    predictions = detections_from_waymo_objects(OBJECTS.with_name("fake_predictions.bin"), ds)
    features = np.random.default_rng(0).normal(size=(len(predictions), 6))
    attach_detections(ds.root, predictions, features)
    at = _open_folder(ds.root, estimator="gaussian")
    assert any("features your detector gave" in m.value for m in at.markdown)
    _run_pipeline(at, 120)
    at.switch_page("pages/rareness_recall.py").run()
    assert not at.exception
    assert any("missed object has no features" in i.value for i in at.info)
    at.switch_page("pages/log_prob.py").run()
    assert not at.exception
    assert any("have no log p" in c.value for c in at.caption)
    for page in ("rarest_tracks", "mining", "rare_vs_hard"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page


@pytest.mark.skipif(not OBJECTS.is_file(), reason=f"no Waymo sample at {OBJECTS}")
def test_the_sidebar_chooses_the_features_and_home_says_which_and_why(
    app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    ds: Dataset = import_waymo_objects(OBJECTS, tmp_path / "waymo")
    at = _open_folder(ds.root)
    assert at.selectbox(key="app_features").value == "auto"
    assert not at.exception
    caption = next(c.value for c in at.caption if "Features:" in c.value)
    assert "Features: **geometry**: geometric descriptors of its labelled boxes" in caption
    at.selectbox(key="app_features").set_value("detector").run()
    assert not at.exception
    assert "--features detector: the source split" in at.error[0].value
    assert not at.button  # nothing to run on features the data cannot give
    at.selectbox(key="app_features").set_value("geometry").run()
    assert "as asked" in next(c.value for c in at.caption if "Features:" in c.value)


SAMPLES = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no real samples at {SAMPLES}")
@pytest.mark.parametrize("fmt, inputs", [
    ("av2", ["av2"]),
    ("kitti-tracking", ["kitti_tracking"]),
    ("waymo", ["waymo/frames/*.tfrecord"]),
])  # fmt: skip
def test_each_real_sample_runs_in_the_app_from_its_folder(
    fmt: str, inputs: list[str], app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rem_core.io import import_data

    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    ds = import_data(fmt, [str(SAMPLES / i) for i in inputs], tmp_path / "data")
    at = _open_folder(ds.root, estimator="gaussian")
    assert not at.exception
    assert any("Features: **geometry**" in c.value for c in at.caption)
    _run_pipeline(at, 300)
    for page in ("rarest_tracks", "log_prob", "mining", "rare_vs_hard", "scene_explorer"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
