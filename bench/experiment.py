"""Benchmark: the active-learning experiment (paper Tables 2 and 3) on the demo world.

Runs ``rem_core.experiment.run_experiment`` for the chosen rows and seeds on the preset's
world (its pipeline is built first if it is not cached; runs already cached are read, not
redone, so ``--fresh`` times a run from scratch in a new cache folder of experiments only).
``seconds`` is the wall time of the runs this invocation computed; ``seconds_per_run`` their
mean. Both cores are used (torch's threads), as a user's run would.

Prints the table, then (last line) JSON:
``{"ap_large": {"<row>": ...}, "ap_regular": {...}, "ap_all": {...}, "ap_large_std": {...},
"gap_closed": {...}, "gap_closed_ci": {"<row>": [low, high]}, "paired_diff_ci":
{"<row>-vs-<other>": [low, high]}, "seeds": {...}, "steps": ..., "runs_computed": ...,
"seconds": ..., "seconds_per_run": ..., "bootstrap_seconds": ...}``. AP and ``gap_closed``
are means over seeds; ``gap_closed_ci`` is the 95% interval of the share of the Large gap
closed, and ``paired_diff_ci`` that of the Large-AP difference of each row minus
``partial``, ``random`` and ``ensemble`` at the same seeds (``rem_core.experiment.stats``:
a bootstrap over seeds and validation segments; ``null`` without an interval).

Usage: ``python bench/experiment.py [--preset demo] [--rows a,b,...] [--seeds 3]
[--steps N] [--ema-decay D] [--fresh]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time

from calibrate import calibrate, with_calibration

from rem_core.config import EXPERIMENT_ROW_NAMES, RemConfig
from rem_core.experiment import REFERENCES, experiment_intervals, plan_experiment, run_experiment
from rem_core.pipeline import ensure_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--rows", default=",".join(EXPERIMENT_ROW_NAMES))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--ema-decay", type=float, default=None, help="weight averaging")
    parser.add_argument("--fresh", action="store_true", help="drop cached runs first")
    args = parser.parse_args()
    calibrated = calibrate()  # and again at the end: the machine drifts over a long run
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("rem_core.detect.train").setLevel(logging.WARNING)

    config = RemConfig.preset(args.preset)
    exp = dataclasses.replace(config.experiment, rows=tuple(args.rows.split(",")))
    if args.seeds is not None:
        exp = dataclasses.replace(exp, seeds=args.seeds)
    if args.steps is not None:
        exp = dataclasses.replace(exp, steps=args.steps)
    if args.ema_decay is not None:
        exp = dataclasses.replace(exp, ema_decay=args.ema_decay)
    config = dataclasses.replace(config, experiment=exp)
    dataset = ensure_world(config.world)
    folder = plan_experiment(config, dataset).entry().path
    if args.fresh and folder.exists():
        shutil.rmtree(folder)
    before = len(list((folder / "runs").glob("*.json"))) if folder.exists() else 0
    start = time.perf_counter()
    result = run_experiment(config, dataset)
    seconds = time.perf_counter() - start
    computed = len(list((folder / "runs").glob("*.json"))) - before

    table = result.table.set_index("row")
    print(
        table[["label", "human_labels", "seeds", "ap_all", "ap_regular", "ap_large",
               "ap_large_std", "paper_ap_large", "gap_closed"]]
        .to_string(float_format=lambda v: f"{v:.3f}", na_rep="–")
    )  # fmt: skip

    def column(name: str) -> dict:
        return {r: (None if v != v else round(float(v), 4)) for r, v in table[name].items()}

    steps = int(result.runs["train_steps"].iloc[0]) if len(result.runs) else None
    boot_start = time.perf_counter()
    intervals = experiment_intervals(result)
    bootstrap_seconds = time.perf_counter() - boot_start

    def span(low: float, high: float) -> list | None:
        return None if low != low else [round(float(low), 4), round(float(high), 4)]

    rows = intervals.rows.set_index("row")
    gap_ci = {r: span(v["gap_closed_low"], v["gap_closed_high"]) for r, v in rows.iterrows()}
    large = intervals.comparisons[
        (intervals.comparisons["metric"] == "ap_large")
        & intervals.comparisons["other"].isin(REFERENCES)
    ]
    diff_ci = {f"{c.row}-vs-{c.other}": span(c.low, c.high) for c in large.itertuples()}
    print(
        large.drop(columns=["metric", "holds"]).to_string(
            index=False, float_format=lambda v: f"{v:+.3f}", na_rep="–"
        )
    )
    print(
        json.dumps(
            with_calibration(
                {
                    "ap_large": column("ap_large"),
                    "ap_regular": column("ap_regular"),
                    "ap_all": column("ap_all"),
                    "ap_large_std": column("ap_large_std"),
                    "gap_closed": column("gap_closed"),
                    "gap_closed_ci": gap_ci,
                    "paired_diff_ci": diff_ci,
                    "seeds": {r: int(v) for r, v in table["seeds"].items()},
                    "steps": steps,
                    "runs_computed": computed,
                    "seconds": round(seconds, 1),
                    "seconds_per_run": round(seconds / computed, 1) if computed else None,
                    "bootstrap_seconds": round(bootstrap_seconds, 1),
                },
                calibrated,
            )
        )
    )


if __name__ == "__main__":
    main()
