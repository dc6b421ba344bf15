"""Benchmark: several researchers at once, as N headless Chromium sessions on one app server.

Issue 29, item 4. One ``streamlit run app.py`` serves a team; this measures how much slower
each page gets when ``--sessions`` people (default 8) browse it at the same time, and
whether any of them sees an error.

1. **Lone**: one Chromium session visits every page, a warm-up round and then
   ``--lone-repeats`` rounds, and each page's median time is kept
   (``bench/browser_pages.py``'s :func:`page_times`: from the click on the page's sidebar
   link until the script has run and every plotly chart has drawn).
2. **Load** (:func:`load_test`): ``--sessions`` Chromium sessions, one thread and one driver
   each, open the app, wait for each other, then all visit every page in the same order, a
   warm-up round and ``--rounds`` rounds, timed the same way. Per page: the median over all
   sessions' timed visits, and its ratio to the lone figure.

An *error* is a visit that does not finish within ``--timeout`` seconds, fails in the
browser, or ends on a page showing a Streamlit exception (``stException``) or an error
alert (``stAlertContentError``); warm-up visits count too. An errored visit's time is not
used.

All sessions run on this machine, beside the server: the browsers' own work (layout,
plotly, software WebGL) competes with the server for the same cores. ``machine_cpu_cores``
(busy cores over the load phase, from ``/proc/stat``) and ``server_cpu_cores`` (the server
process's own CPU time over that wall time; only for a server this benchmark started) tell
a saturated machine from a serialised server.

By default it starts the server itself (``bench/app.py``'s ``serve``, on a free port) on the
``--preset`` world (default ``demo``) with the cache in ``--cache`` (default
``$REM_CACHE_DIR``, else the project's ``cache/``), which must hold that world's pipeline:
``make app`` once. ``--url`` uses a running server instead.

Prints a table, then (last line) JSON: ``{"lone_page_s": {page: s}, "load_page_s": {page:
s}, "load_ratio": {page: r}, "load_errors": n, "sessions": N, ..., "calibration_s": ...,
"calibration": {...}}`` (``bench/calibrate.py``, measured before the server starts and
after it stops).

Usage: ``python bench/app_load.py [--url URL] [--sessions 8] [--rounds 2] [--lone-repeats 3]
[--timeout 180] [--cache DIR] [--preset tiny|demo] [PAGE ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_pages import (  # noqa: E402
    PAGES,
    SETTLE_S,
    VisitTimeout,
    _driver,
    open_app,
    page_times,
    visit,
)
from calibrate import calibrate, with_calibration  # noqa: E402

__all__ = ["load_test"]

# What a page shows when its script failed: an uncaught exception, or an st.error alert.
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'


@dataclass
class _Session:
    """What one browsing session saw: timed visits per page, finished visits per page
    (warm-up included) and its errors, as messages."""

    times: dict[str, list[float]] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _checked_visit(driver, title: str, timeout: float) -> tuple[float | None, str | None]:
    """One visit of page ``title``: its seconds (``None`` if it did not finish) and what went
    wrong (``None`` if nothing did)."""
    from selenium.webdriver.common.by import By

    try:
        seconds = visit(driver, title, timeout)
    except VisitTimeout as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - the browser or its driver failed: an error
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"{title}: {type(exc).__name__}: {first}"
    shown = driver.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR)
    if shown:
        return seconds, f"{title}: the page shows an error: {shown[0].text[:300]!r}"
    return seconds, None


def _browse(
    index: int,
    base_url: str,
    pages: list[str],
    rounds: int,
    timeout: float,
    start: threading.Barrier,
    seen: _Session,
) -> None:
    """Session ``index``: open the app, wait at ``start`` for the others, then visit ``pages``
    for a warm-up round and ``rounds`` timed rounds, recording into ``seen``."""
    driver = None
    try:
        try:
            driver = _driver()
            open_app(driver, base_url, timeout)
        finally:
            start.wait()  # every session starts browsing at once, even one that failed to open
        # The app opens on Home: a click on the link of the page already shown may start no
        # run at all, so a round that starts with Home visits it last instead.
        order = pages[1:] + pages[:1] if pages[:1] == ["Home"] else pages
        for round_ in range(rounds + 1):
            for title in order:
                seconds, error = _checked_visit(driver, title, timeout)
                if error is not None:
                    seen.errors.append(f"session {index}, round {round_}: {error}")
                if seconds is not None:
                    seen.finished[title] = seen.finished.get(title, 0) + 1
                    if error is None and round_ > 0:
                        seen.times.setdefault(title, []).append(seconds)
                time.sleep(SETTLE_S)
    except Exception as exc:  # noqa: BLE001 - a broken session is a result, not a crash
        seen.errors.append(f"session {index}: {type(exc).__name__}: {exc}")
    finally:
        if driver is not None:
            driver.quit()


def load_test(
    base_url: str,
    sessions: int = 8,
    rounds: int = 2,
    pages: list[str] | None = None,
    *,
    timeout: float = 180,
) -> dict:
    """Browse the app at ``base_url`` from ``sessions`` Chromium sessions at once.

    Each session (a thread with its own driver) opens the app; once all have, each visits
    every page of ``pages`` in order, a warm-up round and then ``rounds`` timed rounds.

    Args:
        base_url: the running app, e.g. ``"http://127.0.0.1:8597"``.
        sessions: Chromium sessions browsing at once.
        rounds: timed rounds over ``pages`` after the warm-up round.
        pages: sidebar titles of the pages to visit (default: every page, ``PAGES``).
        timeout: seconds after which a visit counts as an error.

    Returns:
        ``load_page_s``: ``{page: median seconds}`` over every session's timed visits
        without error (``None`` for a page with none); ``load_visits``: ``{page: visits
        that finished}``, warm-up included, out of ``visits_per_page`` (``sessions *
        (rounds + 1)``); ``load_errors``: how many visits went wrong and ``errors`` what
        they were; ``sessions``, ``rounds``, and ``load_wall_s``, the load phase's seconds.
    """
    if sessions < 1 or rounds < 1:
        raise ValueError(f"sessions and rounds must be at least 1, not {sessions} and {rounds}")
    pages = list(PAGES if pages is None else pages)
    seen = [_Session() for _ in range(sessions)]
    start = threading.Barrier(sessions)
    threads = [
        threading.Thread(
            target=_browse,
            args=(i, base_url, pages, rounds, timeout, start, seen[i]),
            name=f"load-session-{i}",
        )
        for i in range(sessions)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    times = {title: [s for one in seen for s in one.times.get(title, [])] for title in pages}
    errors = [error for one in seen for error in one.errors]
    return {
        "load_page_s": {
            title: round(statistics.median(times[title]), 3) if times[title] else None
            for title in pages
        },
        "load_visits": {title: sum(one.finished.get(title, 0) for one in seen) for title in pages},
        "visits_per_page": sessions * (rounds + 1),
        "load_errors": len(errors),
        "errors": errors,
        "sessions": sessions,
        "rounds": rounds,
        "load_wall_s": round(wall, 1),
    }


def _busy_jiffies() -> tuple[int, int]:
    """This machine's busy and total CPU time so far, in clock ticks (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _print_table(result: dict) -> None:
    """The per-page figures of ``result`` as a human-readable table."""
    n = result["sessions"]
    print(f"{'page':28s} {'lone s':>7s} {f'{n} sessions s':>13s} {'ratio':>6s} {'visits':>7s}")
    for title, lone in result["lone_page_s"].items():
        load, ratio = result["load_page_s"][title], result["load_ratio"][title]
        visits = f"{result['load_visits'][title]}/{result['visits_per_page']}"
        load_s = "-" if load is None else f"{load:.2f}"
        ratio_s = "-" if ratio is None else f"{ratio:.1f}x"
        print(f"{title:28s} {lone:7.2f} {load_s:>13s} {ratio_s:>6s} {visits:>7s}")
    print(
        f"{result['load_errors']} errors; load phase {result['load_wall_s']:.0f} s, "
        f"machine {result['machine_cpu_cores']:.2f} of {os.cpu_count()} cores busy"
        + (
            f", server process {result['server_cpu_cores']:.2f} cores"
            if "server_cpu_cores" in result
            else ""
        )
    )
    for error in result["errors"]:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", default=PAGES, help="sidebar titles (default: all)")
    parser.add_argument("--url", default=None, help="a running app (default: start one)")
    parser.add_argument("--sessions", type=int, default=8, help="Chromium sessions at once")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds under load")
    parser.add_argument("--lone-repeats", type=int, default=3, help="timed rounds alone")
    parser.add_argument("--timeout", type=float, default=180, help="seconds before a visit fails")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("REM_CACHE_DIR", ROOT / "cache")),
        help="cache folder of a started server (default: $REM_CACHE_DIR, else cache/)",
    )
    parser.add_argument(
        "--preset", default="demo", choices=["tiny", "demo"], help="the world (default: demo)"
    )
    args = parser.parse_args()
    if args.sessions < 1 or args.rounds < 1 or args.lone_repeats < 1:
        parser.error("--sessions, --rounds and --lone-repeats must be at least 1")
    unknown = sorted(set(args.pages) - set(PAGES))
    if unknown:
        parser.error(f"no such page: {', '.join(unknown)}; pages are {', '.join(PAGES)}")

    # bench/app.py by name only here: under pytest, ``app`` may be the Streamlit entry point
    from app import _cpu_s, _free_port, serve, stop

    before = calibrate()
    server = None
    url = args.url
    if url is None:
        log = Path(tempfile.mkdtemp(prefix="rem-load-")) / "streamlit.log"
        port = _free_port()
        print(f"starting streamlit on port {port} ({args.preset} world, cache {args.cache})")
        server = serve(args.cache.resolve(), port, log, {}, args.preset)
        url = f"http://127.0.0.1:{port}"
    try:
        lone = page_times(url, args.pages, repeats=args.lone_repeats, timeout=args.timeout)
        print("lone: " + ", ".join(f"{t} {s:.2f} s" for t, s in lone.items()), flush=True)
        busy0, total0 = _busy_jiffies()
        cpu0 = _cpu_s(server.pid) if server is not None else 0.0
        began = time.perf_counter()
        result = load_test(url, args.sessions, args.rounds, args.pages, timeout=args.timeout)
        wall = time.perf_counter() - began
        busy1, total1 = _busy_jiffies()
        result["machine_cpu_cores"] = round((busy1 - busy0) / (total1 - total0) * os.cpu_count(), 2)
        if server is not None:
            result["server_cpu_cores"] = round((_cpu_s(server.pid) - cpu0) / wall, 2)
    finally:
        if server is not None:
            stop(server)
    result = {
        "lone_page_s": {t: round(s, 3) for t, s in lone.items()},
        **result,
        "load_ratio": {
            t: None if result["load_page_s"][t] is None else round(result["load_page_s"][t] / s, 2)
            for t, s in lone.items()
        },
    }
    _print_table(result)
    print(json.dumps(with_calibration(result, before)))


if __name__ == "__main__":
    main()
