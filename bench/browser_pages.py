"""Benchmark: each page of a running app in headless Chromium, as a user waits for it.

``page_times(base_url, pages)`` opens the app at ``base_url`` (a running ``streamlit run
app.py``) in Debian's headless Chromium (selenium, ``/usr/bin/chromium`` and
``/usr/bin/chromedriver``), visits every page once through its sidebar link to warm the
server's caches, then ``repeats`` more rounds over the pages, and returns per page the median
seconds of these later visits: from the click on the page's sidebar link until

- the script run has started and finished (``data-test-script-state`` went ``running``,
  then ``notRunning``) and Streamlit's running indicator (``stStatusWidget``) is gone, and
- every plotly chart on the page has drawn (each ``stPlotlyChart`` holds a ``.main-svg``),
  and there are at least as many as ``MIN_CHARTS`` says (Streamlit loads its chart code
  lazily: a chart not yet in the page cannot be waited for), two animation frames later.

The wait runs in the page (``performance.now()``, polled every animation frame), so the
figures do not include selenium's polling. A visit that does not finish within ``timeout``
seconds counts as ``timeout`` (and is reported on stderr).

``--ws`` also reports the bytes the server sent over the websocket per visit (Chrome's
performance log), to tell a large message from a slow render.

Pages are named by their sidebar titles, e.g. ``"Scene explorer"``. It needs selenium (and
torch, for the calibration).

Usage: ``python bench/browser_pages.py [--url http://localhost:8597] [--repeats 3] [--ws]
[PAGE ...]``; prints seconds per page, then (last line) JSON ``{"<page>": seconds, ...,
"calibration_s": ..., "calibration": {...}}`` (this machine's ``bench/calibrate.py`` time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from calibrate import with_calibration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGES = [
    "Home",
    "Scene explorer",
    "Rareness vs recall",
    "Log-probability histograms",
    "Rarest tracks",
    "Mining simulation",
    "Rare vs hard",
    "Experiments",
]

# Plotly charts each page draws at least, on a data set with its pipeline run.
MIN_CHARTS = {
    "Scene explorer": 2,
    "Rareness vs recall": 1,
    "Log-probability histograms": 1,
    "Rarest tracks": 4,
    "Mining simulation": 1,
    "Rare vs hard": 1,
}

# Seconds to let a drawn page's last frames and websocket messages land before the next click.
SETTLE_S = 0.5

# Clicks the sidebar link titled arguments[0], then waits in the page (every animation frame)
# for the run to start and finish and every plotly chart to draw; calls back with the seconds
# since the click, or an error string.
_VISIT_JS = """
const [title, minCharts, timeoutMs, done] = arguments;
const links = [...document.querySelectorAll('[data-testid="stSidebarNavLink"]')];
const link = links.find(a => a.innerText.trim().split('\\n').pop().trim() === title);
if (!link) { done('no sidebar link ' + title); return; }
const app = document.querySelector('[data-testid="stApp"]');
let started = false;
const observer = new MutationObserver(() => {
  if (app.getAttribute('data-test-script-state') === 'running') started = true;
});
observer.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
const t0 = performance.now();
link.click();
let settled = 0;
function check() {
  const now = performance.now();
  if (app.getAttribute('data-test-script-state') === 'running') started = true;
  const idle = started && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"]');
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  const drawn = charts.length >= minCharts && charts.every(c => c.querySelector('.main-svg'));
  if (now - t0 > timeoutMs) {
    observer.disconnect();
    const svgs = charts.filter(c => c.querySelector('.main-svg')).length;
    done(`timeout (script ${started ? app.getAttribute('data-test-script-state') : 'not started'}`
      + `, ${svgs} of ${charts.length} charts drawn, ${minCharts} expected)`);
    return;
  }
  if (idle && drawn) {
    if (++settled >= 2) { observer.disconnect(); done((now - t0) / 1000); return; }
  } else settled = 0;
  requestAnimationFrame(check);
}
requestAnimationFrame(check);
"""


def _driver(width: int = 1600, height: int = 1500, ws_log: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--enable-unsafe-swiftshader",  # software WebGL for plotly's 3D scenes
        f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='rem-chromium-')}",
    ):
        options.add_argument(arg)
    if ws_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(600)
    # a visit's script answers only when the page has drawn: selenium's HTTP client must wait
    # as long as the script may run (its default gives up after 120 s, mid-visit)
    driver.command_executor.client_config.timeout = 660
    return driver


def _ws_bytes(driver) -> int:
    """Bytes received over websockets since the last call (Chrome's performance log)."""
    total = 0
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.webSocketFrameReceived":
            payload = message["params"]["response"]["payloadData"]
            opcode = message["params"]["response"].get("opcode", 1)
            total += len(payload) * 3 // 4 if opcode == 2 else len(payload)  # base64 binary
    return total


class VisitTimeout(RuntimeError):
    """A page did not finish drawing within the visit's timeout."""


def open_app(driver, base_url: str, timeout: float = 120) -> None:
    """Load the app at ``base_url`` in ``driver`` and wait until its first script run is over
    and the sidebar's page links are there (so that :func:`visit` can click them)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url)
    WebDriverWait(driver, timeout).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
            and d.find_elements(
                By.CSS_SELECTOR, '[data-testid="stApp"][data-test-script-state="notRunning"]'
            )
        )
    )


def visit(driver, title: str, timeout: float = 120, min_charts: int | None = None) -> float:
    """Seconds from a click on the sidebar link ``title`` until that page has drawn.

    ``min_charts``: plotly charts to wait for at least (default ``MIN_CHARTS``, else 0).
    Raises :class:`VisitTimeout` if the page has not drawn within ``timeout`` seconds, and
    ``RuntimeError`` if the sidebar has no link ``title``.
    """
    if min_charts is None:
        min_charts = MIN_CHARTS.get(title, 0)
    result = driver.execute_async_script(_VISIT_JS, title, min_charts, timeout * 1000)
    if isinstance(result, str):
        if result.startswith("timeout"):
            raise VisitTimeout(f"{title}: did not finish within {timeout:.0f} s{result[7:]}")
        raise RuntimeError(result)
    return float(result)


def page_times(
    base_url: str,
    pages: list[str],
    *,
    repeats: int = 3,
    timeout: float = 120,
    runs: dict[str, list[float]] | None = None,
    ws_bytes: dict[str, list[int]] | None = None,
) -> dict[str, float]:
    """Median seconds per page of ``repeats`` visits after a first, warming one.

    Args:
        base_url: the running app, e.g. ``"http://localhost:8597"``.
        pages: sidebar titles of the pages to visit, in order (see ``PAGES``).
        repeats: timed rounds over ``pages`` after the warm-up round.
        timeout: seconds after which a visit counts as ``timeout``.
        runs: if given, filled with every timed visit's seconds per page.
        ws_bytes: if given, filled with the websocket bytes received per timed visit.

    Returns:
        ``{page: median seconds}`` in the order of ``pages``.
    """
    driver = _driver(ws_log=ws_bytes is not None)
    runs = {} if runs is None else runs
    try:
        open_app(driver, base_url, timeout)
        for round_ in range(repeats + 1):
            for title in pages:
                if ws_bytes is not None:
                    _ws_bytes(driver)
                try:
                    seconds = visit(driver, title, timeout)
                except VisitTimeout as exc:
                    print(exc, file=sys.stderr)
                    seconds = float(timeout)
                time.sleep(SETTLE_S)
                if round_ == 0:
                    continue  # the warm-up
                runs.setdefault(title, []).append(seconds)
                if ws_bytes is not None:
                    ws_bytes.setdefault(title, []).append(_ws_bytes(driver))
    finally:
        driver.quit()
    return {title: statistics.median(runs[title]) for title in pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", default=PAGES, help="sidebar titles (default: all)")
    parser.add_argument("--url", default="http://localhost:8597")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--ws", action="store_true", help="report websocket bytes per visit")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {}
    ws: dict[str, list[int]] | None = {} if args.ws else None
    medians = page_times(
        args.url, args.pages, repeats=args.repeats, timeout=args.timeout, runs=runs, ws_bytes=ws
    )
    for title, seconds in medians.items():
        each = ", ".join(f"{s:.2f}" for s in runs[title])
        size = f"  ws {statistics.median(ws[title]) / 1e6:.2f} MB" if ws is not None else ""
        print(f"{title:28s} {seconds:6.2f} s  (runs: {each}){size}")
    print(json.dumps(with_calibration({t: round(s, 3) for t, s in medians.items()})))


if __name__ == "__main__":
    main()
