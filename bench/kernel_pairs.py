"""Benchmark: do the experiment's paired differences survive a change of CPU kernels?

The experiment's rows ``partial``, ``random`` and ``md-rem++`` are retrained at ``--seeds``
seeds under two kernel settings of this machine, each in a fresh process (ATen reads
``ATEN_CPU_CAPABILITY`` when torch loads):

* ``default``: torch's own choice of vector kernels (AVX2 or AVX-512);
* ``ATen default``: ``ATEN_CPU_CAPABILITY=default``, ATen's kernels without vector
  instructions (docs/detector.md, "Reproducible bytes": it changes the bytes training writes,
  as another CPU does).

Both settings mine from one pipeline (the preset's, computed by this process under the default
setting first): the mined tracks are the same, as they are across CPUs (issue 28), and only the
retraining and its evaluation see the other kernels. Each setting's runs are cached in a folder
of its own under ``--out`` (the experiment's cache key does not name the kernels).

For each setting, the paired differences MD-REM++ - Random and MD-REM++ - Partial in Large AP
(per seed, their mean and standard deviation), and whether each is positive at every seed;
then, per run, how far the two settings part. ``--steps`` shortens the retraining (the demo's
own is 4,800 steps, about 13 minutes a run on 2 cores): say so beside any figure.

Prints a line per setting, then (last line) JSON: ``{"preset", "steps", "seeds", "machine",
"settings": {name: {"runs", "differences"}}, "between_settings"}``.

Usage: ``python bench/kernel_pairs.py [--preset demo] [--seeds 3] [--steps 1200]
[--out /tmp/kernel_pairs]``. docs/experiment.md, "Machines", has the findings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from calibrate import calibrate, with_calibration

#: Each setting's environment.
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
}

ROWS = ("partial", "random", "md-rem++")

#: The paired differences reported: (row, minus row).
PAIRS = (("md-rem++", "random"), ("md-rem++", "partial"))


def run_setting(preset: str, seeds: int, steps: int, pipeline: str) -> list[dict]:
    """In this process: the rows' runs, mined from the pipeline cached under ``pipeline``."""
    from dataclasses import replace

    from rem_core.cache import cache_root
    from rem_core.config import RemConfig
    from rem_core.experiment import run_experiment
    from rem_core.pipeline import ensure_world

    config = RemConfig.preset(preset)
    config = replace(
        config, experiment=replace(config.experiment, rows=ROWS, seeds=seeds, steps=steps)
    )
    root = cache_root()
    _link_pipeline(Path(pipeline), root)
    dataset = ensure_world(config.world)
    result = run_experiment(config, dataset)
    runs = result.runs[["row", "seed", "ap_all", "ap_regular", "ap_large"]]
    return runs.to_dict(orient="records")


def _link_pipeline(pipeline: Path, root: Path) -> None:
    """Every stage folder of ``pipeline`` but the experiment's, linked into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for stage in pipeline.iterdir():
        link = root / stage.name
        if stage.is_dir() and stage.name != "experiment" and not link.exists():
            link.symlink_to(stage.resolve(), target_is_directory=True)


def _ensure_pipeline(preset: str) -> None:
    """The preset's pipeline, up to the mining pool, in the cache (default kernels)."""
    from rem_core.config import RemConfig
    from rem_core.experiment import plan_experiment
    from rem_core.pipeline import ensure_mining_pool, ensure_world

    config = RemConfig.preset(preset)
    dataset = ensure_world(config.world)
    ensure_mining_pool(plan_experiment(config, dataset).config, dataset)


def differences(runs: list[dict]) -> dict:
    """Per pair of ``PAIRS``: Large AP differences per seed, mean, sd, positive at all seeds."""
    ap = {(r["row"], r["seed"]): r["ap_large"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out = {}
    for a, b in PAIRS:
        per_seed = [ap[(a, s)] - ap[(b, s)] for s in seeds]
        out[f"{a} - {b}"] = {
            "per_seed": [round(d, 4) for d in per_seed],
            "mean": round(float(np.mean(per_seed)), 4),
            "sd": round(float(np.std(per_seed, ddof=1)), 4) if len(seeds) > 1 else None,
            "positive_at_every_seed": bool(all(d > 0 for d in per_seed)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", default="/tmp/kernel_pairs")
    parser.add_argument("--setting", help=argparse.SUPPRESS)  # run one setting, here
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setting:
        runs = run_setting(args.preset, args.seeds, args.steps, args.pipeline)
        print(json.dumps(runs))
        return

    calibrated = calibrate()  # and again at the end: hours, over which the machine drifts
    from rem_core.cache import cache_root
    from rem_core.provenance import machine

    pipeline = cache_root()
    _ensure_pipeline(args.preset)
    settings = {}
    for name, env in SETTINGS.items():
        start = time.perf_counter()
        folder = Path(args.out) / name.replace(" ", "-")
        done = subprocess.run(
            [sys.executable, __file__, "--preset", args.preset, "--seeds", str(args.seeds),
             "--steps", str(args.steps), "--setting", name, "--pipeline", str(pipeline)],
            env={**os.environ, **env, "REM_CACHE_DIR": str(folder / "cache")},
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"setting {name!r} failed:\n{done.stderr[-3000:]}")
        runs = json.loads(done.stdout.strip().splitlines()[-1])
        settings[name] = {
            "env": env,
            "seconds": round(time.perf_counter() - start, 1),
            "runs": runs,
            "differences": differences(runs),
        }
        print(name, json.dumps(settings[name]["differences"]), flush=True)
    first, second = (settings[n]["runs"] for n in SETTINGS)
    apart = [
        abs(a["ap_large"] - b["ap_large"])
        for a, b in zip(first, second, strict=True)
        if (a["row"], a["seed"]) == (b["row"], b["seed"])
    ]
    between = {
        "large_ap_abs_diff_mean": round(float(np.mean(apart)), 4),
        "large_ap_abs_diff_max": round(float(np.max(apart)), 4),
        "same_sign_of_every_difference": all(
            np.sign(x) == np.sign(y)
            for pair in settings["default"]["differences"]
            for x, y in zip(
                settings["default"]["differences"][pair]["per_seed"],
                settings["ATen default"]["differences"][pair]["per_seed"],
                strict=True,
            )
        ),
    }
    print(
        json.dumps(
            with_calibration(
                {
                    "preset": args.preset,
                    "steps": args.steps,
                    "seeds": args.seeds,
                    "machine": machine(),
                    "settings": settings,
                    "between_settings": between,
                },
                calibrated,
            )
        )
    )


if __name__ == "__main__":
    main()
