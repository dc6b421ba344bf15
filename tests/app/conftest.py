"""Fixtures of the app tests: the tiny world built once, in a cache folder of its own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import ensure_world

ROOT = Path(__file__).resolve().parents[2]
# the pages import their shared module as `pages._shared`, as under `streamlit run app.py`
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory: pytest.TempPathFactory, seed_tiny_world) -> Path:
    """A cache root (``REM_CACHE_DIR``) holding the built tiny world."""
    root = tmp_path_factory.mktemp("rem_cache")
    seed_tiny_world(root)
    return root


@pytest.fixture(scope="session")
def app_world(app_cache: Path) -> Dataset:
    """The tiny world in ``app_cache``."""
    return ensure_world(RemConfig.tiny().world, root=app_cache)


@pytest.fixture(scope="session")
def app_pipeline(app_cache: Path, app_world: Dataset) -> Path:
    """``app_cache`` with the tiny pipeline computed (detectors to FFJORD rareness), as the
    app runs it for the tiny preset."""
    from rem_core.pipeline import run_pipeline

    run_pipeline(RemConfig.tiny(), app_world, root=app_cache)
    return app_cache


@pytest.fixture
def app_env(app_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's environment: the tiny preset by default, the cache in ``app_cache``."""
    monkeypatch.setenv("REM_PRESET", "tiny")
    monkeypatch.setenv("REM_CACHE_DIR", str(app_cache))
    return app_cache


@pytest.fixture(autouse=True)
def _main_module() -> Iterator[None]:
    """Give back the process's ``__main__`` after each test.

    Streamlit's script runner installs the page it runs as ``sys.modules["__main__"]`` and
    leaves it there. A process started later with multiprocessing's spawn (a world built
    by two processes, a local Dask cluster) re-runs ``__main__`` first: each would run
    app.py, streamlit and all, before its own work (about 250 s of the suite's CPU).
    """
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def _served_navigation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every AppTest run as a served app runs after its first script: through app.py.

    Streamlit's legacy multipage mode (on while a ``pages/`` folder exists and
    ``st.navigation`` has not run yet in the process) runs a page alone. A server turns it
    off once for good (``pages._shared.run_in_app``), but AppTest turns it back on before
    every run, so each rerun would start in it and lose the widget values the test just set.
    """
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def init_served(self: PagesManager, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_served)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Debian Chromium driven by selenium, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        # software WebGL, for plotly's 3D scene on a machine without a GPU
        "--enable-unsafe-swiftshader",
        "--window-size=1600,1500",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
