"""Writing a user's output file: validated path, no silent overwrite, atomic."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["publish_file"]


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
