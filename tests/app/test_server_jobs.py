"""The pipeline job in a real server and a real browser: two tabs on a cold cache start one
job, and the job survives a restart of the server, whose Home picks up its progress.

Starts ``streamlit run app.py`` (tiny preset, an empty cache) in a session of its own, as a
terminal runs ``make app``; opens Home in two Chromium tabs; pauses the job (SIGSTOP) so that
the checks below happen while it is mid-way, however fast the machine; stops the server with
SIGINT to its process group (a terminal's Ctrl-C); starts a new server; resumes the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_browser import CHROMEDRIVER, CHROMIUM, HOST, ROOT, _free_port, _wait_healthy

from rem_core.jobs import read_job

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"needs Debian chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})",
    ),
]


def _serve(cache: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "REM_PRESET": "tiny",
        "REM_CACHE_DIR": str(cache),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", HOST, "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_healthy(f"http://{HOST}:{port}", proc)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}; log:\n{log.read_text()}")
    return proc


def _ctrl_c(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _job_processes(folder: Path) -> list[int]:
    """Ids of the processes running the job in ``folder`` (``python -m rem_core.jobs``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"rem_core.jobs" in argv and str(folder).encode() in argv:
            pids.append(int(proc.name))
    return pids


def _wait_for_text(driver: object, text: str, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text
    )


def test_two_tabs_share_one_job_that_survives_a_server_restart(
    tmp_path: Path, browser: object
) -> None:
    cache, log = tmp_path / "cache", tmp_path / "streamlit.log"
    port = _free_port()
    url = f"http://{HOST}:{port}/"
    server = _serve(cache, port, log)
    job_pid = None
    try:
        browser.get(url)  # tab 1: the first start builds the world and runs the pipeline
        deadline = time.monotonic() + 60
        while not list(cache.glob("jobs/*/pid")):
            assert time.monotonic() < deadline, f"no job started; log:\n{log.read_text()}"
            time.sleep(0.02)
        (pid_file,) = cache.glob("jobs/*/pid")
        folder = pid_file.parent
        job_pid = int(pid_file.read_text())
        os.killpg(job_pid, signal.SIGSTOP)  # hold it mid-way for the checks below
        tab1 = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(url)  # tab 2, another session, while the job runs
        for handle in (browser.current_window_handle, tab1):
            browser.switch_to.window(handle)
            _wait_for_text(browser, "Running the pipeline", 60)
        assert [p.name for p in (cache / "jobs").iterdir()] == [folder.name]
        assert _job_processes(folder) == [job_pid]

        _ctrl_c(server)  # the terminal's Ctrl-C on `make app`
        assert server.returncode is not None
        assert _job_processes(folder) == [job_pid]  # the job lives on
        server = _serve(cache, port, log)
        browser.refresh()  # the new server's Home finds the job running
        _wait_for_text(browser, "Running the pipeline", 60)
        os.killpg(job_pid, signal.SIGCONT)
        _wait_for_text(browser, "are ready.", 240)
        status = read_job(folder.name, cache)
        assert status.state == "done", status.error
        assert status.pid == job_pid
        assert list(status.stages)[0] == "building the world"
        assert [p.name for p in (cache / "jobs").iterdir()] == [folder.name]
    finally:
        if job_pid is not None:
            try:
                os.killpg(job_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        _ctrl_c(server)
        for handle in browser.window_handles[1:]:
            browser.switch_to.window(handle)
            browser.close()
        browser.switch_to.window(browser.window_handles[0])
