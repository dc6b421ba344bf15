"""The disk cache: ``<root>/<stage>/<key>/``, each entry written to a temporary folder first.

The root is ``$REM_CACHE_DIR`` if set, else ``./cache``. A stage's key hashes its config
and the keys of the stages it reads, so a changed setting never reuses a stale result.
A :class:`CacheEntry` is one (stage, key): its folder, whether it is done, its lock and its
one ``publish``. An entry is written whole or not at all (``rem_core.io.files.publishing``),
and computed by one process at a time (``cache_entry``): a second process asking for an
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
from typing import Any, Literal, TypeVar, get_args

from rem_core.config import WorldConfig, config_hash
from rem_core.dataset import Dataset
from rem_core.io.files import publish_folder
from rem_core.world import write_world

__all__ = [
    "STAGES",
    "CacheEntry",
    "Stage",
    "cache_entry",
    "cache_root",
    "dataset_key",
    "ensure_world",
    "entries",
    "world_path",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

try:
    import fcntl
except ImportError:  # not a POSIX system: entries are published whole, but not locked
    fcntl = None

#: Lock files this process holds (``cache_entry``).
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
def cache_entry(path: Path, done: str | Callable[[], bool]) -> Iterator[bool]:
    """Whether the cache entry ``path`` is still to be computed, under its lock.

    An entry is done when the file ``path / done`` exists (its publisher writes the folder
    whole, so the file is there or the folder is not), or when ``done()`` says so. If not,
    the entry's lock (an advisory ``flock`` on ``.<key>.lock`` beside it, released when the
    process ends, however it ends) is held for the ``with`` block: the caller computes and
    publishes inside it. A process that finds the lock taken logs that it waits, waits, and
    then finds the entry done (the block gets ``False``).

    >>> import tempfile
    >>> entry = Path(tempfile.mkdtemp()) / "stage" / "key"
    >>> with cache_entry(entry, "meta.json") as todo:
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
Stage = Literal["world", "detector", "detections", "rareness", "experiment", "jobs"]
STAGES: tuple[Stage, ...] = get_args(Stage)


@dataclass(frozen=True)
class CacheEntry:
    """One result in the cache: the folder ``<root>/<stage>/<key>/``.

    Attributes:
        stage: one of ``STAGES``.
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

    stage: Stage
    key: str
    root: Path
    marks: tuple[str, ...] = ("meta.json",)

    @classmethod
    def of(
        cls,
        stage: Stage,
        key: str,
        root: Path | None = None,
        marks: tuple[str, ...] = ("meta.json",),
    ) -> CacheEntry:
        """The entry ``key`` of ``stage`` under ``root`` (default :func:`cache_root`)."""
        if stage not in STAGES:
            raise ValueError(f"cache: unknown stage {stage!r}; known: {', '.join(STAGES)}")
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
        (:func:`cache_entry`); compute and :meth:`publish` inside the block."""
        return cache_entry(self.path, lambda: self.done)

    def publish(self, write: Callable[[Path], None], part: str | None = None) -> Path:
        """Publish the entry (or its sub-folder ``part``) whole: ``write(tmp)`` fills a
        temporary folder, renamed into place when it returns (``io.files.publish_folder``).
        """
        return publish_folder(self.path / part if part else self.path, write)

    def get(
        self,
        compute: Callable[[], T],
        write: Callable[[T, Path], None],
        read: Callable[[Path], R],
    ) -> R:
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


def entries(stage: Stage, root: Path | None = None) -> list[CacheEntry]:
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


def dataset_key(dataset: Dataset) -> str:
    """A key for what a data set holds: the hash of the config that made it, else of its
    location and counts (an imported data set)."""
    if dataset.manifest.get("config_hash"):
        return str(dataset.manifest["config_hash"])
    counts = dataset.manifest.get("counts", {})
    return config_hash_text(f"{dataset.root.resolve()}|{sorted(counts.items())}")


def config_hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def world_path(config: WorldConfig, root: Path | None = None) -> Path:
    """Where the world of ``config`` is cached."""
    return CacheEntry.of("world", config_hash(config), root).path


def ensure_world(
    config: WorldConfig,
    root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    client: Any | None = None,
) -> Dataset:
    """The cached data set of a world, simulated and written first if missing.

    Args:
        config: the world's settings.
        root: the cache root (default :func:`cache_root`).
        progress: called with ``(segments done, segments in all)`` while simulating.
        workers: simulating processes (default: one per core for a world of 16 segments
            or more, else 1: starting processes costs more than a small world).
        client: a ``distributed.Client``: the segments are simulated on its cluster
            (``rem_core.cluster``; the same world).
    """
    entry = CacheEntry.of("world", config_hash(config), root, marks=("dataset.json",))
    path = entry.path
    with entry.computing() as todo:
        if not todo:
            return Dataset.open(path)
        log.info("simulating world %s into %s", config_hash(config), path)
        if workers is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            workers = cores if config.n_total_segments >= 16 else 1
        return write_world(
            config, path, progress=progress, overwrite=True, workers=workers, client=client
        )
