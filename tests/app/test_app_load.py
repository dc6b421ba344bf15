"""Several researchers at once: three Chromium sessions browse the running app together
(``bench/app_load.py``'s ``load_test``) on the tiny world, and every visit finishes without
an exception or an error alert.

No timing is asserted: how much slower pages get under load is the benchmark's to measure
(``python bench/app_load.py``), on the demo world.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator

import pytest

# the browser tests' marks (skipped without Chromium) and their server on the tiny world
from test_browser import ROOT, app_url, pytestmark  # noqa: F401

# Sidebar titles of the pages browsed: two analyses and Home (the 3D scene's software WebGL
# in three browsers on the suite's two cores would time the browsers, not the server).
PAGES = ["Rareness vs recall", "Log-probability histograms", "Home"]
SESSIONS = 3


@pytest.fixture(scope="module")
def load_test() -> Iterator[Callable[..., dict]]:
    """``bench/app_load.py``'s ``load_test``. The module is loaded by its path (registered
    while it runs, as its dataclasses need) and puts ``bench/`` on ``sys.path`` (for its
    siblings); the path is given back afterwards."""
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("bench_app_load", ROOT / "bench" / "app_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module.load_test
    finally:
        sys.modules.pop(spec.name, None)
        sys.path[:] = saved


def test_sessions_at_once_all_finish_without_errors(
    app_url: str,  # noqa: F811 - the fixture imported above
    load_test: Callable[..., dict],
) -> None:
    # a generous bound per visit: it only decides when a stuck visit counts as an error
    result = load_test(app_url, sessions=SESSIONS, rounds=1, pages=PAGES, timeout=120)
    assert result["load_errors"] == 0, "\n".join(result["errors"])
    # every session finished every visit, the warm-up round's and the timed round's
    assert result["visits_per_page"] == SESSIONS * 2
    assert result["load_visits"] == {page: SESSIONS * 2 for page in PAGES}
    assert all(seconds is not None for seconds in result["load_page_s"].values())
