"""What made a file that ships with the package: the commit, the machine, the bytes' hashes.

The shipped detector ensemble (``rem_core.pipeline.shipped``) and the experiment's reference
tables (``rem_core.experiment.reference``) record these in their ``provenance.json``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["file_sha256", "git", "machine"]


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git(*args: str) -> str | None:
    """What ``git ARGS`` prints in the package's folder (stripped), ``None`` when it fails
    (no git, not a checkout)."""
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine() -> dict:
    """The machine and the numeric packages: CPU count and model, Python, torch, numpy and
    the platform."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    models = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    versions = {}
    for package in ("torch", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    model = models[0] if models else platform.processor()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        **versions,
        "platform": platform.platform(),
    }
