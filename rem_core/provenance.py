"""What made a file that ships with the package: the commit, the machine, the bytes' hashes.

The shipped detector ensemble (``rem_core.pipeline.shipped``) and the experiment's reference
tables (``rem_core.experiment.reference``) record these in their ``provenance.json``, beside
their files' hashes (``rem_core.files.file_sha256``).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["KERNEL_ENV", "cpu_flags", "git", "kernels", "machine"]

#: Environment variables that choose torch's, oneDNN's and MKL's CPU kernels.
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")

#: The CPU features the kernels choose by (``/proc/cpuinfo`` flags).
_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


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


def cpu_flags() -> list[str]:
    """The CPU features among those the kernels choose by (AVX2, FMA, AVX-512, AMX)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.partition(":")[2].split())
            return [flag for flag in _FLAGS if flag in have]
    return []


def kernels() -> dict:
    """What chooses torch's CPU kernels here: its instruction set, threads, oneDNN and MKL,
    the environment variables that pin them, and the CPU's features."""
    # Lazily: torch is heavy, and most readers of a provenance never compute with it.
    import torch

    onednn = None
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            onednn = line.strip().lstrip("- ")
    return {
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        "onednn": onednn,
        "env": {name: os.environ.get(name) for name in KERNEL_ENV},
        "cpu_flags": cpu_flags(),
    }
