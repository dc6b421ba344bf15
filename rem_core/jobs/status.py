"""What a job is and how far it got: its key, its folder, what it runs (``spec.json``) and its
status, read from there."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rem_core.cache import CacheEntry
from rem_core.config import (
    RemConfig,
    WorldConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
)
from rem_core.errors import InputError

__all__ = [
    "KINDS",
    "JobStatus",
    "StageStatus",
    "State",
    "job_folder",
    "job_key",
    "read_job",
]

#: What a job can run: REM's pipeline up to the rareness of every object (building the
#: world first when it is given one), or the active-learning experiment.
KINDS = ("pipeline", "experiment")

#: The file ``stop_job`` leaves in a job's folder before it signals the process: a job
#: stopped before its process could say so (in its first second) still reads as stopped on
#: request. A new start of the job removes it.
_STOP_REQUESTED = "stop-requested"

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

    def remaining(self, now: float) -> float | None:
        """Seconds left at the pace so far, ``now`` seconds from the job's start: 0 once it
        has ended, ``None`` before its first unit is done.

        >>> StageStatus(done=10, total=40, started=100.0).remaining(now=130.0)
        90.0
        """
        if self.ended is not None:
            return 0.0
        if self.done <= 0 or self.total <= 0:
            return None
        return (now - self.started) / self.done * max(self.total - self.done, 0)


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
        cluster: the Dask cluster it runs on, as given (``local:2``, ``tcp://host:8786``);
            ``None`` in its own process.
        dashboard: the address of that cluster's Dask dashboard, once the job is connected
            to it.
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
    cluster: str | None = None
    dashboard: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed(self) -> float:
        """Seconds since the start (to the end, once ended)."""
        return (self.finished or time.time()) - self.started

    def stage(self, prefix: str) -> StageStatus | None:
        """The last stage whose name starts with ``prefix``, if it has reported."""
        found = [status for name, status in self.stages.items() if name.startswith(prefix)]
        return found[-1] if found else None


def job_key(kind: str, config: RemConfig, data: str | os.PathLike) -> str:
    """The key of a ``kind`` job with ``config`` on the data set at ``data``: one job per
    (kind, settings, data set) at a time.

    ``data`` is the data set's folder (a world's, before it is built too), so the key is the
    same before and after a world is simulated.
    """
    if kind not in KINDS:
        raise InputError(f"job kind: unknown {kind!r}; choose one of {KINDS}")
    return config_hash(config, kind, str(Path(data).resolve()))


def job_folder(key: str, root: Path | None = None) -> Path:
    """The folder of job ``key`` under the cache ``root`` (default: ``cache_root()``)."""
    return CacheEntry.of("jobs", key, root).path


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
        if (folder / _STOP_REQUESTED).exists():
            error = error or "stopped on request"
        else:
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
        cluster=raw.get("cluster"),
        dashboard=raw.get("dashboard"),
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
    """``payload`` as JSON in ``path``, replaced atomically (a temporary file renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _write_spec(folder: Path, spec: dict[str, Any]) -> None:
    """``spec.json``: what the job runs, replaced atomically; its ``config`` (a
    :class:`RemConfig`) and ``world`` (a :class:`WorldConfig` or ``None``) as
    ``config_to_dict`` writes them, the rest (kind, label, paths, cluster, retrain) as is.

    A ``spec.pkl`` left by an older version is removed: nothing reads it any more.
    """
    world = spec["world"]
    payload = dict(
        spec,
        config=config_to_dict(spec["config"]),
        world=None if world is None else config_to_dict(world),
    )
    _write_json(folder / "spec.json", payload)
    (folder / "spec.pkl").unlink(missing_ok=True)


def _read_spec(folder: Path) -> dict[str, Any]:
    """The spec :func:`_write_spec` wrote, its settings rebuilt (``config_from_dict``).

    Raises:
        OSError: no readable ``spec.json``.
        ValueError: a file that is not JSON, or settings that are not valid (an
            ``InputError`` naming the setting).
        KeyError, TypeError: JSON that is not a spec.
    """
    spec = json.loads((folder / "spec.json").read_text())
    spec["config"] = config_from_dict(RemConfig, spec["config"])
    if spec.get("world") is not None:
        spec["world"] = config_from_dict(WorldConfig, spec["world"])
    return spec
