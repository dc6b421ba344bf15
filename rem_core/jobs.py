"""Long computations in a process of their own: the app's pipeline and its experiment.

The app must not run REM's stages in its server: a thread there shares the server's GIL
and event loop, dies with the server, and is invisible to a second server. A *job* runs
in its own Python process instead, in its own session (a restart of the server, or
Ctrl-C on ``make app``, does not stop it), and leaves everything it knows in its folder
``<cache>/jobs/<key>/``:

- ``lock``: an exclusive ``flock`` held by the job process for its whole life. The
  starter takes it *before* it spawns the process and hands the open file to it, so
  between two starters (two browser tabs, two servers) exactly one wins; a job whose lock
  is free is not running, however it ended (the kernel releases the lock of a killed
  process).
- ``status.json``: what it runs, its stages with their progress and times, how it ended;
  replaced atomically, at most twice a second, so a reader never sees half of it.
- ``spec.pkl``: what to run (kind, settings, data set); ``pid``: its process id, written
  by the starter; ``log.txt``: its output.

:func:`start_job` starts one unless it runs already; :func:`read_job` tells how far it got
(a small file read: cheap enough for a page that refreshes every few seconds);
:func:`stop_job` ends it. ``python -m rem_core.jobs FOLDER`` is the job process itself.

Examples:
    >>> from rem_core.config import RemConfig
    >>> config = RemConfig.tiny()
    >>> key = job_key("pipeline", config, "/data/tiny-world")
    >>> status = start_job(key, "pipeline", config, world=config.world)  # doctest: +SKIP
    >>> read_job(key).stages  # doctest: +SKIP
    {'building the world': StageStatus(done=3, total=16, ...)}
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rem_core.artifacts import cache_root
from rem_core.config import RemConfig, WorldConfig, config_hash

__all__ = [
    "JobStatus",
    "StageStatus",
    "job_folder",
    "job_key",
    "read_job",
    "start_job",
    "stop_job",
]

log = logging.getLogger(__name__)

#: What a job can run: REM's pipeline up to the rareness of every object (building the
#: world first when it is given one), or the active-learning experiment.
KINDS = ("pipeline", "experiment")

#: Seconds between two writes of ``status.json`` within a stage.
STATUS_INTERVAL_S = 0.5

State = Literal["running", "done", "failed", "stopped"]


@dataclass(frozen=True)
class StageStatus:
    """One stage of a job as it reported itself.

    Attributes:
        done: units done (steps, frames, segments).
        total: units in all.
        started: seconds from the job's start to the stage's first report.
        ended: seconds from the job's start to its last unit (``None`` while running).
    """

    done: int
    total: int
    started: float
    ended: float | None = None

    @property
    def seconds(self) -> float | None:
        """The stage's duration, once it has ended."""
        return None if self.ended is None else self.ended - self.started


@dataclass(frozen=True)
class JobStatus:
    """A job's state, read from its folder.

    Attributes:
        key: the job's key (its folder's name).
        kind: one of :data:`KINDS`.
        label: what it runs, for messages.
        state: ``"running"`` (its process holds the lock), ``"done"``, ``"failed"`` (with
            ``error``) or ``"stopped"`` (stopped by :func:`stop_job`, or killed).
        stages: ``stage -> StageStatus``, in the order they started.
        started: wall-clock start (``time.time()``).
        finished: wall-clock end, if it ended and could say so.
        error: why it failed or stopped.
        pid: the job process's id.
        log: the file holding its output.
    """

    key: str
    kind: str
    label: str
    state: State
    stages: dict[str, StageStatus] = field(default_factory=dict)
    started: float = 0.0
    finished: float | None = None
    error: str | None = None
    pid: int | None = None
    log: Path | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed(self) -> float:
        """Seconds since the start (to the end, once ended)."""
        return (self.finished or time.time()) - self.started


def job_key(kind: str, config: RemConfig, data: str | os.PathLike) -> str:
    """The key of a ``kind`` job with ``config`` on the data set at ``data``: one job per
    (kind, settings, data set) at a time.

    ``data`` is the data set's folder (a world's, before it is built too), so the key is the
    same before and after a world is simulated.
    """
    if kind not in KINDS:
        raise ValueError(f"job kind: unknown {kind!r}; choose one of {KINDS}")
    return config_hash(config, kind, str(Path(data).resolve()))


def job_folder(key: str, root: Path | None = None) -> Path:
    """The folder of job ``key`` under the cache ``root`` (default: ``cache_root()``)."""
    return (root or cache_root()) / "jobs" / key


