"""Benchmark: the app on the demo world: the cold pipeline, and each page's warm render.

``cold_pipeline_s``: the whole demo pipeline from an empty cache (world, detector ensemble,
detections and features, tracks and auto-labels, PCA and FFJORD, scores), as Home runs it,
in a temporary cache folder (``--cache`` to keep it); ``stage_s`` splits it by stage. Skip
it with ``--no-cold`` (it takes about ten minutes and both cores).

``page_s``: seconds for each page's second run under Streamlit's AppTest (the first warms the
caches) on the demo world from the default cache, which must hold the demo pipeline (run
``make app`` once, or this benchmark without ``--no-cold`` and with ``--cache cache``).

Prints a human-readable summary, then (last line) JSON:
``{"cold_pipeline_s": ..., "stage_s": {...}, "page_s": {"<page>": ...}}``.

Usage: ``python bench/app.py [--no-cold] [--cache DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (
    "pages/home.py",
    "pages/scene_explorer.py",
    "pages/rareness_recall.py",
    "pages/log_prob.py",
    "pages/rarest_tracks.py",
    "pages/mining.py",
    "pages/rare_vs_hard.py",
)


def cold_pipeline(cache: Path) -> dict:
    """Time the demo pipeline from an empty cache at ``cache``."""
    from rem_core.artifacts import ensure_world
    from rem_core.config import RemConfig
    from rem_core.pipeline import run_pipeline

    config = RemConfig.demo()
    marks: dict[str, float] = {}
    start = time.perf_counter()
    ds = ensure_world(config.world, root=cache)
    marks["world"] = time.perf_counter() - start

    def progress(stage: str, done: int, total: int) -> None:
        marks[stage.split(" on ")[0]] = time.perf_counter() - start
        if done == 0:
            print(f"  {time.perf_counter() - start:6.0f} s  {stage}", flush=True)

    run_pipeline(config, ds, root=cache, progress=progress)
    total = time.perf_counter() - start
    ends = sorted(marks.items(), key=lambda kv: kv[1])
    stage_s, previous = {}, 0.0
    for name, end in ends:
        stage_s[name] = round(end - previous, 1)
        previous = end
    return {"cold_pipeline_s": total, "stage_s": stage_s}


def page_times() -> dict[str, float]:
    """Warm render time of each page on the demo world (AppTest, second run)."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(ROOT))
    init = PagesManager.__init__

    def init_served(self: PagesManager, *args: object, **kwargs: object) -> None:
        # as a served app runs after its first script (see tests/app/conftest.py)
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init_served
    os.environ.pop("REM_PRESET", None)
    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.session_state["home_pipeline_started"] = True
        at.run()
        at.switch_page(page).run()
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception[0].value}")
        start = time.perf_counter()
        at.run()
        out[Path(page).stem] = round(time.perf_counter() - start, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cold", action="store_true", help="skip the cold pipeline")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder of the cold run")
    args = parser.parse_args()
    result: dict = {}
    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="rem-cold-") as tmp:
            cache = args.cache or Path(tmp)
            print(f"cold demo pipeline in {cache}:")
            result.update(cold_pipeline(cache))
        print(f"cold pipeline {result['cold_pipeline_s'] / 60:.1f} min (target <= 10 min)")
    result["page_s"] = page_times()
    print(
        "warm page renders: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in result["page_s"].items())
        + " (target <= 2 s each)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
