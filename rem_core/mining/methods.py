"""What each selection method ranks the unlabelled pool's detections by (paper Tables 1, 3).

Every method turns the pool into one number per detection, higher meaning "check first";
:func:`rem_core.mining.select_tracks` then runs Algorithm 1 on that order, so all methods meet
the same labeller under the same budget:

==============  =========================================================================
``random``      a uniform draw (seeded)
``predict_size`` the largest dimension of the predicted box, metres
``ensemble``    the ensemble's score variance ``v`` (eq. 9)
``m_rem``       ``h * v``: the variance of easy objects only (eqs. 9-11)
``d_rem``       ``-log p`` of the detection's features (eq. 8)
``md_rem``      ``-log p`` of easy objects; hard ones ranked last
``oracle_hard`` ``1 - IoU x score`` against the best-overlapping ground truth: what the
                model got wrong; detections on no object ranked last
``oracle_size`` the ground-truth size of the best-overlapping box (the > 7 m vehicles
                first); detections on no object ranked last
==============  =========================================================================

With ``rank_by="track"`` (the default, paper section 4.1) a detection ranks by the mean of
its method value over its predicted track (the tracker's ``track_id``; an untracked
detection is a track of its own), so one odd frame does not outrank a consistently rare
track; values of ``-inf`` (MD-REM's hard detections) are left out of the mean, and a track
with none left ranks last. Random and the oracles always rank detection by detection:
Random has no signal to aggregate, and a random order of detections reaches ground-truth
tracks about as often as they occur in the pool, whereas one draw per predicted track would
over-sample the vehicles the tracker breaks into many short tracks (on the demo world, large
ones: 6.8% of mined tracks against 2.9% of the pool).

The oracles read the kept-aside ground truth: upper bounds, not usable methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from rem_core.config import MINING_METHODS, ScoreConfig
from rem_core.errors import InputError
from rem_core.evaluation import match_frames
from rem_core.mining.scores import d_rem, m_rem, md_rem

__all__ = [
    "VARIANCE_METHODS",
    "MiningPool",
    "best_overlap",
    "rank_detections",
    "track_codes",
    "track_mean",
]


#: The methods that read the ensemble's score variance (the others need no ensemble).
VARIANCE_METHODS: tuple[str, ...] = ("ensemble", "m_rem")


@dataclass(frozen=True)
class MiningPool:
    """The unlabelled pool as mining sees it.

    Attributes:
        detections: the main model's detections in the pool (``DETECTIONS`` columns, tracked),
            boxes in the vehicle frame (metres, radians).
        log_prob: ``(N,)`` float64 log-density of each detection's features.
        variance: ``(N,)`` float64 ensemble score variance of each detection (eq. 9).
        gt: the pool's ground-truth vehicle boxes (``BOXES`` columns), kept aside: the
            simulated labeller reads them.
        gt_log_prob: ``(G,)`` float64 log-density of each ground-truth box's features.
        autolabels: the offboard auto-labeller's boxes of the pool (``DETECTIONS`` columns).
    """

    detections: pd.DataFrame
    log_prob: np.ndarray
    variance: np.ndarray
    gt: pd.DataFrame
    gt_log_prob: np.ndarray
    autolabels: pd.DataFrame

    def __post_init__(self) -> None:
        n, g = len(self.detections), len(self.gt)
        for name, values, rows in (
            ("log_prob", self.log_prob, n),
            ("variance", self.variance, n),
            ("gt_log_prob", self.gt_log_prob, g),
        ):
            if len(values) != rows:
                raise InputError(f"mining pool: {name} has {len(values)} values for {rows} rows")

    @property
    def num_tracks(self) -> int:
        """Ground-truth tracks in the pool: what a percentage budget is a share of."""
        return int(self.gt.groupby(["segment_id", "track_id"]).ngroups) if len(self.gt) else 0

    @cached_property
    def overlap(self) -> tuple[np.ndarray, np.ndarray]:
        """Per detection: row of the best-overlapping ground-truth box (-1 if none) and its
        BEV IoU (0 if none); computed once."""
        return best_overlap(self.detections, self.gt)


def best_overlap(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``: the row of ``b`` in the same segment and frame with the highest
    BEV IoU (ties: the first), and that IoU; ``rem_core.evaluation.matching``'s ``"best"`` rule.

    Returns:
        ``(N,)`` int64 row positions in ``b`` (-1 where nothing overlaps) and ``(N,)`` float64
        IoU (0 there).
    """
    found = match_frames(a, b, "best")
    return found.match, found.iou


