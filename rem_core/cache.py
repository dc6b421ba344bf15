"""The disk cache: ``<root>/<stage>/<key>/``, each entry written to a temporary folder first.

The root is ``$REM_CACHE_DIR`` if set, else ``./cache``. A stage's key hashes its config
and the keys of the stages it reads, so a changed setting never reuses a stale result.
A :class:`CacheEntry` is one (stage, key): its folder, whether it is done, its lock and its
one ``publish``. An entry is written whole or not at all (``rem_core.files.publishing``),
and computed by one process at a time (``compute_once``): a second process asking for an
entry being computed waits for it and reads it, instead of computing it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args

from rem_core.errors import InputError
from rem_core.files import publish_folder

__all__ = [
    "CACHE_STAGES",
    "CacheEntry",
    "CacheStage",
    "cache_root",
    "compute_once",
    "entries",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

try:
    import fcntl
except ImportError:  # not a POSIX system: entries are published whole, but not locked
    fcntl = None

#: Lock files this process holds (``compute_once``).
_HELD: set[int] = set()


def _drop_held_locks() -> None:
    # A forked child (the training's batch worker, the world's simulating processes) must
    # not keep its parent's locks: if the parent is killed and the child lingers, the entry
    # would stay locked. Point the child's copies of the lock descriptors at /dev/null.
    if _HELD:
        null = os.open(os.devnull, os.O_RDONLY)
        for fd in _HELD:
            os.dup2(null, fd)
        os.close(null)
        _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_held_locks)


def cache_root() -> Path:
    """The cache folder: ``$REM_CACHE_DIR`` or ``./cache``."""
    return Path(os.environ.get("REM_CACHE_DIR") or "cache").resolve()


@contextlib.contextmanager
def compute_once(path: Path, done: str | Callable[[], bool]) -> Iterator[bool]:
    """Whether the cache entry ``path`` is still to be computed, under its lock.

    An entry is done when the file ``path / done`` exists (its publisher writes the folder
    whole, so the file is there or the folder is not), or when ``done()`` says so. If not,
    the entry's lock (an advisory ``flock`` on ``.<key>.lock`` beside it, released when the
    process ends, however it ends) is held for the ``with`` block: the caller computes and
    publishes inside it. A process that finds the lock taken logs that it waits, waits, and
    then finds the entry done (the block gets ``False``).

    >>> import tempfile
    >>> entry = Path(tempfile.mkdtemp()) / "stage" / "key"
    >>> with compute_once(entry, "meta.json") as todo:
    ...     todo
    True
    """
    is_done = (lambda: (path / done).is_file()) if isinstance(done, str) else done
    if is_done():
        yield False
        return
    if fcntl is None:
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another process is computing it; waiting for it", path)
            start = time.perf_counter()
            fcntl.flock(lock, fcntl.LOCK_EX)
            log.info("%s: waited %.0f s", path, time.perf_counter() - start)
        _HELD.add(lock.fileno())
        try:
            yield not is_done()
        finally:
            _HELD.discard(lock.fileno())
            fcntl.flock(lock, fcntl.LOCK_UN)


#: The cache's stages, each the folder under the cache root its entries live in.
CacheStage = Literal["world", "detector", "detections", "rareness", "experiment", "jobs"]
CACHE_STAGES: tuple[CacheStage, ...] = get_args(CacheStage)


@dataclass(frozen=True)
class CacheEntry:
    """One result in the cache: the folder ``<root>/<stage>/<key>/``.

    Attributes:
        stage: one of ``CACHE_STAGES``.
        key: the hash of the stage's settings and of its inputs' keys.
        root: the cache root (:func:`cache_root` when made by :meth:`of`).
        marks: files, relative to the folder, that all exist once the entry is done (a
            publisher writes a folder whole, so a mark is there or its folder is not).

    >>> import tempfile
    >>> entry = CacheEntry.of("rareness", "0123abcd", Path(tempfile.mkdtemp()))
    >>> entry.path.relative_to(entry.root).as_posix(), entry.done
    ('rareness/0123abcd', False)
    >>> with entry.computing() as todo:
    ...     if todo:
    ...         _ = entry.publish(lambda tmp: (tmp / "meta.json").write_text("{}"))
    >>> entry.done
    True
    """

    stage: CacheStage
    key: str
    root: Path
    marks: tuple[str, ...] = ("meta.json",)

    @classmethod
    def of(
        cls,
        stage: CacheStage,
        key: str,
        root: Path | None = None,
        marks: tuple[str, ...] = ("meta.json",),
    ) -> CacheEntry:
        """The entry ``key`` of ``stage`` under ``root`` (default :func:`cache_root`)."""
        if stage not in CACHE_STAGES:
            raise InputError(f"cache: unknown stage {stage!r}; known: {', '.join(CACHE_STAGES)}")
        return cls(stage, key, Path(root or cache_root()), tuple(marks))

    @property
    def path(self) -> Path:
        """The entry's folder."""
        return self.root / self.stage / self.key

    @property
    def done(self) -> bool:
        """Whether every mark exists: the entry was published whole."""
        return all((self.path / mark).is_file() for mark in self.marks)

    def computing(self) -> contextlib.AbstractContextManager[bool]:
        """``with entry.computing() as todo``: whether to compute the entry, under its lock
        (:func:`compute_once`); compute and :meth:`publish` inside the block."""
        return compute_once(self.path, lambda: self.done)

    def publish(self, write: Callable[[Path], None], part: str | None = None) -> Path:
        """Publish the entry (or its sub-folder ``part``) whole: ``write(tmp)`` fills a
        temporary folder, renamed into place when it returns (``io.files.publish_folder``).
        """
        return publish_folder(self.path / part if part else self.path, write)

    def get(
        self,
        compute: Callable[[], _T],
        write: Callable[[_T, Path], None],
        read: Callable[[Path], _R],
    ) -> _R:
        """The entry as ``read(path)`` gives it; if it is not done, first ``compute()`` it
        and publish it by ``write(result, tmp)``, under the entry's lock (a second process
        asking meanwhile waits, then reads)."""
        with self.computing() as todo:
            if todo:
                result = compute()
                self.publish(lambda tmp: write(result, tmp))
        return read(self.path)

    def remove(self) -> bool:
        """Delete the entry's folder; whether there was one."""
        if not self.path.exists():
            return False
        shutil.rmtree(self.path)
        return True


def entries(stage: CacheStage, root: Path | None = None) -> list[CacheEntry]:
    """Every published entry of ``stage`` under ``root`` (default :func:`cache_root`), in
    key order; temporary folders and lock files are not entries."""
    folder = CacheEntry.of(stage, "", root).path
    if not folder.is_dir():
        return []
    return [
        CacheEntry.of(stage, path.name, root)
        for path in sorted(folder.iterdir())
        if path.is_dir() and not path.name.startswith(".")
    ]
