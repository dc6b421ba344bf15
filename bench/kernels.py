"""Benchmark: which CPU kernel settings change the bytes training writes.

Members 0 and 1 of a preset's detector recipe are trained together for ``--steps`` steps on
its world, once per setting, each in a fresh process (torch, oneDNN and MKL read their
environment variables when they load): nothing changed, the same again, one torch thread,
ATen's vector kernels off, oneDNN on SSE4.1, MKL's conditional reproducibility, all three
pinned to AVX2, and oneDNN off (with and without MKL pinned). Each setting's weights are
hashed; a setting that gives the default's hash trains the same bytes.

Prints a line per setting, then (last line) JSON: ``{"steps", "preset", "machine",
"settings": {name: {"member0", "member1", "same_as_default", "seconds", "first_weight"}}}``.

Usage: ``python bench/kernels.py [--preset demo] [--steps 40]`` (about 10 min for the demo
preset's 40 steps on 2 cores). docs/detector.md, "Reproducible bytes", has the findings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

from calibrate import with_calibration

#: Each setting: its environment, torch threads (0: torch's default) and whether oneDNN runs.
SETTINGS: dict[str, tuple[dict[str, str], int, bool]] = {
    "default": ({}, 0, True),
    "default again": ({}, 0, True),
    "threads 1": ({}, 1, True),
    "ATen default": ({"ATEN_CPU_CAPABILITY": "default"}, 0, True),
    "oneDNN SSE41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 0, True),
    "MKL CBWR compatible": ({"MKL_CBWR": "COMPATIBLE"}, 0, True),
    "pinned AVX2": (
        {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
        0,
        True,
    ),
    "oneDNN off": ({}, 0, False),
    "oneDNN off, MKL pinned": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}, 0, False),
}


def train_once(preset: str, steps: int, threads: int, mkldnn: bool) -> dict:
    """In this process: train members 0 and 1 and hash their weights."""
    import torch

    torch.backends.mkldnn.enabled = mkldnn
    from rem_core.config import RemConfig
    from rem_core.detect import train_detectors
    from rem_core.pipeline import ensure_world

    config = RemConfig.preset(preset)
    recipe = config.detector.changed(num_threads=threads)
    dataset = ensure_world(config.world)
    start = time.perf_counter()
    models = train_detectors(recipe, dataset, [0, 1], steps=steps)
    out = {"seconds": round(time.perf_counter() - start, 1)}
    for member, model in zip((0, 1), models, strict=True):
        digest = hashlib.sha256()
        for name, value in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().contiguous().numpy().tobytes())
        out[f"member{member}"] = digest.hexdigest()[:16]
    out["first_weight"] = float(next(iter(models[0].parameters())).detach().flatten()[0])
    out["capability"] = torch.backends.cpu.get_cpu_capability()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child's setting
    args = parser.parse_args()
    if args.one is not None:
        _, threads, mkldnn = SETTINGS[args.one]
        print(json.dumps(train_once(args.preset, args.steps, threads, mkldnn)))
        return
    from rem_core.provenance import kernels, machine

    found = {}
    for name, (env, _, _) in SETTINGS.items():
        child = subprocess.run(
            [sys.executable, __file__, "--preset", args.preset, "--steps", str(args.steps),
             "--one", name],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        found[name] = json.loads(child.stdout.strip().splitlines()[-1])
        found[name]["same_as_default"] = (found[name]["member0"], found[name]["member1"]) == (
            found["default"]["member0"],
            found["default"]["member1"],
        )
        row = found[name]
        print(f"{name:24s} same bytes as default: {row['same_as_default']!s:5}  "
              f"{row['seconds']:6.1f} s  first weight {row['first_weight']:+.6f}")  # fmt: skip
    print(json.dumps(with_calibration({"steps": args.steps, "preset": args.preset,
                      "machine": {**machine(), **kernels()}, "settings": found})))  # fmt: skip


if __name__ == "__main__":
    main()
