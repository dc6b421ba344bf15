"""One process computes a cache entry; another asking for it meanwhile waits and reads it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rem_core.cache import compute_once

# Each child waits for the parent's go, then asks for the tiny world; simulating it is
# slowed by 2 s and logged to a file, so that both ask while the first is computing.
CHILD = """
import logging, sys, time
from pathlib import Path
import rem_core.pipeline.world as world_stage
from rem_core.config import WorldConfig

logging.basicConfig(level=logging.INFO, format="%(message)s")
log_file, go, root = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
original = world_stage.write_world

def counted(*args, **kwargs):
    with log_file.open("a") as f:
        f.write("simulated\\n")
    time.sleep(2)
    return original(*args, **kwargs)

world_stage.write_world = counted
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
ds = world_stage.ensure_world(WorldConfig.tiny(), root=root)
print(len(ds.boxes), ds.boxes["center_x"].sum(), flush=True)
"""


def test_two_processes_compute_an_entry_once(tmp_path: Path) -> None:
    log_file, go, root = tmp_path / "calls.txt", tmp_path / "go", tmp_path / "cache"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(log_file), str(go), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    outs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err for _, err in outs]
    assert log_file.read_text().splitlines() == ["simulated"]  # computed once
    assert outs[0][0] == outs[1][0]  # and both read the same world
    assert sum("waiting for it" in err for _, err in outs) == 1
    left = sorted(p.name for p in (root / "world").iterdir())
    assert len(left) == 2 and left[0] == f".{left[1]}.lock"  # no temporary folder left


def test_an_entry_done_is_read_without_its_lock(tmp_path: Path) -> None:
    entry = tmp_path / "stage" / "key"
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text("{}")
    with compute_once(entry, "meta.json") as todo:
        assert todo is False
    assert not (tmp_path / "stage" / ".key.lock").exists()
    calls = []
    with compute_once(tmp_path / "stage" / "other", lambda: bool(calls)) as todo:
        assert todo is True


def test_the_lock_goes_with_a_killed_process_not_with_its_children(tmp_path: Path) -> None:
    # A process killed while it holds an entry's lock does not block the next one.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from rem_core.cache import compute_once\n"
            "import multiprocessing as mp\n"
            "with compute_once(Path(sys.argv[1]), 'meta.json'):\n"
            # a forked child outlives it (as the training's batch worker may): it must
            # not keep the lock
            "    child = mp.get_context('fork').Process(target=time.sleep, args=(60,))\n"
            "    child.start()\n"
            "    print(child.pid, flush=True); time.sleep(60)\n",
            str(tmp_path / "stage" / "key"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(holder.stdout.readline())
    holder.kill()
    holder.wait()
    try:
        start = time.perf_counter()
        with compute_once(tmp_path / "stage" / "key", "meta.json") as todo:
            assert todo is True
        assert time.perf_counter() - start < 5
    finally:
        os.kill(child, signal.SIGKILL)
