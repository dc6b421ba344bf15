"""Per-segment results of an experiment run: what a segment bootstrap needs to recompute AP.

A run of the active-learning experiment (``rem_core.experiment.runs``) evaluates one retrained
detector on the validation split (``rem_core.evaluation.evaluate_detections``: 3D IoU 0.5,
LEVEL_1). Its AP of a subset is ``precision_recall(scores, tp, n_gt)`` of that subset's
predictions, so keeping, for every evaluated prediction, its segment, score, true-positive
flag and subsets, and the number of ground-truth boxes of every segment and subset, is
enough to recompute the AP exactly, and to recompute it on validation sets drawn again from
the same segments (``resampled_ap``). They are stored beside the run's JSON as
``<row>-seed<k>.npz`` (``write_segment_results``, atomically; read without unpickling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.evaluation import REPORTED_SUBSETS, DetectionEval, precision_recall
from rem_core.files import publish_file

__all__ = [
    "SegmentResults",
    "segment_results",
    "read_segment_results",
    "resampled_ap",
    "write_segment_results",
]

#: Written into every file; bumped when its layout changes.
SEGMENT_RESULTS_FORMAT = 1

_ARRAYS = ("segments", "subsets", "pred_segment", "pred_score", "pred_tp", "pred_in", "gt_count")


@dataclass(frozen=True, eq=False)
class SegmentResults:
    """The evaluated predictions and ground-truth counts of one run, by validation segment.

    Predictions are in the order ``evaluate_detections`` ranks them in (the detections'
    row order); those it ignores (unmatched on a box too sparse to evaluate) are left out,
    as they are of every AP.

    Attributes:
        segments: ``(S,)`` str, the validation segment ids.
        subsets: the ``K`` subset names (``REPORTED_SUBSETS``).
        pred_segment: ``(P,)`` int64, each prediction's index into ``segments``.
        pred_score: ``(P,)`` float64 confidences.
        pred_tp: ``(P,)`` bool, whether it matched a ground-truth box.
        pred_in: ``(P, K)`` bool, whether it enters subset ``k``'s precision-recall curve.
        gt_count: ``(S, K)`` int64 evaluated ground-truth boxes of segment ``s`` in subset
            ``k``.
    """

    segments: np.ndarray
    subsets: tuple[str, ...]
    pred_segment: np.ndarray
    pred_score: np.ndarray
    pred_tp: np.ndarray
    pred_in: np.ndarray
    gt_count: np.ndarray

    def __post_init__(self) -> None:
        n_seg, n_sub, n_pred = len(self.segments), len(self.subsets), len(self.pred_score)
        shapes = {
            "pred_segment": (self.pred_segment.shape, (n_pred,)),
            "pred_tp": (self.pred_tp.shape, (n_pred,)),
            "pred_in": (self.pred_in.shape, (n_pred, n_sub)),
            "gt_count": (self.gt_count.shape, (n_seg, n_sub)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise InputError(f"SegmentResults.{name}: shape {got}, expected {want}")
        if n_pred and not (0 <= self.pred_segment.min() and self.pred_segment.max() < n_seg):
            raise InputError(f"SegmentResults.pred_segment: an index outside [0, {n_seg})")

    def ap(self) -> dict[str, float]:
        """AP of every subset, as ``evaluate_detections`` computes it (bit for bit)."""
        return {
            name: precision_recall(
                self.pred_score[self.pred_in[:, k]],
                self.pred_tp[self.pred_in[:, k]],
                int(self.gt_count[:, k].sum()),
            ).ap
            for k, name in enumerate(self.subsets)
        }

    def on_segments(self, segments: Sequence[str]) -> SegmentResults:
        """The same results indexed by ``segments`` (a superset of ``self.segments``);
        segments this run never saw count no boxes."""
        segments = np.asarray(segments, dtype=str)
        where = pd.Index(segments).get_indexer(self.segments)
        if (where < 0).any():
            missing = self.segments[where < 0][0]
            raise InputError(f"segments: {missing!r} of the run is not among them")
        counts = np.zeros((len(segments), len(self.subsets)), np.int64)
        counts[where] = self.gt_count
        return SegmentResults(
            segments=segments,
            subsets=self.subsets,
            pred_segment=where[self.pred_segment].astype(np.int64),
            pred_score=self.pred_score,
            pred_tp=self.pred_tp,
            pred_in=self.pred_in,
            gt_count=counts,
        )


def segment_results(
    result: DetectionEval, segments: Sequence[str], class_name: str = "vehicle"
) -> SegmentResults:
    """What ``resampled_ap`` needs from one evaluation, for ``class_name`` and
    ``REPORTED_SUBSETS``.

    Args:
        result: ``evaluate_detections`` output.
        segments: every segment evaluated (those without a box or a prediction too: a
            resample draws them alike).

    Raises:
        ValueError: a prediction or box lies in a segment not in ``segments``.
    """
    segments = np.asarray(list(segments), dtype=str)
    index = pd.Index(segments)
    preds = result.predictions
    preds = preds[(preds["class"] == class_name).to_numpy() & ~preds["ignored"].to_numpy(bool)]
    gt = result.gt[(result.gt["class"] == class_name).to_numpy()]
    pred_seg = _segment_index(index, preds["segment_id"], "predictions")
    gt_seg = _segment_index(index, gt["segment_id"], "ground truth")
    pred_subset = preds["subset"].to_numpy(str)
    gt_subset = gt["subset"].to_numpy(str)
    pred_in = np.stack([(s == "all") | (pred_subset == s) for s in REPORTED_SUBSETS], axis=1)
    gt_count = np.stack(
        [
            np.bincount(gt_seg[(s == "all") | (gt_subset == s)], minlength=len(segments))
            for s in REPORTED_SUBSETS
        ],
        axis=1,
    ).astype(np.int64)
    return SegmentResults(
        segments=segments,
        subsets=REPORTED_SUBSETS,
        pred_segment=pred_seg,
        pred_score=preds["score"].to_numpy(np.float64),
        pred_tp=preds["tp"].to_numpy(bool),
        pred_in=pred_in.reshape(len(preds), len(REPORTED_SUBSETS)),
        gt_count=gt_count.reshape(len(segments), len(REPORTED_SUBSETS)),
    )


def _segment_index(index: pd.Index, ids: pd.Series, what: str) -> np.ndarray:
    where = index.get_indexer(ids.astype(str))
    if (where < 0).any():
        raise InputError(f"{what}: segment {ids.iloc[np.flatnonzero(where < 0)[0]]!r} is not "
                         "among the evaluated segments")  # fmt: skip
    return where.astype(np.int64)


def write_segment_results(path: str | Path, frames: SegmentResults) -> Path:
    """Write ``frames`` to ``path`` (an ``.npz``), atomically, replacing it."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(
                f,
                format=np.int64(SEGMENT_RESULTS_FORMAT),
                segments=frames.segments.astype(str),
                subsets=np.asarray(frames.subsets, dtype=str),
                pred_segment=frames.pred_segment.astype(np.int32),
                pred_score=frames.pred_score.astype(np.float64),
                pred_tp=frames.pred_tp.astype(bool),
                pred_in=frames.pred_in.astype(bool),
                gt_count=frames.gt_count.astype(np.int32),
            )

    return publish_file(path, write, force=True)