def _holds_lock(folder: Path) -> bool:
    """Whether a process holds ``folder/lock`` (the job runs)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


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


def read_job(key: str, root: Path | None = None) -> JobStatus | None:
    """Job ``key``'s status, or ``None`` if it never started here.

    A job whose file says "running" but whose lock is free died without saying so (killed,
    or its machine restarted): it reads as ``"stopped"``, with the end of its log as the
    error.
    """
    folder = job_folder(key, root)
    try:
        raw = json.loads((folder / "status.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise RuntimeError(f"{folder / 'status.json'}: unreadable job status ({exc})") from exc
    state = raw["state"]
    error = raw.get("error")
    if state == "running" and not _holds_lock(folder):
        state = "stopped"
        error = error or "the job's process ended without a word; " + _tail(folder / "log.txt")
    return JobStatus(
        key=key,
        kind=raw["kind"],
        label=raw["label"],
        state=state,
        stages={name: StageStatus(*value) for name, value in raw.get("stages", [])},
        started=raw["started"],
        finished=raw.get("finished"),
        error=error,
        pid=_pid(folder),
        log=folder / "log.txt",
    )


def _pid(folder: Path) -> int | None:
    try:
        return int((folder / "pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return f"no log at {path}"
    return f"last lines of {path}: " + " | ".join(text[-lines:]) if text else f"{path} is empty"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


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
        cwd=Path(__file__).resolve().parent.parent,
    )


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

    Returns:
        The status of the job that runs now: the one just started, or the one that was
        already running (then nothing new starts).
    """
    if kind not in KINDS:
        raise ValueError(f"job kind: unknown {kind!r}; choose one of {KINDS}")
    if (data is None) == (world is None):
        raise ValueError("start_job: give exactly one of data= and world=")
    root = Path(root or cache_root()).resolve()
    folder = job_folder(key, root)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock(fd):
            # running (a reader's brief test of the lock lasts microseconds, not 0.25 s)
            status = read_job(key, root)
            if status is None or not status.running:  # its starter is writing the status
                status = JobStatus(key, kind, label or kind, "running", started=time.time())
            return status
        spec = {
            "kind": kind,
            "label": label or kind,
            "config": config,
            "data": None if data is None else str(Path(data).resolve()),
            "world": world,
            "root": str(root),
            "retrain": retrain,
        }
        tmp = folder / f".spec.{os.getpid()}.tmp"
        tmp.write_bytes(pickle.dumps(spec))
        os.replace(tmp, folder / "spec.pkl")
        status = {"kind": kind, "label": spec["label"], "state": "running", "stages": []}
        status["started"] = time.time()
        _write_json(folder / "status.json", status)
        env = dict(os.environ, REM_CACHE_DIR=str(root), PYTHONUNBUFFERED="1")
        with open(folder / "log.txt", "wb") as out:
            try:
                process = _spawn(folder, fd, out, env)
            except OSError as exc:
                status.update(state="failed", error=f"cannot start the job: {exc}")
                _write_json(folder / "status.json", status)
                raise
        tmp = folder / f".pid.{os.getpid()}.tmp"
        tmp.write_text(str(process.pid))
        os.replace(tmp, folder / "pid")
        # reap it when it ends (no zombie while this process lives)
        threading.Thread(target=process.wait, name=f"rem-job-{key}", daemon=True).start()
        return JobStatus(
            key=key,
            kind=kind,
            label=spec["label"],
            state="running",
            started=status["started"],
            pid=process.pid,
            log=folder / "log.txt",
        )
    finally:
        os.close(fd)  # the job process keeps its own copy of the locked file


def stop_job(key: str, root: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop job ``key`` (SIGTERM to its process group); True if it was running.

    It records ``"stopped"``; whatever its stages published stays cached, a stage it was
    computing is not published (``rem_core.pipeline`` writes to a temporary folder first).
    """
    status = read_job(key, root)
    if status is None or not status.running or status.pid is None:
        return False
    try:
        os.killpg(status.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while _holds_lock(job_folder(key, root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


class _Reporter:
    """The job process's progress callback: records each stage and writes the status."""

    def __init__(self, folder: Path, status: dict[str, Any]) -> None:
        self.folder = folder
        self.status = status
        self.stages: dict[str, list] = {}
        self.t0 = time.monotonic()
        self.written = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic() - self.t0
        entry = self.stages.setdefault(stage, [done, total, now, None])
        if entry[3] is not None and done < total:  # the same stage again (an experiment's runs)
            entry[2], entry[3] = now, None
        entry[0], entry[1] = int(done), int(total)
        first = entry[3] is None and done >= total
        if first:
            entry[3] = now
        if first or done == 0 or now - self.written >= STATUS_INTERVAL_S:
            self.write()

    def write(self, **changes: Any) -> None:
        self.status.update(changes, stages=list(self.stages.items()))
        _write_json(self.folder / "status.json", self.status)
        self.written = time.monotonic() - self.t0


def _run(spec: dict[str, Any], report: _Reporter) -> None:
    from rem_core.artifacts import ensure_world
    from rem_core.dataset import Dataset

    root = Path(spec["root"])
    config: RemConfig = spec["config"]
    if spec["world"] is not None:
        world = spec["world"]
        stage = "building the world"
        dataset = ensure_world(
            world, root=root, progress=lambda done, total: report(stage, done, total)
        )
    else:
        dataset = Dataset.open(spec["data"])
    if spec["kind"] == "pipeline":
        from rem_core.pipeline import clear_pipeline, run_pipeline

        if spec.get("retrain"):
            for path in clear_pipeline(config, dataset, root):
                log.info("retrain: removed %s", path)
        run_pipeline(config, dataset, root=root, progress=report, shipped=not spec.get("retrain"))
    else:
        from rem_core.experiment import run_experiment

        run_experiment(config, dataset, root=root, progress=report)


def main(argv: list[str] | None = None) -> int:
    """The job process: ``python -m rem_core.jobs FOLDER`` (started by :func:`start_job`,
    which holds the folder's lock for it)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rem_core.jobs FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    spec = pickle.loads((folder / "spec.pkl").read_bytes())
    status = json.loads((folder / "status.json").read_text())
    report = _Reporter(folder, status)
    report.write()

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    log.info("job %s: %s", folder.name, spec["label"])
    try:
        _run(spec, report)
    except SystemExit:
        report.write(state="stopped", error="stopped on request", finished=time.time())
        return 1
    except BaseException as exc:  # noqa: BLE001 - recorded for the app, traceback in the log
        traceback.print_exc()
        report.write(state="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())
        return 1
    report.write(state="done", finished=time.time())
    log.info("job %s: done", folder.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