def track_codes(detections: pd.DataFrame) -> np.ndarray:
    """``(N,)`` int64 code per predicted track; each untracked detection gets its own."""
    if not len(detections):
        return np.zeros(0, np.int64)
    tracked = detections["track_id"].notna().to_numpy()
    codes = np.empty(len(detections), np.int64)
    keys = pd.MultiIndex.from_frame(detections.loc[tracked, ["segment_id", "track_id"]])
    codes[tracked], uniques = pd.factorize(keys)
    codes[~tracked] = len(uniques) + np.arange(np.count_nonzero(~tracked))
    return codes


def track_mean(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each value replaced by the mean of the finite values sharing its code (``-inf`` when
    there are none): the per-track aggregation of paper section 4.1.

    Args:
        values: ``(N,)`` float values, finite or ``-inf``.
        codes: ``(N,)`` non-negative int track code of each value.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n = int(codes.max()) + 1 if len(codes) else 0
    total = np.bincount(codes[finite], weights=values[finite], minlength=n)
    count = np.bincount(codes[finite], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
    return mean[codes]


def rank_detections(
    pool: MiningPool,
    method: str,
    *,
    score: ScoreConfig | None = None,
    rank_by: str = "track",
    seed: int = 0,
) -> np.ndarray:
    """The value ``method`` ranks each detection of ``pool`` by, higher first.

    Args:
        pool: the unlabelled pool.
        method: one of ``MINING_METHODS``.
        score: the hard-example filter of ``m_rem`` and ``md_rem`` (defaults: more than 200
            points, closer than 50 m).
        rank_by: ``"track"``: the mean over the detection's predicted track (see the module
            docstring); ``"detection"``: its own value.
        seed: seed of ``random``.

    Returns:
        ``(N,)`` float64, finite or ``-inf`` (ranked last).
    """
    if rank_by not in ("track", "detection"):
        raise InputError(f"rank_by: must be 'track' or 'detection', got {rank_by!r}")
    if method not in MINING_METHODS:
        raise InputError(f"method: unknown {method!r}; choose one of {', '.join(MINING_METHODS)}")
    values = _detection_values(pool, method, score or ScoreConfig(), seed)
    if rank_by == "detection" or method == "random" or method.startswith("oracle_"):
        return values
    return track_mean(values, track_codes(pool.detections))


def _detection_values(pool: MiningPool, method: str, score: ScoreConfig, seed: int) -> np.ndarray:
    det = pool.detections
    n = len(det)
    points = det["num_points"].to_numpy() if n else np.zeros(0)
    distance = det["distance"].to_numpy() if n else np.zeros(0)
    if method == "random":
        return np.random.default_rng(seed).random(n)
    if method == "predict_size":
        return det[["length", "width", "height"]].to_numpy(np.float64).max(axis=1, initial=0)
    if method == "ensemble":
        return _finite_variance(pool.variance)
    if method == "m_rem":
        return m_rem(_finite_variance(pool.variance), points, distance, score)
    if method == "d_rem":
        return d_rem(pool.log_prob)
    if method == "md_rem":
        return md_rem(pool.log_prob, points, distance, score)
    if method in ("oracle_hard", "oracle_size"):
        row, iou = pool.overlap
        hit = row >= 0
        out = np.full(n, -np.inf)
        if method == "oracle_hard":
            out[hit] = 1.0 - iou[hit] * det["score"].to_numpy(np.float64)[hit]
        else:
            dims = pool.gt[["length", "width", "height"]].to_numpy(np.float64)
            out[hit] = dims[row[hit]].max(axis=1)
        return out
    raise InputError(f"method: unknown {method!r}; choose one of {', '.join(MINING_METHODS)}")


def _finite_variance(variance: np.ndarray) -> np.ndarray:
    v = np.asarray(variance, dtype=np.float64)
    if np.isnan(v).any():
        raise InputError(
            f"variance: {int(np.isnan(v).sum())} detections have no ensemble scores "
            "(the ensemble runs on the unlabelled pool only)"
        )
    return v
