"""A `rem` process killed with SIGKILL in the middle of each long stage, then run again:
it completes, its outputs equal an uninterrupted run's, and no temporary folder is left."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import DETECTION_STAGE, RARENESS_STAGE, detector_entry, world_path

#: The stages, in the order one run computes them, each named by its cache folder.
STAGES = ("world", "detector", "detections", "rareness")

#: Keys of a JSON file that say when or how fast, not what (they differ between two runs).
VOLATILE = {"fit_s", "detect_frames_per_s", "seconds", "trained_s", "created", "elapsed_s"}


def _score(cache: Path, out: Path) -> subprocess.Popen:
    """``rem score`` on the tiny world: every stage, then the scores in ``out``."""
    env = {**os.environ, "REM_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rem_core.cli", "score", "--preset", "tiny", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _held(cache: Path, stage: str) -> bool:
    """Whether a process holds the lock of an entry of ``stage``."""
    # a stage published in parts (the detections) locks each part inside its entry
    for lock in (cache / stage).rglob(".*.lock"):
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    return False


class _Stages:
    """Which stages of the tiny preset's run are done in ``cache``."""

    def __init__(self, cache: Path) -> None:
        self.cache, self.config, self.world = cache, RemConfig.tiny(), None

    def done(self, stage: str) -> bool:
        if self.world is None:
            path = world_path(self.config.world, self.cache)
            if not (path / "dataset.json").is_file():
                return False
            self.world = Dataset.open(path)
        entries = {
            "world": None,
            "detector": detector_entry,
            "detections": DETECTION_STAGE.entry,
            "rareness": RARENESS_STAGE.entry,
        }
        entry = entries[stage]
        return entry is None or entry(self.config, self.world, self.cache).done

    def computing(self, stage: str) -> bool:
        """Whether ``stage`` is being computed: every stage before it done, its lock held and
        its entry not done."""
        before = STAGES[: STAGES.index(stage)]
        return (
            all(self.done(s) for s in before) and _held(self.cache, stage) and not self.done(stage)
        )


def _kill_in(cache: Path, out: Path, stage: str, timeout: float = 600) -> None:
    """Start ``rem score`` and SIGKILL it while it computes ``stage``."""
    child = _score(cache, out)
    stages, start = _Stages(cache), time.monotonic()
    while not stages.computing(stage):
        assert child.poll() is None, f"rem ended before {stage}: {child.stderr.read()[-2000:]}"
        assert time.monotonic() - start < timeout, f"{stage} never started"
        time.sleep(0.005)
    if stage == "detector":
        time.sleep(1.0)  # into the training, past building the data
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert not stages.done(stage), f"the kill came after {stage} was published"


def _processes_of(out: Path) -> list[int]:
    """Process ids whose command line names ``out`` (``rem score ... --out out``)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(out).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _files(folder: Path) -> dict[str, bytes | dict]:
    """Every file under ``folder`` (but the lock files), JSON read with its volatile keys
    and the cache's own path taken out."""
    found: dict[str, bytes | dict] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() or path.name.endswith(".lock"):
            continue
        if path.suffix == ".json":
            text = path.read_text().replace(str(folder), "<root>")
            found[name] = _stable(json.loads(text))
        else:
            found[name] = path.read_bytes()
    return found


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def test_a_run_killed_in_each_stage_completes_as_if_never_killed(tmp_path: Path) -> None:
    # The uninterrupted run (one thread) runs on the other core while this one is killed.
    whole_cache, whole_out = tmp_path / "whole" / "cache", tmp_path / "whole" / "out"
    whole = _score(whole_cache, whole_out)

    cache, out = tmp_path / "killed" / "cache", tmp_path / "killed" / "out"
    for stage in STAGES:
        _kill_in(cache, out, stage)
    child = _score(cache, out)
    _, err = child.communicate(timeout=1200)
    assert child.returncode == 0, err[-2000:]
    _, err = whole.communicate(timeout=1200)
    assert whole.returncode == 0, err[-2000:]

    left = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert left == []
    # No process of a killed run lives on (the training's forked batch worker ends with it).
    deadline = time.monotonic() + 10
    while (alive := _processes_of(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], f"processes of the killed runs still running: {alive}"
    assert not out.with_name(".out.old").exists()
    for name in ("cache", "out"):
        killed = _files(tmp_path / "killed" / name)
        whole = _files(tmp_path / "whole" / name)
        assert sorted(killed) == sorted(whole)
        differ = [file for file in whole if killed[file] != whole[file]]
        assert differ == [], f"{name}: {differ} differ from an uninterrupted run's"


# A parent that forks a child which asks to die with it (as the training's batch worker does),
# prints the child's pid, and waits.
FORKS = """
import os, sys, time
from rem_core.detect.batches import _die_with
parent = os.getpid()
child = os.fork()
if child == 0:
    _die_with(parent)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def test_the_batch_worker_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", FORKS], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists(), "the forked worker outlived its parent"
