"""The experiment's rows: the ways to label the unlabelled pool that paper Tables 2 and 3
compare."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rem_core.evaluation import REPORTED_SUBSETS

__all__ = ["AP_COLUMNS", "EXPERIMENT_ROWS", "ExperimentRow", "experiment_rows"]

#: The AP a run reports, one column per reported subset
#: (``rem_core.evaluation.REPORTED_SUBSETS``), in the same order.
AP_COLUMNS = tuple(f"ap_{subset}" for subset in REPORTED_SUBSETS)


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


def experiment_rows(names: Sequence[str] | None = None) -> list[ExperimentRow]:
    """The rows called ``names`` (default: all), in table order."""
    return [EXPERIMENT_ROWS[n] for n in (names or EXPERIMENT_ROWS)]
