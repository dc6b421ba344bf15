"""A stand-in detector: noisy single-frame detections made from ground-truth boxes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rem_core.config import is_number as _is_number
from rem_core.errors import InputError
from rem_core.geometry import wrap_angle
from rem_core.schema import BOX_COLUMNS, DETECTIONS, conform

__all__ = [
    "simulate_detections",
]

log = logging.getLogger(__name__)


def _check_ranges(settings: list[tuple[str, float, float]]) -> None:
    """Raise ``ValueError`` for the first ``(name, value, hi)`` whose value is not in
    ``[0, hi]``."""
    for name, value, hi in settings:
        if not (_is_number(value) and 0 <= value <= hi):
            raise InputError(f"{name}: must be in [0, {hi}], got {value}")


def _true_detections(
    boxes: pd.DataFrame,
    rng: np.random.Generator,
    center_noise_m: float,
    size_noise: float,
    heading_noise_rad: float,
    flip_probability: float,
    miss_probability: float,
) -> pd.DataFrame:
    """The detected boxes, noisy and scored (see ``simulate_detections``); not yet ordered,
    headings not yet wrapped."""
    gt = boxes[rng.random(len(boxes)) >= miss_probability].reset_index(drop=True)
    n = len(gt)
    pts = gt["num_points"].to_numpy(np.float64)
    sparse = np.exp(-pts / 50)
    b = gt[BOX_COLUMNS].to_numpy(np.float64).copy()
    b[:, :2] += rng.normal(0, 1, (n, 2)) * (center_noise_m * (0.75 + 0.5 * sparse))[:, None]
    b[:, 2] += rng.normal(0, 0.1, n)
    b[:, 3:6] *= np.exp(rng.normal(-0.1 * sparse[:, None], size_noise, (n, 3)))
    b[:, 6] += rng.normal(0, heading_noise_rad, n) + np.pi * (rng.random(n) < flip_probability)
    logit = 1.5 * (np.log10(pts + 1) - 1) + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "segment_id": gt["segment_id"].to_numpy(),
            "frame_index": gt["frame_index"].to_numpy(),
            "class": gt["class"].to_numpy(),
            **{c: b[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": 1 / (1 + np.exp(-logit)),
            "num_points": gt["num_points"].to_numpy(),
        }
    )


def _false_positives(
    boxes: pd.DataFrame, rng: np.random.Generator, per_frame: float
) -> pd.DataFrame:
    """``Poisson(per_frame)`` false positives in each frame of ``boxes``: copies of random
    boxes placed 5-60 m away at random, low scores, few points."""
    frames = boxes[["segment_id", "frame_index"]].drop_duplicates().reset_index(drop=True)
    n_fp = rng.poisson(per_frame, len(frames)) if len(boxes) else np.zeros(0, int)
    src = boxes.iloc[rng.integers(0, max(len(boxes), 1), n_fp.sum())]
    fb = src[BOX_COLUMNS].to_numpy(np.float64).copy()
    r, a = rng.uniform(5, 60, len(fb)), rng.uniform(-np.pi, np.pi, len(fb))
    fb[:, 0], fb[:, 1], fb[:, 6] = r * np.cos(a), r * np.sin(a), rng.uniform(-np.pi, np.pi, len(fb))
    return pd.DataFrame(
        {
            "segment_id": np.repeat(frames["segment_id"].to_numpy(), n_fp),
            "frame_index": np.repeat(frames["frame_index"].to_numpy(), n_fp),
            "class": src["class"].to_numpy(),
            **{c: fb[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "score": 0.4 * rng.beta(1, 3, len(fb)),
            "num_points": rng.integers(1, 6, len(fb)),
        }
    )


def _detection_table(
    true: pd.DataFrame, fake: pd.DataFrame, segment_ids: pd.Series
) -> pd.DataFrame:
    """True and false detections in one ``DETECTIONS`` table, ordered by segment (as in
    ``segment_ids``) and frame, headings wrapped, ``detection_id`` 0, 1, ..."""
    out = pd.concat([true, fake], ignore_index=True)
    segment_order = {s: i for i, s in enumerate(pd.unique(segment_ids))}
    out = out.iloc[
        np.lexsort((out["frame_index"].to_numpy(), out["segment_id"].map(segment_order)))
    ].reset_index(drop=True)
    out["heading"] = wrap_angle(out["heading"].to_numpy())
    out["detection_id"] = np.arange(len(out), dtype=np.int64)
    out["distance"] = np.hypot(out["center_x"], out["center_y"])
    out["track_id"] = None
    return conform(out, DETECTIONS, "simulated detections")


def simulate_detections(
    boxes: pd.DataFrame,
    *,
    seed: int = 0,
    center_noise_m: float = 0.4,
    size_noise: float = 0.15,
    heading_noise_rad: float = 0.1,
    flip_probability: float = 0.05,
    miss_probability: float = 0.15,
    false_positives_per_frame: float = 2.0,
) -> pd.DataFrame:
    """Noisy single-frame detections made from ground-truth boxes: a stand-in detector.

    Each box is missed with ``miss_probability``; the others get BEV centre noise of
    standard deviation ``center_noise_m * (0.75 + 0.5 * exp(-num_points / 50))`` (sparse
    objects are located worse), 0.1 m vertical noise, log-normal size noise of standard
    deviation ``size_noise`` that shrinks sparse objects (median scale
    ``exp(-0.1 * exp(-num_points / 50))``, as partial views do), heading noise, and a
    heading flipped by pi with ``flip_probability``. Scores grow with the points on the
    object: ``sigmoid(1.5 * (log10(num_points + 1) - 1) + N(0, 0.5))``. Each frame that has
    a box also gets ``Poisson(false_positives_per_frame)`` false positives: copies of random
    boxes of the table placed 5-60 m away at random, scoring ``0.4 * Beta(1, 3)``.

    Args:
        boxes: ground truth in the ``BOXES`` schema (vehicle frame).
        seed: seed of the generator.
        center_noise_m: BEV centre noise scale, metres.
        size_noise: standard deviation of the log size scale.
        heading_noise_rad: standard deviation of the heading noise, radians.
        flip_probability: chance that a heading is off by pi.
        miss_probability: chance that a box is not detected.
        false_positives_per_frame: mean false positives per frame.

    Returns:
        A table in the ``DETECTIONS`` schema (``track_id`` null), ordered by segment and
        frame, ``detection_id`` 0, 1, ...
    """
    _check_ranges(
        [
            ("center_noise_m", center_noise_m, 10.0),
            ("size_noise", size_noise, 2.0),
            ("heading_noise_rad", heading_noise_rad, np.pi),
            ("flip_probability", flip_probability, 1.0),
            ("miss_probability", miss_probability, 1.0),
            ("false_positives_per_frame", false_positives_per_frame, 1000.0),
        ]
    )
    rng = np.random.default_rng(seed)
    true = _true_detections(
        boxes,
        rng,
        center_noise_m,
        size_noise,
        heading_noise_rad,
        flip_probability,
        miss_probability,
    )
    fake = _false_positives(boxes, rng, false_positives_per_frame)
    return _detection_table(true, fake, boxes["segment_id"])
