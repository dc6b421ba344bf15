"""A synthetic pool of any size, to try a cluster before real data (and to benchmark it).

Each part is built from ``(seed, part)`` alone, so a worker builds its own part and any
cluster writes the same pool. Segments of ``frames`` frames hold ``tracks`` vehicle tracks
each: 60 lanes (6 columns 40 m apart, 10 rows 5 m apart) that tracks take in turn, each for
an equal stretch of the segment, moving along x at up to 8 m/s, so boxes of a frame never
overlap. A share ``large`` of the tracks are long vehicles (8-14 m). The detections are
ground-truth boxes with noise (a uniform draw of them, each with its track's id, as a
tracker would give) and 5% false positives scattered over the segments' frames (untracked).
Features: a track's point in an 8-dimensional latent space (one of four clusters of
ordinary vehicles, or a cluster of its own for the long ones) mapped to ``features``
dimensions by a fixed random map, with noise per detection: long vehicles are the rare
ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.errors import InputError
from rem_core.pool.folder import PoolPart

__all__ = ["SyntheticPool", "synthetic_part"]

_COLUMNS, _ROWS = 6, 10  # lanes
_LATENT = 8


@dataclass(frozen=True)
class SyntheticPool:
    """The synthetic pool's shape; ``pool(p)`` builds part ``p`` (for ``write_pool``).

    Attributes:
        parts: parts of the pool.
        segments: segments per part.
        tracks: tracks per segment.
        detections: detections per part.
        features: feature dimensions.
        frames: frames per segment.
        large: share of long vehicles among the tracks.
        seed: the pool's seed.
    """

    parts: int = 20
    segments: int = 50
    tracks: int = 500
    detections: int = 500_000
    features: int = 64
    frames: int = 200
    large: float = 0.03
    seed: int = 0

    def __call__(self, p: int) -> PoolPart:
        return synthetic_part(self, p)


@dataclass(frozen=True)
class _Tracks:
    """A part's tracks, segment after segment: where each drives and what it is.

    Attributes:
        seg, k: each track's segment in the part and number in its segment.
        turn: which of its lane's stretches of the segment it takes.
        x0, y0, vx: its start (m) and speed along x (m/s).
        large, length, width: whether it is a long vehicle, and its size (m).
    """

    seg: np.ndarray
    k: np.ndarray
    turn: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    vx: np.ndarray
    large: np.ndarray
    length: np.ndarray
    width: np.ndarray


def synthetic_part(spec: SyntheticPool, p: int) -> PoolPart:
    """Part ``p`` of the pool ``spec``: ``(detections, features, ground truth)``."""
    if not 0 <= p < spec.parts:
        raise InputError(f"part {p}: the pool has parts 0 to {spec.parts - 1}")
    rng = np.random.default_rng([spec.seed, p])
    life = _track_life(spec)
    tracks = _draw_tracks(spec, rng)
    names = np.array([f"seg{p * spec.segments + s:06d}" for s in range(spec.segments)], object)
    gt, t = _ground_truth(spec, tracks, life, names)
    n_fp = spec.detections // 20
    det, seen = _seen_boxes(spec, gt, n_fp, rng)
    fp = _false_positives(spec, names, n_fp, rng)
    features = _features(spec, tracks.large, t[seen], n_fp, rng)

    det = pd.concat([det, fp], ignore_index=True)
    order = np.lexsort((det["frame_index"].to_numpy(), det["segment_id"].to_numpy()))
    det = det.iloc[order].reset_index(drop=True)
    return det, features[order].astype(np.float32), gt


def _track_life(spec: SyntheticPool) -> int:
    """Frames each track lives: an equal stretch of the segment for each turn of a lane."""
    lanes = _COLUMNS * _ROWS
    turns = -(-spec.tracks // lanes)
    life = spec.frames // turns
    if life < 1:
        raise InputError(
            f"{spec.tracks} tracks of a segment in {lanes} lanes need more than "
            f"{spec.frames} frames"
        )
    return life


def _draw_tracks(spec: SyntheticPool, rng: np.random.Generator) -> _Tracks:
    """The part's tracks, taking the lanes in turn, with their starts, speeds and sizes drawn."""
    lanes = _COLUMNS * _ROWS
    n_tracks = spec.segments * spec.tracks
    seg = np.repeat(np.arange(spec.segments), spec.tracks)
    k = np.tile(np.arange(spec.tracks), spec.segments)
    lane, turn = k % lanes, k // lanes
    x0 = (lane % _COLUMNS) * 40.0 - 100 + rng.uniform(-3, 3, n_tracks)
    y0 = (lane // _COLUMNS) * 5.0 - 22.5
    vx = rng.uniform(-8, 8, n_tracks)
    large = rng.random(n_tracks) < spec.large
    length = np.where(large, rng.uniform(8, 14, n_tracks), rng.uniform(3.8, 5.2, n_tracks))
    width = np.where(large, 2.6, rng.uniform(1.7, 2.0, n_tracks))
    return _Tracks(seg, k, turn, x0, y0, vx, large, length, width)


def _ground_truth(
    spec: SyntheticPool, tracks: _Tracks, life: int, names: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """Ground truth: every frame of every track's stretch; with each box's track."""
    n_tracks = len(tracks.seg)
    step = np.tile(np.arange(life), n_tracks)
    t = np.repeat(np.arange(n_tracks), life)
    frame = tracks.turn[t] * life + step
    track_names = np.array([f"t{i:04d}" for i in range(spec.tracks)], object)
    gt = pd.DataFrame(
        {
            "segment_id": names[tracks.seg[t]],
            "frame_index": frame.astype(np.int64),
            "track_id": track_names[tracks.k[t]],
            "center_x": tracks.x0[t] + tracks.vx[t] * step * 0.1,
            "center_y": tracks.y0[t],
            "center_z": 0.9,
            "length": tracks.length[t],
            "width": tracks.width[t],
            "height": np.where(tracks.large[t], 3.2, 1.7),
            "heading": 0.0,
        }
    )
    return gt, t


def _seen_boxes(
    spec: SyntheticPool, gt: pd.DataFrame, n_fp: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """The true detections, noised: a uniform draw of the ground-truth boxes, and their rows."""
    n_seen = spec.detections - n_fp
    if n_seen > len(gt):
        raise InputError(
            f"{spec.detections} detections a part, but its {len(gt)} ground-truth "
            "boxes can be seen at most once each; ask for fewer detections"
        )
    seen = np.sort(rng.choice(len(gt), n_seen, replace=False))
    det = gt.iloc[seen].reset_index(drop=True)  # tracked as the auto-labeller would
    det["center_x"] += rng.normal(0, 0.3, n_seen)
    det["center_y"] += rng.normal(0, 0.2, n_seen)
    det["length"] *= rng.uniform(0.85, 1.1, n_seen)
    det["heading"] = rng.normal(0, 0.05, n_seen)
    det["score"] = rng.uniform(0.3, 1.0, n_seen)
    return det, seen


def _false_positives(
    spec: SyntheticPool, names: np.ndarray, n_fp: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``n_fp`` untracked false positives scattered over the segments' frames."""
    return pd.DataFrame(
        {
            "segment_id": names[rng.integers(0, spec.segments, n_fp)],
            "frame_index": rng.integers(0, spec.frames, n_fp),
            "center_x": rng.uniform(-110, 110, n_fp),
            "center_y": rng.uniform(-25, 25, n_fp),
            "center_z": 0.9,
            "length": rng.uniform(3, 6, n_fp),
            "width": 1.9,
            "height": 1.6,
            "heading": rng.uniform(-np.pi, np.pi, n_fp),
            "score": rng.uniform(0.05, 0.6, n_fp),
            "track_id": np.full(n_fp, None, object),
        }
    )


def _features(
    spec: SyntheticPool,
    large: np.ndarray,
    seen_tracks: np.ndarray,
    n_fp: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Features: the track's latent point (or a false positive's own), mapped and noised."""
    n_tracks, n_seen = len(large), len(seen_tracks)
    mapping = np.random.default_rng([spec.seed, 1 << 30]).normal(size=(_LATENT, spec.features))
    centres = np.random.default_rng([spec.seed, 1 << 31]).normal(0, 3, size=(5, _LATENT))
    cluster = np.where(large, 4, rng.integers(0, 4, n_tracks))
    latent = centres[cluster] + rng.normal(0, 1, (n_tracks, _LATENT))
    seen_latent = latent[seen_tracks] + rng.normal(0, 0.3, (n_seen, _LATENT))
    fp_latent = centres[rng.integers(0, 4, n_fp)] + rng.normal(0, 1.5, (n_fp, _LATENT))
    z = np.concatenate([seen_latent, fp_latent])
    return z @ mapping + rng.normal(0, 0.1, (len(z), spec.features))
