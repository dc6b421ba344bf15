"""Starting a job in a process of its own (unless it runs already), and stopping it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rem_core.cache import cache_root
from rem_core.cluster import cluster_spec
from rem_core.config import RemConfig, WorldConfig
from rem_core.errors import InputError
from rem_core.jobs.status import (
    _STOP_REQUESTED,
    KINDS,
    JobStatus,
    _holds_lock,
    _write_json,
    _write_spec,
    job_folder,
    read_job,
)

__all__ = [
    "start_job",
    "stop_job",
]


def _lock(fd: int, attempts: int = 5) -> bool:
    """Take the exclusive lock on ``fd``; False if another holds it through ``attempts``
    tries 50 ms apart (a reader that tests the lock holds it for microseconds)."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < attempts - 1:
                time.sleep(0.05)
    return False


def _spawn(folder: Path, fd: int, out: Any, env: dict[str, str]) -> subprocess.Popen:
    """The job process: ``python -m rem_core.jobs FOLDER``, holding the lock ``fd``."""
    return subprocess.Popen(
        [sys.executable, "-m", "rem_core.jobs", str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        pass_fds=(fd,),  # the lock, held from now on by the job process
        start_new_session=True,  # not stopped with the server's process group
        env=env,
        cwd=Path(__file__).resolve().parents[2],  # the folder holding rem_core/
    )


def _cluster(cluster: str | None) -> str | None:
    """``cluster`` checked (``rem_core.cluster.cluster_spec``) and stripped; ``None`` for
    none (``None``, empty or ``"none"``)."""
    value = (cluster or "").strip()
    try:
        parsed = cluster_spec(value)
    except ValueError as exc:
        raise InputError(f"start_job: {str(exc).replace('--cluster ', 'cluster ', 1)}") from None
    return None if parsed is None else value


def start_job(
    key: str,
    kind: str,
    config: RemConfig,
    *,
    data: str | os.PathLike | None = None,
    world: WorldConfig | None = None,
    label: str = "",
    root: Path | None = None,
    retrain: bool = False,
    cluster: str | None = None,
) -> JobStatus:
    """Start job ``key`` in a process of its own, unless it runs; return its status.

    Args:
        key: the job's key (:func:`job_key`).
        kind: one of :data:`KINDS`.
        config: the settings it runs with.
        data: the data set's folder; or
        world: a world to build (cached) and run on.
        label: what it runs, for messages.
        root: the cache root (default ``cache_root()``); the job process caches there too.
        retrain: for a pipeline, train the detectors from scratch first
            (``rem_core.pipeline.clear_pipeline``; no shipped weights).
        cluster: the Dask cluster its segment-by-segment stages run on
            (``rem_core.cluster``): ``local``, ``local:N`` or a scheduler address such as
            ``tcp://host:8786``. ``None`` or empty: in the job's own process
            (``$REM_DASK_SCHEDULER`` is not read here: a caller that wants it passes it).
            Not part of ``key``: a cluster computes the same results.

    Returns:
        The status of the job that runs now: the one just started, or the one that was
        already running (then nothing new starts, whatever ``cluster`` says).

    Raises:
        ValueError: naming the value, for a kind or a ``cluster`` that is not one; before
            anything is written or started.
    """
    if kind not in KINDS:
        raise InputError(f"job kind: unknown {kind!r}; choose one of {KINDS}")
    if (data is None) == (world is None):
        raise InputError("start_job: give exactly one of data= and world=")
    cluster = _cluster(cluster)
    root = Path(root or cache_root()).resolve()
    folder = job_folder(key, root)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock(fd):
            # running (a reader's brief test of the lock lasts microseconds, not 0.25 s)
            return _running_job(key, kind, label, root)
        spec = {
            "kind": kind,
            "label": label or kind,
            "config": config,
            "data": None if data is None else str(Path(data).resolve()),
            "world": world,
            "root": str(root),
            "retrain": retrain,
            "cluster": cluster,
        }
        return _launch(key, folder, fd, spec)
    finally:
        os.close(fd)  # the job process keeps its own copy of the locked file


def _running_job(key: str, kind: str, label: str, root: Path) -> JobStatus:
    """The status of job ``key``, running already (its lock is held)."""
    status = read_job(key, root)
    if status is None or not status.running:  # its starter is writing the status
        status = JobStatus(key, kind, label or kind, "running", started=time.time())
    return status


def _launch(key: str, folder: Path, fd: int, spec: dict[str, Any]) -> JobStatus:
    """Write the job's spec and status, spawn its process holding ``fd``; its status."""
    (folder / _STOP_REQUESTED).unlink(missing_ok=True)
    _write_spec(folder, spec)
    status = {"kind": spec["kind"], "label": spec["label"], "state": "running", "stages": []}
    status.update(started=time.time(), cluster=spec["cluster"])
    _write_json(folder / "status.json", status)
    env = dict(os.environ, REM_CACHE_DIR=spec["root"], PYTHONUNBUFFERED="1")
    with open(folder / "log.txt", "wb") as out:
        try:
            process = _spawn(folder, fd, out, env)
        except OSError as exc:
            status.update(state="failed", error=f"cannot start the job: {exc}")
            _write_json(folder / "status.json", status)
            raise
    _write_pid(folder, process.pid)
    # reap it when it ends (no zombie while this process lives)
    threading.Thread(target=process.wait, name=f"rem-job-{key}", daemon=True).start()
    return JobStatus(
        key=key,
        kind=spec["kind"],
        label=spec["label"],
        state="running",
        started=status["started"],
        pid=process.pid,
        log=folder / "log.txt",
        cluster=spec["cluster"],
    )


def _write_pid(folder: Path, pid: int) -> None:
    """``pid``: the job process's id, replaced atomically."""
    tmp = folder / f".pid.{os.getpid()}.tmp"
    tmp.write_text(str(pid))
    os.replace(tmp, folder / "pid")


def stop_job(key: str, root: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop job ``key`` (SIGTERM to its process group); True if it was running.

    It records ``"stopped"``; whatever its stages published stays cached, a stage it was
    computing is not published (``rem_core.pipeline.stages`` writes to a temporary folder first).
    """
    status = read_job(key, root)
    if status is None or not status.running or status.pid is None:
        return False
    (job_folder(key, root) / _STOP_REQUESTED).touch()
    try:
        os.killpg(status.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while _holds_lock(job_folder(key, root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True
