"""Benchmark: how fast this machine is, as one figure that every timing benchmark prints beside
its own, so that times measured on two machines can be compared.

A fixed workload of the three kinds of work REM Workbench spends its time on, each seeded and
the same on every machine:

- ``torch_s``: a small BEV convolution network's forward and backward pass (the detector's
  training and inference), in torch's threads (``--threads``, default 2, the detector's);
- ``numpy_s``: float64 matrix products, a sort and elementwise maths (the world, PCA,
  evaluation, Algorithm 1);
- ``python_s``: pure Python on dicts and lists, one core and the GIL (page scripts, the
  Streamlit server, the tracker's bookkeeping).

Each part is timed ``--repeats`` times (default 3) after one warm-up, and its fastest time is
kept: on a shared machine, other work only ever adds time, so the minimum is the steadiest
estimate of the machine's speed. ``calibration_s`` is the sum of the three minima. A timing
divided by ``calibration_s`` is in *calibration units*, comparable across machines as far
as their balance of the three is alike; the parts show where two machines differ.

Every timing benchmark in ``bench/`` ends with :func:`with_calibration`: its last line's JSON
holds ``calibration_s`` (and ``calibration``: the parts, threads and CPU) beside its figures.

Prints one line per part, then (last line) JSON: ``{"calibration_s": ..., "torch_s": ...,
"numpy_s": ..., "python_s": ..., "threads": ..., "cpu": ...}``.

Usage: ``python bench/calibrate.py [--repeats N] [--threads T]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = ["calibrate", "with_calibration"]


def _torch_work() -> None:
    """Forward and backward, 5 times, of a 3-layer conv net on 2 BEV grids of 64 x 128 x 128."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 8, 1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    x = torch.randn(2, 64, 128, 128, generator=gen)
    for _ in range(5):
        net.zero_grad()
        net(x).square().mean().backward()


def _numpy_work() -> None:
    """Matrix products (800 x 800), a sort of 8M values and elementwise maths on them."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((800, 800))
    for _ in range(12):
        a = np.tanh(a @ a.T / 800.0)
    v = rng.standard_normal(8_000_000)
    np.sort(v)
    np.exp(np.sin(v) * np.cos(v)).sum()


def _python_work() -> None:
    """Dict and list work in the interpreter: group 1,500,000 keyed records and sort each group."""
    groups: dict[int, list[float]] = {}
    x = 1
    for _ in range(1_500_000):
        x = (x * 1103515245 + 12345) % 2**31
        groups.setdefault(x % 997, []).append(x / 2**31)
    for values in groups.values():
        values.sort()
    sum(len(v) for v in groups.values())


PARTS: dict[str, Callable[[], None]] = {
    "torch_s": _torch_work,
    "numpy_s": _numpy_work,
    "python_s": _python_work,
}


def _cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calibrate(repeats: int = 3, threads: int = 2) -> dict:
    """Time the fixed workload: each part's fastest of ``repeats`` runs after a warm-up, in
    seconds, and their sum ``calibration_s``; with the torch ``threads`` and the CPU's name.
    torch's thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result: dict = {}
        for name, work in PARTS.items():
            work()  # warm-up: allocators, kernels' first dispatch
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
            result[name] = round(min(times), 3)
    finally:
        torch.set_num_threads(before)
    return {
        "calibration_s": round(sum(result[name] for name in PARTS), 3),
        **result,
        "threads": threads,
        "cpu": _cpu_name(),
    }


def with_calibration(result: dict, before: dict | None = None, threads: int = 2) -> dict:
    """``result`` (a benchmark's JSON figures) with this machine's calibration beside them:
    ``calibration_s`` and ``calibration`` (every part, the threads and the CPU). Prints one
    line saying so. Benchmarks call it after their own work, on the machine as they left it.

    A long benchmark also calibrates before it starts and passes that as ``before``
    (``app``, ``detector``, ``experiment`` and ``kernel_pairs`` do): a shared machine's
    speed drifts over half an hour (2.4 s to 4.0 s here in one afternoon), so
    ``calibration_s`` is then the mean of the two, ``calibration`` keeps both (``before_s``,
    ``after_s``) and its parts are the second calibration's.
    """
    found = calibrate(threads=threads)
    parts = {k: v for k, v in found.items() if k != "calibration_s"}
    seconds, drift = found["calibration_s"], ""
    if before is not None:
        parts |= {"before_s": before["calibration_s"], "after_s": seconds}
        drift = f", mean of {before['calibration_s']:.3f} s before and {seconds:.3f} s after"
        seconds = round((before["calibration_s"] + seconds) / 2, 3)
    print(f"calibration {seconds:.3f} s ({found['cpu']}{drift}; bench/calibrate.py)")
    return {**result, "calibration_s": seconds, "calibration": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each part")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    result = calibrate(args.repeats, args.threads)
    for name in PARTS:
        print(f"{name[:-2]:>6}: {result[name]:.3f} s")
    cpu, seconds = result["cpu"], result["calibration_s"]
    print(f"calibration: {seconds:.3f} s on {cpu}, {args.threads} threads")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