def read_segment_results(path: str | Path) -> SegmentResults:
    """Read a file ``write_segment_results`` wrote (never unpickling anything).

    Raises:
        ValueError: the file lacks an array or has another format.
    """
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("format", *_ARRAYS) if k not in data.files]
        if missing:
            raise InputError(f"{path}: not a run's segment results (no array {missing[0]!r})")
        if int(data["format"]) != SEGMENT_RESULTS_FORMAT:
            raise InputError(
                f"{path}: format {int(data['format'])}, expected {SEGMENT_RESULTS_FORMAT}"
            )
        return SegmentResults(
            segments=data["segments"].astype(str),
            subsets=tuple(str(s) for s in data["subsets"]),
            pred_segment=data["pred_segment"].astype(np.int64),
            pred_score=data["pred_score"],
            pred_tp=data["pred_tp"],
            pred_in=data["pred_in"],
            gt_count=data["gt_count"].astype(np.int64),
        )


def resampled_ap(
    frames: SegmentResults, weights: np.ndarray, *, chunk_elements: int = 1 << 21
) -> np.ndarray:
    """AP of every subset on validation sets redrawn by segment.

    Resample ``b`` takes segment ``s`` ``weights[b, s]`` times. Taking a segment twice
    doubles its predictions (tied scores enter a curve together) and its boxes, so the AP
    is ``precision_recall``'s on weighted counts: with ``c_k`` the weighted true positives
    and ``n_k`` the weighted predictions scoring at least the ``k``-th distinct score,
    ``AP = sum_k (c_k - c_{k-1}) / n_gt * max_{j >= k} c_j / n_j``. Two kinds of scores
    drop out of the sum exactly, in every resample: those without a true positive (they
    add no recall and never raise the envelope), and a score followed by one with only
    true positives (precision cannot fall to the next, so both share one envelope value).
    What is left is ``(L, S) @ (S, B)`` products and a running maximum over ``L``, in
    float32 (counts are exact; AP agrees with float64 to about 1e-6).

    Args:
        frames: one run's results.
        weights: ``(B, S)`` non-negative counts (or weights) of each segment.
        chunk_elements: resamples are processed in chunks of about this many ``L x B``
            elements, bounding memory.

    Returns:
        ``(B, K)`` float64 AP (NaN where a resample holds no box of the subset). With
        every weight 1 it equals ``frames.ap()`` up to float32 rounding.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(frames.segments):
        raise InputError(
            f"weights: shape {weights.shape}, expected (B, {len(frames.segments)}) segments"
        )
    if (weights < 0).any():
        raise InputError("weights: a negative segment weight")
    n_res = len(weights)
    out = np.empty((n_res, len(frames.subsets)))
    for k in range(len(frames.subsets)):
        m = frames.pred_in[:, k]
        tp_cum, n_cum = _cumulative_counts(
            frames.pred_segment[m], frames.pred_score[m], frames.pred_tp[m], len(frames.segments)
        )
        n_gt = weights @ frames.gt_count[:, k].astype(np.float64)
        step = max(1, chunk_elements // max(len(tp_cum), 1))
        for lo in range(0, n_res, step):
            w = np.ascontiguousarray(weights[lo : lo + step].T, dtype=np.float32)
            out[lo : lo + step, k] = _weighted_ap(tp_cum @ w, n_cum @ w, n_gt[lo : lo + step])
    return out


def _cumulative_counts(
    segment: np.ndarray, score: np.ndarray, tp: np.ndarray, n_segments: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(L, S)`` float32 true positives and predictions of each segment scoring at least
    each of the ``L`` distinct scores kept (descending; see ``resampled_ap``)."""
    order = np.argsort(-score, kind="stable")
    s, t, g = score[order], tp[order], segment[order]
    block = np.cumsum(np.r_[0, s[1:] != s[:-1]]) if len(s) else np.empty(0, np.int64)
    n_blocks = int(block[-1]) + 1 if len(s) else 0
    n_tp = np.bincount(block, weights=t, minlength=n_blocks)
    n_fp = np.bincount(block, weights=~t, minlength=n_blocks)
    # Keep a score with a true positive unless the next one has only true positives.
    kept = np.flatnonzero((n_tp > 0) & (np.r_[n_fp[1:], 1.0] > 0))
    # A prediction counts from the first kept score at or below its own onwards.
    row = np.searchsorted(kept, block)
    ok = row < len(kept)
    flat = row[ok] * n_segments + g[ok]
    size, shape = n_segments * len(kept), (len(kept), n_segments)
    tp_counts = np.bincount(flat, weights=t[ok], minlength=size).reshape(shape)
    n_counts = np.bincount(flat, minlength=size).reshape(shape)
    return (
        np.cumsum(tp_counts, axis=0).astype(np.float32),
        np.cumsum(n_counts, axis=0).astype(np.float32),
    )


def _weighted_ap(ctp: np.ndarray, cn: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """``(B,)`` AP from ``(L, B)`` cumulative weighted true positives and predictions
    (``cn`` is overwritten)."""
    # Where no prediction counts yet, no true positive does either: 0 / tiny = 0.
    np.maximum(cn, np.finfo(cn.dtype).tiny, out=cn)
    precision = np.divide(ctp, cn, out=cn)
    backwards = precision[::-1]
    np.maximum.accumulate(backwards, axis=0, out=backwards)  # the envelope, in place
    gain = np.diff(ctp, axis=0, prepend=np.zeros((1, ctp.shape[1]), ctp.dtype))
    total = np.einsum("lb,lb->b", gain, precision, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_gt > 0, total / n_gt, np.nan)
