"""The experiment's results: its runs, the table of AP by row over seeds and the share of
the Large gap closed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.experiment.rows import AP_COLUMNS, EXPERIMENT_ROWS
from rem_core.files import publish_file

__all__ = ["ExperimentResult", "results_table", "write_results"]


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
        for metric in AP_COLUMNS:
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
    """Write the table to ``folder/results.csv`` and ``results.json``, each atomically."""
    publish_file(folder / "results.csv", lambda tmp: table.to_csv(tmp, index=False), force=True)
    document = json.loads(table.to_json(orient="records"))
    text = json.dumps(document, indent=1)
    publish_file(folder / "results.json", lambda tmp: tmp.write_text(text), force=True)
