"""The experiment's rows (paper Tables 2 and 3) and its results: the table of AP by row over
seeds, the share of the Large gap closed, and the files ``rem experiment --out`` writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.experiment_stats import ExperimentIntervals, experiment_intervals, with_intervals
from rem_core.io.files import publish_file

__all__ = [
    "EXPERIMENT_ROWS",
    "ExperimentResult",
    "ExperimentRow",
    "experiment_rows",
    "results_table",
    "write_experiment",
    "write_results",
]


@dataclass(frozen=True)
class ExperimentRow:
    """One row of the results table.

    Attributes:
        name: its key (``"md-rem++-6%"``).
        label: as the table shows it.
        group: ``reference``, ``oracle``, ``baseline``, ``ours`` or ``budget``.
        method: the selection method (``MINING_METHODS``), or ``None``: nothing mined.
        fill: how the rest of the pool is labelled: ``"none"`` (the pool is left out),
            ``"sl"`` (the main model's detections), ``"al"`` (the auto-labeler) or ``"gt"``
            (every true label).
        budget: the mining budget (``None``: the experiment's default).
        paper_large: the paper's Large AP for this row, where the issue quotes it.
    """

    name: str
    label: str
    group: str
    method: str | None
    fill: str
    budget: str | None = None
    paper_large: float | None = None


#: The rows of paper Table 3, then the budgets of Table 2 (MD-REM++ at 6% and 9%).
EXPERIMENT_ROWS: dict[str, ExperimentRow] = {
    row.name: row
    for row in (
        ExperimentRow("partial", "Partial-supervised", "reference", None, "none",
                      paper_large=0.378),
        ExperimentRow("semi-sl", "Semi-supervised (SL)", "reference", None, "sl"),
        ExperimentRow("semi-al", "Semi-supervised (AL)", "reference", None, "al"),
        ExperimentRow("full", "Fully-supervised", "reference", None, "gt", paper_large=0.602),
        ExperimentRow("oracle-hard", "Oracle Hard", "oracle", "oracle_hard", "sl"),
        ExperimentRow("oracle-size", "Oracle Size", "oracle", "oracle_size", "sl"),
        ExperimentRow("random", "Random", "baseline", "random", "sl"),
        ExperimentRow("predict-size", "Predict Size", "baseline", "predict_size", "sl"),
        ExperimentRow("ensemble", "Ensemble", "baseline", "ensemble", "sl"),
        ExperimentRow("m-rem", "M-REM", "ours", "m_rem", "sl"),
        ExperimentRow("d-rem", "D-REM", "ours", "d_rem", "sl"),
        ExperimentRow("d-rem++", "D-REM++", "ours", "d_rem", "al"),
        ExperimentRow("md-rem++", "MD-REM++", "ours", "md_rem", "al", paper_large=0.571),
        ExperimentRow("md-rem++-6%", "MD-REM++ 6%", "budget", "md_rem", "al", "6%"),
        ExperimentRow("md-rem++-9%", "MD-REM++ 9%", "budget", "md_rem", "al", "9%"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ExperimentResult:
    """The experiment's runs and their summary.

    Attributes:
        path: the cache folder (``runs/<row>-seed<k>.json`` and ``.npz``, ``results.csv``,
            ``results.json``).
        runs: one row per (row, seed): ``row, seed, ap_all, ap_regular, ap_large,
            human_tracks, human_boxes, pseudo_boxes, seconds``.
        table: one row per experiment row (``results_table``).
        curves: ``row -> seed -> RecallCurve bins`` (DataFrames) of each retrained model.
    """

    path: Path
    runs: pd.DataFrame
    table: pd.DataFrame
    curves: dict[str, dict[int, pd.DataFrame]]


def results_table(runs: pd.DataFrame, config: RemConfig, dataset: Dataset) -> pd.DataFrame:
    """One row per experiment row: AP mean and standard deviation over its seeds.

    Columns: ``row, label, group, human_labels`` (the paper's "10%;3%": source share;
    mined budget), ``seeds, ap_all, ap_all_std, ap_regular, ap_regular_std, ap_large,
    ap_large_std, paper_ap_large, human_tracks, pseudo_boxes, seconds``, and ``gap_closed``:
    the share of the Large-AP gap between partial- and fully-supervised closed, on the
    seeds the row shares with both (NaN when one of them never ran).
    """
    segments = dataset.segments
    training = segments["split"].isin(["source", "unlabelled"]).sum()
    source_share = f"{(segments['split'] == 'source').sum() / max(training, 1):.0%}"
    grouped = runs.groupby("row", sort=False)
    out = []
    for name, g in grouped:
        row = EXPERIMENT_ROWS[name]
        if row.fill == "gt":
            human = "100%"
        elif row.method is None:
            human = source_share
        else:
            human = f"{source_share};{row.budget or config.mining.budget}"
        entry = {
            "row": name,
            "label": row.label,
            "group": row.group,
            "human_labels": human,
            "seeds": len(g),
        }
        for metric in ("ap_all", "ap_regular", "ap_large"):
            entry[metric] = g[metric].mean()
            entry[f"{metric}_std"] = g[metric].std(ddof=1) if len(g) > 1 else float("nan")
        entry["paper_ap_large"] = row.paper_large if row.paper_large is not None else np.nan
        entry["human_tracks"] = int(g["human_tracks"].iloc[0])
        entry["pseudo_boxes"] = int(g["pseudo_boxes"].mean())
        entry["seconds"] = g["seconds"].sum()
        out.append(entry)
    table = pd.DataFrame(out)
    large = runs.pivot_table(index="seed", columns="row", values="ap_large", aggfunc="mean")
    table["gap_closed"] = [_gap_closed(large, name) for name in table["row"]]
    return table


def _gap_closed(large: pd.DataFrame, name: str) -> float:
    """The share of the Large-AP gap between partial- and fully-supervised that ``name``
    closes, on the seeds all three ran (``large``: Large AP by seed and row): a row with one
    seed is compared with the references at that seed, not with their mean over seeds it
    never ran."""
    if not {"partial", "full", name} <= set(large.columns):
        return float("nan")
    shared = large[list(dict.fromkeys(["partial", "full", name]))].dropna()
    lo, hi = shared["partial"].mean(), shared["full"].mean()
    if shared.empty or hi == lo:
        return float("nan")
    return float((shared[name].mean() - lo) / (hi - lo))


def write_results(folder: Path, table: pd.DataFrame) -> None:
    publish_file(folder / "results.csv", lambda tmp: table.to_csv(tmp, index=False), force=True)
    document = json.loads(table.to_json(orient="records"))
    text = json.dumps(document, indent=1)
    publish_file(folder / "results.json", lambda tmp: tmp.write_text(text), force=True)


def write_experiment(
    result: ExperimentResult,
    folder: str | Path,
    *,
    force: bool = False,
    intervals: ExperimentIntervals | None = None,
) -> list[Path]:
    """Write the results to ``folder`` (created if missing), each file atomically.

    Files: ``experiment.csv`` and ``experiment.json`` (the table, with the 95% intervals of
    ``rem_core.experiment_stats.with_intervals`` as extra columns), ``runs.csv`` (one row
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


def experiment_rows(names: Sequence[str] | None = None) -> list[ExperimentRow]:
    """The rows called ``names`` (default: all), in table order."""
    return [EXPERIMENT_ROWS[n] for n in (names or EXPERIMENT_ROWS)]
