"""The Mining simulation page under AppTest, on the tiny world with its pipeline cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mining(app_env: Path, app_pipeline: Path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    return at.switch_page("pages/mining.py").run()


def test_mining_page_compares_methods_and_exports(mining: AppTest, tmp_path: Path) -> None:
    at = mining
    assert not at.exception
    assert at.title[0].value == "Mining simulation"
    table = at.dataframe[0].value
    assert table["method"].tolist() == [
        "the whole pool", "Random", "Ensemble variance", "M-REM", "D-REM", "MD-REM"
    ]  # fmt: skip
    budget = int(table["budget"].iloc[1])
    assert (table["tracks"].iloc[1:] <= budget).all()
    # Every export button carries a file; the label set is a Waymo Objects file.
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert set(buttons) == {"CSV", "Parquet", "JSON", "Label set (Waymo .bin)"}


def test_mining_widgets_change_the_output(mining: AppTest) -> None:
    at = mining
    before = at.dataframe[0].value
    at.radio(key="mining_unit").set_value("tracks").run()
    at.slider(key="mining_budget_tracks").set_value(1).run()
    assert not at.exception
    after = at.dataframe[0].value
    assert (after["budget"].iloc[1:] == 1).all() and (after["tracks"].iloc[1:] <= 1).all()
    assert not before.equals(after)
    at.multiselect(key="mining_methods").set_value(["d_rem", "oracle_size"]).run()
    assert at.dataframe[0].value["method"].tolist() == ["the whole pool", "D-REM", "Oracle size"]
    at.multiselect(key="mining_methods").set_value([]).run()
    assert not at.exception and "Pick at least one method" in at.info[0].value


def test_mining_page_budget_zero_and_whole_pool(mining: AppTest) -> None:
    at = mining
    at.slider(key="mining_budget_pct").set_value(0.0).run()
    assert not at.exception
    assert (at.dataframe[0].value["tracks"].iloc[1:] == 0).all()
    assert "No track mined" in at.info[0].value
    at.slider(key="mining_budget_pct").set_value(20.0).run()
    at.checkbox(key="mining_fp_costs").check().run()
    assert not at.exception


def test_mining_page_without_the_pipeline_says_so(
    seed_tiny_world, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    seed_tiny_world(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True  # Home must not start it on its own
    at.run()
    at = at.switch_page("pages/mining.py").run()
    assert not at.exception
    assert "Run the pipeline on **Home**" in at.info[0].value


def test_mining_runs_once_per_method_and_settings(
    mining: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Revisiting the page, or coming back to a budget, mines nothing again; a new budget
    # mines each method once, and its label set is that budget's. (2 tracks: a budget no
    # other test of this worker's page cache has mined.)
    import rem_core.mining as mining_api

    calls = []
    real = mining_api.select_from_pool

    def counted(pool, order, settings, *args, **kwargs):
        calls.append(settings.budget)
        return real(pool, order, settings, *args, **kwargs)

    monkeypatch.setattr(mining_api, "select_from_pool", counted)
    at = mining
    methods = len(at.multiselect(key="mining_methods").value)
    label_set = at.get("download_button")[-1].proto.url
    at.run()
    assert calls == [] and not at.exception
    at.radio(key="mining_unit").set_value("tracks").run()
    at.slider(key="mining_budget_tracks").set_value(2).run()
    assert calls == [2] * methods
    assert at.get("download_button")[-1].proto.url != label_set
    at.slider(key="mining_budget_tracks").set_value(2).run()
    at.radio(key="mining_unit").set_value("% of the pool's tracks").run()
    assert calls == [2] * methods and not at.exception
    assert at.get("download_button")[-1].proto.url == label_set
