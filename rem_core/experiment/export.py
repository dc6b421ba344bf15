"""The files ``rem experiment --out`` writes: the table with its intervals, the runs, the
recall curves and the paired comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rem_core.experiment.results import ExperimentResult
from rem_core.experiment.stats import ExperimentIntervals, experiment_intervals, with_intervals
from rem_core.files import publish_file

__all__ = ["write_experiment"]


def write_experiment(
    result: ExperimentResult,
    folder: str | Path,
    *,
    force: bool = False,
    intervals: ExperimentIntervals | None = None,
) -> list[Path]:
    """Write the results to ``folder`` (created if missing), each file atomically.

    Files: ``experiment.csv`` and ``experiment.json`` (the table, with the 95% intervals of
    ``rem_core.experiment.with_intervals`` as extra columns), ``runs.csv`` (one row
    per row and seed), ``curves.csv`` (``row, seed`` and each recall-by-rareness bin) and
    ``comparisons.csv`` (``ExperimentIntervals.comparisons``: paired differences).

    Args:
        intervals: the bootstrap of ``result`` (default: ``experiment_intervals(result)``).

    Raises:
        FileExistsError: a file exists and ``force`` is false (nothing is written then).
    """
    folder = Path(folder)
    names = ["experiment.csv", "experiment.json", "runs.csv", "curves.csv", "comparisons.csv"]
    if not force:
        for name in names:
            if (folder / name).exists():
                raise FileExistsError(f"{folder / name}: exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    curves = pd.concat(
        [
            bins.assign(row=row, seed=seed)
            for row, by_seed in result.curves.items()
            for seed, bins in by_seed.items()
        ],
        ignore_index=True,
    )
    curves = curves[["row", "seed", *[c for c in curves.columns if c not in ("row", "seed")]]]
    intervals = intervals or experiment_intervals(result)
    table = with_intervals(result.table, intervals)
    document = json.dumps(json.loads(table.to_json(orient="records")), indent=1)
    writers = [
        lambda tmp: table.to_csv(tmp, index=False),
        lambda tmp: tmp.write_text(document),
        lambda tmp: result.runs.to_csv(tmp, index=False),
        lambda tmp: curves.to_csv(tmp, index=False),
        lambda tmp: intervals.comparisons.to_csv(tmp, index=False),
    ]
    return [
        publish_file(folder / name, write, force=True)
        for name, write in zip(names, writers, strict=True)
    ]
