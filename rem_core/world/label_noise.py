"""Label errors as human labellers make them, drawn on a share of a frame's vehicle boxes."""

from __future__ import annotations

import numpy as np

from rem_core.geometry import wrap_angle

__all__ = [
    "NOISE_KINDS",
]

#: Kinds of label error and their shares among the erroneous boxes. ``partial`` and
#: ``wrong_size`` change the box's size; the others keep a plausible size: a box ``shifted``
#: off its vehicle, a heading off by 90 degrees, one box ``merged`` over two parked cars
#: (the second car then has no box in that frame).
NOISE_KINDS: dict[str, float] = {
    "partial": 0.2,
    "wrong_size": 0.2,
    "shifted": 0.2,
    "heading_90": 0.2,
    "merged": 0.2,
}


def _merge_partner(boxes: np.ndarray, i: int, candidates: np.ndarray) -> int:
    """The parked vehicle in line with box ``i`` whose end is nearest to it, or -1."""
    if len(candidates) == 0:
        return -1
    heading = boxes[i, 6]
    axis = np.array([np.cos(heading), np.sin(heading)])
    rel = boxes[candidates, :2] - boxes[i, :2]
    along = rel @ axis
    lateral = rel @ np.array([-axis[1], axis[0]])
    turn = np.abs(wrap_angle(2 * (boxes[candidates, 6] - heading))) / 2  # either direction
    gap = np.abs(along) - (boxes[i, 3] + boxes[candidates, 3]) / 2
    ok = (np.abs(lateral) < 0.8) & (turn < 0.15) & (gap > -0.3) & (gap < 2.5)
    if not ok.any():
        return -1
    return int(candidates[ok][np.argmin(gap[ok])])


def _noisy_labels(
    boxes: np.ndarray,
    is_vehicle: np.ndarray,
    parked: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Realistic label errors on a share of the vehicle boxes of one frame (in place).

    Args:
        boxes: ``(N, 7)`` label boxes of one frame, changed in place.
        is_vehicle: ``(N,)`` bool.
        parked: ``(N,)`` bool, vehicles standing still (a ``merged`` box covers two of them).
        fraction: share of vehicle boxes with an error.
        rng: the labeller's randomness.

    Returns:
        ``(kind, keep)``: ``(N,)`` object array of the error kind (``""`` or a key of
        ``NOISE_KINDS``) and ``(N,)`` bool, false for a box swallowed by a merged one.
    """
    kind = np.full(len(boxes), "", dtype=object)
    keep = np.ones(len(boxes), dtype=bool)
    hit = is_vehicle & (rng.random(len(boxes)) < fraction)
    names = list(NOISE_KINDS)
    shares = np.array(list(NOISE_KINDS.values()))
    for i in np.flatnonzero(hit):
        if not keep[i]:
            continue
        cx, cy, cz, length, width, height, heading = boxes[i]
        choice = str(rng.choice(names, p=shares / shares.sum()))
        if choice == "merged":
            free = np.flatnonzero(parked & keep & (kind == "") & ~hit)
            j = _merge_partner(boxes, i, free[free != i]) if parked[i] else -1
            if j < 0:
                choice = "shifted"  # no second car in line: the box slips off instead
            else:
                axis = np.array([np.cos(heading), np.sin(heading)])
                along = float((boxes[j, :2] - boxes[i, :2]) @ axis)
                lo = min(-length / 2, along - boxes[j, 3] / 2)
                hi = max(length / 2, along + boxes[j, 3] / 2)
                boxes[i, :2] += (lo + hi) / 2 * axis
                boxes[i, 3] = hi - lo
                boxes[i, 4] = max(width, boxes[j, 4])
                boxes[i, 5] = max(height, boxes[j, 5])
                boxes[i, 2] = max(cz + height / 2, boxes[j, 2] + boxes[j, 5] / 2) - boxes[i, 5] / 2
                keep[j] = False
        if choice == "partial":
            part = rng.uniform(0.4, 0.7) * length
            shift = (length - part) / 2 * rng.choice([-1.0, 1.0])
            boxes[i, 0] += shift * np.cos(heading)
            boxes[i, 1] += shift * np.sin(heading)
            boxes[i, 3] = part
        elif choice == "wrong_size":
            scale = rng.choice([rng.uniform(0.65, 0.85), rng.uniform(1.15, 1.4)], size=3)
            same = rng.random(3) < 0.4
            same[rng.integers(3)] = False  # at least one dimension is wrong
            scale[same] = 1.0
            boxes[i, 3:6] *= scale
            boxes[i, 2] = cz - height / 2 + boxes[i, 5] / 2  # still on what it stands on
        elif choice == "shifted":
            if rng.random() < 0.5:  # along the vehicle, half its length or more
                offset = (
                    rng.uniform(0.45, 0.8) * length * np.array([np.cos(heading), np.sin(heading)])
                )
            else:  # sideways, most of its width
                offset = (
                    rng.uniform(0.6, 1.0) * width * np.array([-np.sin(heading), np.cos(heading)])
                )
            boxes[i, :2] += offset * rng.choice([-1.0, 1.0])
        elif choice == "heading_90":
            boxes[i, 6] = heading + np.pi / 2 * rng.choice([-1.0, 1.0])
        kind[i] = choice
    return kind, keep
