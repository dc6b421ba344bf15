"""95% intervals for the active-learning experiment: a paired, two-level bootstrap.

The experiment (``rem_core.experiment.runs``) runs each row once per seed; rows that share a
seed share the retraining's initial weights and data order, and every run is evaluated
on the same validation segments. Two sources of chance move a row's AP: the seed, and
which objects happen to be in the validation split. An interval over the seeds alone
ignores the second; one over frames would pretend that the 10 frames of a segment (the
same objects seen again) are independent. So each resample (docs/experiment.md,
"Intervals"):

1. draws the seeds again, with replacement, from the seeds the compared rows share (the
   same draw for both rows of a pair: they are compared seed by seed);
2. draws the validation segments again, with replacement (the same draw for every run),
   and recomputes every run's AP on them from its stored per-segment results
   (``rem_core.experiment.segments``);
3. takes the statistic: a row's mean AP over the drawn seeds, the difference of two rows'
   means, or the share of the Large gap closed ``(row - partial) / (full - partial)``.

The interval is the 2.5th to 97.5th percentile of the statistic over the resamples (the
percentile bootstrap). Runs cached before per-segment results were kept are resampled by
seed only, and so is every comparison that involves one (``segments`` is then 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rem_core.errors import InputError
from rem_core.experiment.results import ExperimentResult
from rem_core.experiment.rows import AP_COLUMNS
from rem_core.experiment.segments import SegmentResults, read_segment_results, resampled_ap

__all__ = [
    "BUDGET_STEPS",
    "LEVEL",
    "REFERENCES",
    "RESAMPLES",
    "ExperimentIntervals",
    "bootstrap_intervals",
    "experiment_intervals",
    "load_segment_results",
    "with_intervals",
]

#: Resamples of the bootstrap, and the intervals' confidence level.
RESAMPLES, LEVEL = 2000, 0.95
#: Every row is compared with these.
REFERENCES = ("partial", "random", "ensemble")
#: Table 2's budget steps: (larger budget, smaller budget).
BUDGET_STEPS = (("md-rem++-6%", "md-rem++"), ("md-rem++-9%", "md-rem++-6%"))

COMPARISON_COLUMNS = [
    "row", "other", "metric", "seeds", "segments", "diff", "low", "high", "holds", "verdict"
]  # fmt: skip


@dataclass(frozen=True)
class ExperimentIntervals:
    """Bootstrap intervals of the experiment's rows and of their paired differences.

    Attributes:
        rows: one row per experiment row: ``row``, ``seeds`` (its runs), ``segments``
            (validation segments resampled; 0: seeds only); for each of ``AP_COLUMNS`` the
            mean over seeds and its interval ``<metric>_low``, ``<metric>_high``; and
            ``gap_closed``, ``gap_closed_low``, ``gap_closed_high`` (on the seeds the row
            shares with partial and full). Intervals are NaN where nothing varies (one seed,
            and one segment or no per-segment results).
        comparisons: one row per (row, other, metric): ``seeds`` shared, ``segments``,
            ``diff`` (mean over the shared seeds of ``row - other``), its interval ``low``
            and ``high``, ``holds`` (``low > 0``: the row is above with 95% confidence;
            NA without an interval) and ``verdict``: ``above``, ``below`` (``high < 0``),
            ``not distinguished`` or ``not enough runs``.
        resamples: bootstrap resamples.
        level: confidence level of the intervals.
    """

    rows: pd.DataFrame
    comparisons: pd.DataFrame
    resamples: int
    level: float


def bootstrap_intervals(
    runs: pd.DataFrame,
    frames: Mapping[tuple[str, int], SegmentResults | None],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> ExperimentIntervals:
    """Intervals of every row's AP and gap closed, and of paired differences.

    Args:
        runs: one row per run: ``row, seed`` and ``AP_COLUMNS`` (its stored AP).
        frames: ``(row, seed) -> SegmentResults`` of the runs that have them.
        resamples: bootstrap resamples.
        level: confidence level, in (0, 1).
        seed: seed of the resampling (the same seed gives the same intervals).
        pairs: ``(row, other)`` pairs to compare (default: every row with each of
            ``REFERENCES`` that precedes it, then ``BUDGET_STEPS``, where both rows ran).

    Raises:
        ValueError: a bad ``resamples`` or ``level``, or ``runs`` lacks a column.
    """
    missing = [c for c in ("row", "seed", *AP_COLUMNS) if c not in runs.columns]
    if missing:
        raise InputError(f"runs: missing column(s) {', '.join(missing)}")
    if not (isinstance(resamples, int) and resamples >= 1):
        raise InputError(f"resamples: expected a positive integer, got {resamples!r}")
    if not 0 < level < 1:
        raise InputError(f"level: expected a value in (0, 1), got {level!r}")
    boot = _Bootstrap(runs, frames, resamples, seed)
    names = list(dict.fromkeys(runs["row"]))
    if pairs is None:
        pairs = [(r, o) for r in names for o in REFERENCES if o in names and _before(o, r)]
        pairs += [(r, o) for r, o in BUDGET_STEPS if r in names and o in names]
    q = ((1 - level) / 2, (1 + level) / 2)

    rows = []
    for name in names:
        seeds = boot.seeds(name)
        entry = {"row": name, "seeds": len(seeds), "segments": boot.segments([name], seeds)}
        for m, metric in enumerate(AP_COLUMNS):
            means, _ = boot.means([name], seeds, m)
            entry[metric] = boot.point(name, seeds, m)
            entry[f"{metric}_low"], entry[f"{metric}_high"] = _interval(means, q)
        entry["gap_closed"], entry["gap_closed_low"], entry["gap_closed_high"] = boot.gap_closed(
            name, q
        )
        rows.append(entry)

    comparisons = []
    for name, other in pairs:
        shared = sorted(set(boot.seeds(name)) & set(boot.seeds(other)))
        for m, metric in enumerate(AP_COLUMNS):
            means, segments = boot.means([name, other], shared, m)
            diff = boot.point(name, shared, m) - boot.point(other, shared, m)
            low, high = _interval(means[0] - means[1] if means is not None else None, q)
            comparisons.append(
                {"row": name, "other": other, "metric": metric, "seeds": len(shared),
                 "segments": segments, "diff": diff, "low": low,
                 "high": high, "holds": pd.NA if np.isnan(low) else bool(low > 0),
                 "verdict": _verdict(low, high)}
            )  # fmt: skip
    return ExperimentIntervals(
        rows=pd.DataFrame(rows),
        comparisons=pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS),
        resamples=resamples,
        level=level,
    )


def _before(other: str, row: str) -> bool:
    """Whether ``row`` is compared with ``other``: every row with each reference, a
    reference only with those before it (Random minus Partial, not the reverse too)."""
    return other != row and (
        row not in REFERENCES or REFERENCES.index(other) < REFERENCES.index(row)
    )


def _interval(values: np.ndarray | None, q: tuple[float, float]) -> tuple[float, float]:
    if values is None:
        return np.nan, np.nan
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.nan, np.nan
    low, high = np.quantile(finite, q)
    return float(low), float(high)


def _share(row: ArrayLike, partial: ArrayLike, full: ArrayLike) -> np.ndarray:
    """The share of the gap between ``partial`` and ``full`` that ``row`` closes (NaN
    where the gap is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (np.asarray(row, np.float64) - partial) / (np.asarray(full, np.float64) - partial)
    return np.where(np.isfinite(share), share, np.nan)


def _verdict(low: float, high: float) -> str:
    if np.isnan(low):
        return "not enough runs"
    return "above" if low > 0 else "below" if high < 0 else "not distinguished"


class _Bootstrap:
    """The resampled AP of every run, and seed draws shared by every comparison."""

    def __init__(
        self,
        runs: pd.DataFrame,
        frames: Mapping[tuple[str, int], SegmentResults | None],
        resamples: int,
        seed: int,
    ) -> None:
        self.resamples, self.seed = resamples, seed
        keys = list(zip(runs["row"], runs["seed"].astype(int), strict=True))
        self.values = dict(zip(keys, runs[list(AP_COLUMNS)].to_numpy(np.float64), strict=True))
        have = {k: f for k in keys if (f := frames.get(k)) is not None}
        universe = sorted({s for f in have.values() for s in f.segments.tolist()})
        self.n_segments = len(universe)
        rng = np.random.default_rng([seed, 0])
        n = max(self.n_segments, 1)
        weights = rng.multinomial(self.n_segments, np.full(n, 1 / n), size=resamples)
        self.samples = {
            k: resampled_ap(f.on_segments(universe), weights).T for k, f in have.items()
        }  # (3, B) each
        self._draws: dict[int, np.ndarray] = {}

    def seeds(self, row: str) -> list[int]:
        return sorted(s for r, s in self.values if r == row)

    def segments(self, rows: Sequence[str], seeds: Sequence[int]) -> int:
        """Segments resampled for these runs: 0 unless every one has its results."""
        every = all((r, s) in self.samples for r in rows for s in seeds)
        return self.n_segments if every and seeds else 0

    def draws(self, n: int) -> np.ndarray:
        """``(B, n)`` how many times each of ``n`` seeds is drawn in each resample."""
        if n not in self._draws:
            rng = np.random.default_rng([self.seed, 1, n])
            index = rng.integers(0, n, size=(self.resamples, n))
            self._draws[n] = (index[:, :, None] == np.arange(n)).sum(axis=1)
        return self._draws[n]

    def point(self, row: str, seeds: Sequence[int], m: int) -> float:
        """Mean stored AP ``m`` of ``row`` over ``seeds`` (NaN without seeds)."""
        values = [self.values[row, s][m] for s in seeds]
        return float(np.mean(values)) if values else np.nan

    def means(
        self, rows: Sequence[str], seeds: Sequence[int], m: int
    ) -> tuple[np.ndarray | None, int]:
        """``(len(rows), B)`` resampled mean AP ``m`` of each row over ``seeds`` (drawn
        alike for every row), and the segments resampled; ``None`` when nothing varies
        (fewer than two seeds and two segments)."""
        segments = self.segments(rows, seeds)
        if not seeds or (segments < 2 and len(seeds) < 2):
            return None, segments
        draws, n = self.draws(len(seeds)), len(seeds)
        out = []
        for row in rows:
            if segments:
                ap = np.stack([self.samples[row, s][m] for s in seeds])  # (n, B)
                out.append(np.einsum("bn,nb->b", draws, ap) / n)
            else:
                out.append(draws @ np.array([self.values[row, s][m] for s in seeds]) / n)
        return np.stack(out), segments

    def gap_closed(self, row: str, q: tuple[float, float]) -> tuple[float, float, float]:
        """``(row - partial) / (full - partial)`` in Large AP on the seeds the three share,
        and its interval (NaN without both references)."""
        if not {"partial", "full"} <= self.rows():
            return np.nan, np.nan, np.nan
        names = list(dict.fromkeys([row, "partial", "full"]))
        shared = sorted(set.intersection(*(set(self.seeds(n)) for n in names)))
        large = AP_COLUMNS.index("ap_large")
        points = {n: self.point(n, shared, large) for n in names}
        means, _ = self.means(names, shared, large)
        point = float(_share(points[row], points["partial"], points["full"]))
        if means is None:
            return point, np.nan, np.nan
        by_name = dict(zip(names, means, strict=True))
        share = _share(by_name[row], by_name["partial"], by_name["full"])
        return (point, *_interval(share, q))

    def rows(self) -> set[str]:
        return {r for r, _ in self.values}


def load_segment_results(
    folder: str | Path, runs: pd.DataFrame
) -> dict[tuple[str, int], SegmentResults]:
    """The per-segment results of ``runs`` in ``folder/runs/<row>-seed<k>.npz``; runs
    without a file (cached before they were kept) are left out."""
    out = {}
    for row, seed in zip(runs["row"], runs["seed"].astype(int), strict=True):
        path = Path(folder) / "runs" / f"{row}-seed{seed}.npz"
        if path.is_file():
            out[row, seed] = read_segment_results(path)
    return out


def experiment_intervals(result: ExperimentResult, **options: object) -> ExperimentIntervals:
    """``bootstrap_intervals`` of an experiment's cached runs (``options`` are passed on)."""
    return bootstrap_intervals(
        result.runs, load_segment_results(result.path, result.runs), **options
    )


def with_intervals(table: pd.DataFrame, intervals: ExperimentIntervals) -> pd.DataFrame:
    """``table`` (``results_table``) with the rows' intervals as new last columns:
    ``<metric>_low, <metric>_high`` for ``AP_COLUMNS``, ``gap_closed_low, gap_closed_high``
    and ``interval_segments`` (segments resampled; 0: over seeds only)."""
    extra = intervals.rows.rename(columns={"segments": "interval_segments"})
    new = [c for c in extra.columns if c not in table.columns]
    return table.merge(extra[["row", *new]], on="row", how="left", validate="one_to_one")
