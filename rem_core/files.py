"""Publishing files and folders: whole or not at all, never silently overwritten; and the
hash of a file's content.

Every writer of the cache and of a user's outputs goes through these: ``publish_file`` for a
file, ``publish_folder`` (or the ``publishing`` context) for a folder. Both write into a
temporary sibling and rename it into place, so a reader sees the old entry or the new one,
never half of one. A folder's temporary sibling is named after the host and the process that
writes it (``.<name>.tmp-<host>-<pid>-<random>``), so that ``clean_stale`` can remove what a
killed process left behind without touching a folder another live process is writing. (Two
containers that share a host name and a volume but not their process ids tell each other's
folders apart only by the process id: give them distinct host names.)
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["clean_stale", "file_sha256", "publish_file", "publish_folder", "publishing"]


def publish_file(path: str | Path, write: Callable[[Path], None], *, force: bool = False) -> Path:
    """Write ``path`` through ``write(tmp)`` into a temporary sibling, then rename it.

    The file appears complete or not at all: a failing ``write`` leaves neither a partial
    file nor the temporary one, and an existing file stays as it was.

    Args:
        path: the file to create.
        write: writes the whole content to the path it is given.
        force: replace an existing file.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
        IsADirectoryError: ``path`` is a folder.
        FileNotFoundError: the parent folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists; pass --force (force=True) to replace it")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); a published file gets the usual mode.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_umask() -> int:
    # Reading the umask means setting it: once, at import, before any thread writes files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale(path: str | Path) -> list[Path]:
    """Remove the temporary siblings of ``path`` that a killed process left behind.

    Only those written on this host by a process that no longer runs: another live writer's
    folder, or one of another machine sharing the cache, is kept. A previous copy that a
    writer killed between its two renames left aside goes back in place when ``path`` is
    missing.

    Returns:
        The folders removed.
    """
    path = Path(path)
    removed = []
    host = _host()
    for kind in ("old", "tmp"):
        for stale in path.parent.glob(f".{glob.escape(path.name)}.{kind}-*"):
            parts = stale.name[len(path.name) + len(kind) + 3 :].split("-")
            if len(parts) < 2 or parts[0] != host or not parts[1].isdigit():
                continue
            if _pid_alive(int(parts[1])):
                continue
            if kind == "old" and not (path.exists() or path.is_symlink()):
                # killed between its two renames: the previous copy goes back in place
                stale.rename(path)
                continue
            _remove(stale)
            removed.append(stale)
    return removed


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _sibling(path: Path, kind: str) -> str:
    return f".{path.name}.{kind}-{_host()}-{os.getpid()}-"


@contextlib.contextmanager
def publishing(path: str | Path, *, force: bool = True) -> Iterator[Path]:
    """A temporary folder to write into; on a clean exit it replaces ``path`` whole.

    On an exception the temporary folder is removed and ``path`` is left as it was. An
    existing ``path`` is swapped out (renamed aside, then removed), so a reader never finds
    it missing for longer than between two renames. Temporary siblings of killed writers
    are cleaned first (``clean_stale``).

    Args:
        path: the folder to create or replace.
        force: replace an existing non-empty ``path``; otherwise that is an error.

    Raises:
        FileExistsError: ``path`` exists, is not an empty folder, and ``force`` is false.
    """
    path = Path(path)
    if not force and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path}: exists and is not empty (pass --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_sibling(path, "tmp"), dir=path.parent))
    try:
        # mkdtemp makes the folder private (0700); a published one gets the usual mode.
        tmp.chmod(0o777 & ~_UMASK)
        yield tmp
        old = _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _remove(old)


def _swap_in(tmp: Path, path: Path) -> Path | None:
    """Rename ``tmp`` to ``path``; an existing ``path`` goes aside first (returned)."""
    old = None
    if path.exists() or path.is_symlink():
        old = path.with_name(_sibling(path, "old") + os.urandom(4).hex())
        path.rename(old)
    try:
        tmp.rename(path)
    except BaseException:
        if old is not None:
            old.rename(path)
        raise
    return old


def publish_folder(path: str | Path, write: Callable[[Path], None], *, force: bool = True) -> Path:
    """Write the folder ``path`` through ``write(tmp)``, whole or not at all (``publishing``).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> out = publish_folder(root / "run", lambda tmp: (tmp / "a.txt").write_text("1"))
    >>> sorted(p.name for p in root.iterdir()), (out / "a.txt").read_text()
    (['run'], '1')
    """
    with publishing(path, force=force) as tmp:
        write(tmp)
    return Path(path)


#: ``file_sha256``'s hashes by file: its path, size, modification time and inode.
_HASHES: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, in hex; read once per process for as long as the
    file's size, modification time and inode stay the same."""
    path = Path(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if memo not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        _HASHES[memo] = digest.hexdigest()
    return _HASHES[memo]
