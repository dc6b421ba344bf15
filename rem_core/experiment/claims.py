"""The paper's claims about the active-learning experiment, checked against its intervals.

Each claim reads one or two paired comparisons (or the Large gap closed) of
``rem_core.experiment.stats`` and says whether it holds with the intervals' confidence:

* a claim that one row *beats* another holds when the interval of the difference lies
  above 0, and does not hold when it lies at or below 0;
* a claim that a row is *not below* another holds when the interval lies at or above 0,
  and does not hold when it lies below 0;
* a claim of a *share of the gap* of at least ``x`` holds when the interval lies at or above
  ``x``, and does not hold when it lies below.

Otherwise the runs do not settle it. Without a seed that the compared rows share (or with
one such seed and runs cached before their per-segment results were kept) there is no
interval: "not enough runs".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.experiment.stats import ExperimentIntervals

__all__ = ["VERDICTS", "Claim", "paper_claims"]

#: A claim's possible verdicts.
VERDICTS = ("holds", "does not hold", "not settled", "not enough runs")

#: Table 2's budget rows, smallest first.
BUDGET_ROWS = ("md-rem++", "md-rem++-6%", "md-rem++-9%")

#: The share of the Large gap MD-REM++ closes in the paper is 86%; the claim checked is 70%.
GAP_CLAIM = 0.70

_LABELS = {"md-rem++": "MD-REM++", "md-rem++-6%": "6%", "md-rem++-9%": "9%"}


@dataclass(frozen=True)
class Claim:
    """One claim and what the cached runs say about it.

    Attributes:
        claim: the claim (``"MD-REM++ beats Random on Large AP"``).
        verdict: one of ``VERDICTS``.
        detail: the numbers behind the verdict (difference, interval, seeds, segments).
        level: the intervals' confidence level.
    """

    claim: str
    verdict: str
    detail: str
    level: float = 0.95

    @property
    def sentence(self) -> str:
        """The claim, its verdict and its numbers, as one sentence."""
        conf = f"{self.level:.0%} confidence"
        says = {
            "holds": f"holds with {conf}",
            "does not hold": f"does not hold with {conf}: the interval lies on the other side",
            "not settled": f"not settled with {conf}: the interval spans both sides",
            "not enough runs": "not enough runs",
        }[self.verdict]
        return f"{self.claim}: {says} ({self.detail})."


def paper_claims(intervals: ExperimentIntervals) -> list[Claim]:
    """The paper's claims (Tables 2 and 3), each with its verdict on the cached runs.

    MD-REM++ beats Random and Ensemble on Large AP; it closes at least 70% of the Large gap
    between partial and full supervision; its Regular AP is not below Partial-supervised's;
    and, when the 6% and 9% rows ran, its Large AP does not fall from 3% to 6% to 9%.
    """
    level = intervals.level
    claims = [
        _compare(intervals, "md-rem++", "random", "ap_large", "beats",
                 "MD-REM++ beats Random on Large AP"),
        _compare(intervals, "md-rem++", "ensemble", "ap_large", "beats",
                 "MD-REM++ beats Ensemble on Large AP"),
        _gap(intervals),
        _compare(intervals, "md-rem++", "partial", "ap_regular", "not below",
                 "MD-REM++'s Regular AP is not below Partial-supervised's"),
    ]  # fmt: skip
    if set(BUDGET_ROWS) <= set(intervals.rows["row"]):
        steps = [
            _compare(intervals, high, low, "ap_large", "not below", "")
            for low, high in zip(BUDGET_ROWS[:-1], BUDGET_ROWS[1:], strict=True)
        ]
        verdicts = [c.verdict for c in steps]
        verdict = next(
            (v for v in ("not enough runs", "does not hold", "not settled") if v in verdicts),
            "holds",
        )
        detail = "; ".join(
            f"{_LABELS[BUDGET_ROWS[i + 1]]} - {_LABELS[BUDGET_ROWS[i]]}: {c.detail}"
            for i, c in enumerate(steps)
        )
        claims.append(
            Claim("MD-REM++'s Large AP does not fall from 3% to 6% to 9%", verdict, detail, level)
        )
    return claims


def _compare(
    intervals: ExperimentIntervals, row: str, other: str, metric: str, kind: str, claim: str
) -> Claim:
    table = intervals.comparisons
    found = table[(table["row"] == row) & (table["other"] == other) & (table["metric"] == metric)]
    if found.empty:
        missing = _missing(intervals, row, other)
        return Claim(claim, "not enough runs", f"no cached run of {missing}", intervals.level)
    c = found.iloc[0]
    if np.isnan(c["low"]):
        why = "no seed both ran" if c["seeds"] == 0 else "one shared seed, no segments to draw"
        return Claim(claim, "not enough runs", why, intervals.level)
    low, high = c["low"], c["high"]
    if kind == "beats":
        verdict = "holds" if low > 0 else "does not hold" if high <= 0 else "not settled"
    else:
        verdict = "holds" if low >= 0 else "does not hold" if high < 0 else "not settled"
    detail = (
        f"difference {c['diff']:+.3f}, {intervals.level:.0%} interval {low:+.3f} to {high:+.3f}"
        f", {_basis(c)}"
    )
    return Claim(claim, verdict, detail, intervals.level)


def _gap(intervals: ExperimentIntervals) -> Claim:
    claim = f"MD-REM++ closes at least {GAP_CLAIM:.0%} of the Large-AP gap to full supervision"
    rows = intervals.rows.set_index("row")
    if not {"md-rem++", "partial", "full"} <= set(rows.index):
        missing = _missing(intervals, "md-rem++", "partial", "full")
        return Claim(claim, "not enough runs", f"no cached run of {missing}", intervals.level)
    r = rows.loc["md-rem++"]
    if np.isnan(r["gap_closed_low"]):
        why = "too few seeds shared with partial and full"
        return Claim(claim, "not enough runs", why, intervals.level)
    low, high = r["gap_closed_low"], r["gap_closed_high"]
    verdict = "holds" if low >= GAP_CLAIM else "not settled"
    verdict = "does not hold" if high < GAP_CLAIM else verdict
    detail = f"{r['gap_closed']:.0%}, {intervals.level:.0%} interval {low:.0%} to {high:.0%}"
    return Claim(claim, verdict, detail, intervals.level)


def _basis(comparison: pd.Series) -> str:
    seeds = f"{comparison['seeds']} shared seed{'s' if comparison['seeds'] != 1 else ''}"
    if comparison["segments"]:
        return f"{seeds} x {comparison['segments']} validation segments"
    return f"{seeds}, over seeds only (runs without per-segment results)"


def _missing(intervals: ExperimentIntervals, *rows: str) -> str:
    ran = set(intervals.rows["row"])
    return ", ".join(r for r in rows if r not in ran) or "both rows"
