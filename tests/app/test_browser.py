"""The running app in a real headless Chromium: every page loads, draws, and raises nothing.

Starts ``streamlit run app.py`` on a free loopback port with the tiny world pre-built, visits
each page by its URL path, waits for the script to finish and the charts to draw, checks
for exceptions and error alerts, and saves a screenshot per page in ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOST = "127.0.0.1"

# Pages in the order visited, by name: URL path and query, the CSS selectors that must be
# present once the page has drawn, and a text it must show. The first visit of a fresh server
# is a deep link: it must still run through app.py (sidebar, navigation, wide layout).
PAGES = {
    "scene_explorer": (
        "scene_explorer?scene_segment=w0-0002&scene_frame=3",
        ['[data-testid="stPlotlyChart"] .main-svg', '[data-testid="stDataFrame"]'],
        "Boxes of frame 3",
    ),
    "home": ("", ['[data-testid="stMetric"]', '[data-testid="stDataFrame"]'], "Segments by split"),
    "rareness_recall": (
        "rareness_recall",
        ['[data-testid="stPlotlyChart"] .main-svg'],
        "Rareness vs recall",
    ),
    "log_prob": ("log_prob", ['[data-testid="stPlotlyChart"] .main-svg'], "Log-probability"),
    "rarest_tracks": (
        "rarest_tracks",
        ['[data-testid="stPlotlyChart"] .main-svg', '[data-testid="stDataFrame"]'],
        "Rarest tracks",
    ),
    "mining": (
        "mining",
        ['[data-testid="stPlotlyChart"] .main-svg', '[data-testid="stDataFrame"]'],
        "Mining simulation",
    ),
    "rare_vs_hard": ("rare_vs_hard", ['[data-testid="stPlotlyChart"] .main-svg'], "Rare vs hard"),
    "experiments": ("experiments", ['[data-testid="stMultiSelect"]'], "Experiments"),
}
NAV_LINKS = [
    "Home",
    "Scene explorer",
    "Rareness vs recall",
    "Log-probability histograms",
    "Rarest tracks",
    "Mining simulation",
    "Rare vs hard",
    "Experiments",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"needs Debian chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
        "install them with `make system`",
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s")


@pytest.fixture(scope="module")
def app_url(app_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``streamlit run app.py`` on the tiny world with its pipeline computed;
    stopped after the module."""
    app_cache = app_pipeline
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {
        **os.environ,
        "REM_PRESET": "tiny",
        "REM_CACHE_DIR": str(app_cache),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true",
                "--server.address", HOST,
                "--server.port", str(port),
                "--server.fileWatcherType", "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://{HOST}:{port}"
            try:
                _wait_healthy(url, proc)
            except (RuntimeError, TimeoutError) as exc:
                pytest.fail(f"{exc}; log:\n{log_path.read_text()}")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_until_drawn(driver: object, selectors: list[str], timeout: float = 60) -> None:
    """Wait for the script run to finish and every selector to match."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def drawn(d: object) -> bool:
        idle = d.find_elements(
            By.CSS_SELECTOR, '[data-testid="stApp"][data-test-script-state="notRunning"]'
        )
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        present = all(d.find_elements(By.CSS_SELECTOR, s) for s in selectors)
        return bool(idle) and not running and present

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(drawn)
    time.sleep(1.0)  # let plotly finish drawing (WebGL) before the screenshot


@pytest.mark.parametrize("name", list(PAGES))
def test_page_draws_without_errors(app_url: str, browser: object, name: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    path, selectors, text = PAGES[name]
    browser.get(f"{app_url}/{path}")
    shot = ARTIFACTS / f"page_{name}.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        _wait_until_drawn(browser, selectors)
    except TimeoutException:
        browser.save_screenshot(str(shot))
        pytest.fail(f"page /{path} did not finish drawing; screenshot in {shot}")
    browser.save_screenshot(str(shot))

    exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    messages = [e.text for e in exceptions + errors]
    assert not messages, f"page /{path} shows errors (screenshot {shot}): {messages}"
    main = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert text in main
    assert "WebGL is not supported" not in browser.page_source
    # app.py ran: its sidebar and navigation are there, and nothing else is listed
    links = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    assert [link.text.splitlines()[-1] for link in links] == NAV_LINKS  # after the icon
    sidebar = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarContent"]').text
    assert "World preset" in sidebar
