"""Benchmark: the app where its user is: `streamlit run`, and Home open in a real browser.

**Cold start** (skip with ``--no-cold``; about ten minutes and both cores): starts
``streamlit run app.py`` on the demo world with an empty cache folder, as ``make app`` does
after its set-up, opens Home in headless Chromium and leaves it open, as a user watching the
progress would, and times:

- ``server_answer_s``: from the start of ``streamlit run`` until the server answers;
- ``first_analysis_s``: from the start of ``streamlit run`` until Home shows "A first
  analysis is ready" (every page shows an analysis, ranked by the fast first density, the
  ensemble members' scores and FFJORD still to come; ``rem_core.pipeline.run_pipeline``);
- ``cold_ready_s``: from the start of ``streamlit run`` until Home shows "are ready." (the
  refined analyses: the members' scores and FFJORD);
- ``stage_s``: each stage of the pipeline job as the job recorded it (``status.json``,
  ``rem_core.jobs``): the world, shipped or trained detectors, detection, the ensemble's
  members, tracks, the density model; a stage's time runs from the previous one's end;
- ``server_cpu_share``: the CPU time of the Streamlit server process itself (not of its
  children: the job is one) from Home's first answer until ready, over that wall time, in
  cores (0.1 = 10% of one core); ``job_cpu_share`` likewise for the job process.

``--retrain`` runs it with ``REM_SHIPPED_WEIGHTS=0``: the detectors are trained rather than
copied from the package (``rem_core.pipeline.shipped``).

**Pages** (``browser_page_s``): each page's time in Chromium from the click on its sidebar
link until it has run and drawn its charts, the median of ``--repeats`` visits after a first
(``bench/browser_pages.py``), on the demo world in the cold run's cache (or, with
``--no-cold``, in ``--cache``, default the project's ``cache/``, which must hold the demo
pipeline: run ``make app`` once).

**Several at once** (``load_page_s``, ``load_errors``; skip with ``--load-sessions 0``):
``--load-sessions`` Chromium sessions (default 8) browse every page together, a warm-up
round and one timed round (``bench/app_load.py``'s ``load_test``); each page's median time
and the visits that timed out or showed an error. The browsers run on this machine too: on
2 cores they, not the server, take most of the CPU (``bench/app_load.py`` says more).

Every figure is also given in *calibration units* (``per_calibration``: seconds divided by
``calibration_s``, this machine's time of ``bench/calibrate.py``'s fixed workload, the mean
of one measured before the cold start and one after the pages), so that two machines'
figures can be compared.

Prints a human-readable summary, then (last line) JSON: ``{"first_analysis_s": ...,
"cold_ready_s": ..., "stage_s": {...}, "browser_page_s": {...}, "load_page_s": {...},
"load_errors": ..., "server_cpu_share": ..., ..., "calibration_s": ..., "per_calibration":
{...}}``.

Usage: ``python bench/app.py [--no-cold] [--retrain] [--cache DIR] [--repeats N]
[--load-sessions N] [--preset tiny|demo]`` (``tiny``: a one-minute check of the benchmark itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_load import load_test  # noqa: E402
from browser_pages import PAGES, _driver, page_times  # noqa: E402
from calibrate import calibrate, with_calibration  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` itself, not of its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def serve(
    cache: Path, port: int, log: Path, env: dict[str, str], preset: str = "demo"
) -> subprocess.Popen:
    """``streamlit run app.py`` on the ``preset`` world with ``cache``, answering on ``port``."""
    env = {
        **os.environ,
        **env,
        "REM_PRESET": preset,
        "REM_CACHE_DIR": str(cache),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer within 120 s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def cold_start(
    cache: Path, preset: str, retrain: bool, timeout: float = 3600
) -> tuple[dict, str, subprocess.Popen]:
    """Time a cold start in the server with Home open in Chromium; the result, the base URL
    of the server and the server itself (left running, for the page times)."""
    from selenium.webdriver.common.by import By

    from rem_core.jobs import read_job

    port = _free_port()
    log = cache.parent / f"{cache.name}-streamlit.log"
    start = time.perf_counter()
    env = {"REM_SHIPPED_WEIGHTS": "0"} if retrain else {}
    server = serve(cache, port, log, env, preset)
    answered = time.perf_counter()
    url = f"http://127.0.0.1:{port}"
    first = None
    driver = _driver()
    try:
        driver.get(url + "/")
        cpu0, wall0 = _cpu_s(server.pid), time.perf_counter()
        job_pid, job_cpu, seen = None, 0.0, ""
        while True:
            time.sleep(2.0)
            body = driver.find_element(By.TAG_NAME, "body").text
            if job_pid is None and list(cache.glob("jobs/*/pid")):
                job_pid = int(next(cache.glob("jobs/*/pid")).read_text())
            if job_pid is not None:
                try:
                    job_cpu = _cpu_s(job_pid)  # its last reading before it ended
                except FileNotFoundError:
                    pass
            lines = [x for x in body.splitlines() if ": " in x and " / " in x]
            line = lines[-1] if lines else ""  # the stage running now
            if line and line != seen:
                seen = line
                print(f"  {time.perf_counter() - start:6.0f} s  {line}", flush=True)
            if first is None and "A first analysis is ready" in body:
                first = time.perf_counter()
                print(f"  {first - start:6.0f} s  a first analysis is ready", flush=True)
            if "are ready." in body:
                break
            if "pipeline failed" in body or "pipeline stopped" in body:
                raise RuntimeError(f"the pipeline did not finish: {body[-600:]}")
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"not ready after {timeout} s")
        ready = time.perf_counter()
        wall = ready - wall0
        server_cpu = _cpu_s(server.pid) - cpu0
    finally:
        driver.quit()
    (folder,) = list(cache.glob("jobs/*/status.json"))
    status = read_job(folder.parent.name, cache)
    stage_s, previous = {}, 0.0
    for name, stage in status.stages.items():
        end = stage.ended if stage.ended is not None else stage.started
        short = name.split(" on ")[0].split(" every ")[0]
        short = short.replace(" shipped with the app", " (shipped)")
        stage_s[short] = round(end - previous, 1)
        previous = end
    return (
        {
            "server_answer_s": round(answered - start, 1),
            # None: Home never showed the first analysis alone (the refinement came with it)
            "first_analysis_s": None if first is None else round(first - start, 1),
            "cold_ready_s": round(ready - start, 1),
            "stage_s": stage_s,
            "job_s": round(status.elapsed, 1),
            "server_cpu_share": round(server_cpu / wall, 3),
            "job_cpu_share": round(job_cpu / wall, 2),
            "shipped_weights": not retrain,
        },
        url,
        server,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cold", action="store_true", help="skip the cold start")
    parser.add_argument("--retrain", action="store_true", help="cold start training the detectors")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder to use/keep")
    parser.add_argument("--repeats", type=int, default=3, help="timed visits of each page")
    parser.add_argument(
        "--load-sessions", type=int, default=8, help="sessions browsing at once (0: skip)"
    )
    parser.add_argument(
        "--preset", default="demo", choices=["tiny", "demo"], help="the world (default: demo)"
    )
    args = parser.parse_args()
    calibrated = calibrate()  # and again at the end: the machine's speed drifts over a cold start
    result: dict = {}
    tmp = None
    if args.no_cold:
        cache = (args.cache or ROOT / "cache").resolve()
        log = Path(tempfile.mkdtemp(prefix="rem-bench-")) / "streamlit.log"
        server = serve(cache, (port := _free_port()), log, {}, args.preset)
        url = f"http://127.0.0.1:{port}"
    else:
        if args.cache is None:
            tmp = Path(tempfile.mkdtemp(prefix="rem-cold-"))
        cache = (args.cache or tmp / "cache").resolve()
        if cache.exists() and any(cache.iterdir()):
            raise SystemExit(f"{cache}: not empty; a cold start needs an empty cache folder")
        print(f"cold start of the {args.preset} world in {cache} (Home open in Chromium):")
        cold, url, server = cold_start(cache, args.preset, args.retrain)
        result.update(cold)
        since = result["server_answer_s"]  # the targets count from the server answering
        first = result["first_analysis_s"]
        print(
            f"from the server answering ({since:.0f} s after its start): a first analysis "
            + ("never alone" if first is None else f"{(first - since) / 60:.1f} min")
            + f" (target <= 4 min), refined {(result['cold_ready_s'] - since) / 60:.1f} min "
            f"(target <= 10 min); server {result['server_cpu_share']:.1%} of a core",
            flush=True,
        )
    try:
        times = page_times(url, PAGES, repeats=args.repeats)
        result["browser_page_s"] = {page: round(s, 2) for page, s in times.items()}
        if args.load_sessions:
            load = load_test(url, sessions=args.load_sessions, rounds=1, timeout=120)
            result["load_page_s"] = load["load_page_s"]
            result["load_errors"] = load["load_errors"]
            print(
                f"{args.load_sessions} sessions at once (median, second visits): "
                + ", ".join(f"{k} {v} s" for k, v in load["load_page_s"].items())
                + f"; {load['load_errors']} visits failed",
                flush=True,
            )
    finally:
        stop(server)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        "pages in Chromium (median of second visits): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in result["browser_page_s"].items())
        + " (target <= 2 s each)"
    )
    result = with_calibration(result, calibrated)
    result["per_calibration"] = per_calibration(result)
    units = result["per_calibration"]
    if "cold_ready_s" in units:
        print(f"cold start to ready: {units['cold_ready_s']:.0f} calibration units")
    print(
        "pages in calibration units: "
        + ", ".join(f"{k} {v:.2f}" for k, v in units["browser_page_s"].items())
    )
    print(json.dumps(result))


def per_calibration(result: dict) -> dict:
    """The timings of ``result`` (``first_analysis_s``, ``cold_ready_s``, ``job_s``,
    ``stage_s``, ``browser_page_s``, ``load_page_s``; a page without a time stays ``None``)
    divided by its ``calibration_s``: comparable across
    machines (``bench/calibrate.py``)."""
    unit = result["calibration_s"]
    out: dict = {}
    for key in ("first_analysis_s", "cold_ready_s", "job_s"):
        if result.get(key) is not None:
            out[key] = round(result[key] / unit, 2)
    for key in ("stage_s", "browser_page_s", "load_page_s"):
        if key in result:
            out[key] = {
                name: None if s is None else round(s / unit, 3) for name, s in result[key].items()
            }
    return out


if __name__ == "__main__":
    main()
