"""Training-data augmentation: ground-truth pasting, length stretch, global moves, crops.

A source pool holds few long vehicles, seen from few places: the detector learns those
few views by heart and boxes every other long vehicle as a car. Pasting (SECOND's
ground-truth sampling, as OpenPCDet's ``gt_sampling`` and CenterPoint's ``db_sampler`` do
it) rebalances the classes at the object level: labelled objects, with the points inside
their boxes, are copied into other training frames, wherever their footprint finds free
ground. Stretching a pasted object along its length makes lengths the pool never had.

Frame convention: points and boxes in the vehicle frame (``rem_core.geometry.boxes``); the sensor
spins about the vertical axis through the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core.geometry import bev_overlap, inside_pairs, wrap_angle

__all__ = [
    "ObjectDatabase",
    "build_object_database",
    "crop_window",
    "move_frame",
    "paste_objects",
]

# A pasted object's footprint may hold at most this many scene points above the ground:
# more means a wall, a pole or another road user stands there.
_MAX_CLUTTER_POINTS = 8
_GROUND_Z = 0.3  # metres: points below are ground
_FOOTPRINT_MARGIN = 0.25  # metres around a pasted footprint: scene points there are removed
_COLLISION_MARGIN = 0.5  # metres kept free between a pasted box and any other box
_TRIES = 6  # placements tried per object


@dataclass(frozen=True)
class ObjectDatabase:
    """Labelled objects with the points inside their boxes, ready to paste.

    Attributes:
        boxes: ``(K, 7)`` float64 boxes, vehicle frame of the frame they came from.
        points: ``(P, C)`` float32 points of all objects (``x, y, z, intensity`` first), in
            the same frame, object by object.
        offsets: ``(K + 1,)`` int64: object ``k`` owns ``points[offsets[k]:offsets[k + 1]]``.
    """

    boxes: np.ndarray
    points: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    def object_points(self, k: int) -> np.ndarray:
        """``(n_k, C)`` points of object ``k``."""
        return self.points[self.offsets[k] : self.offsets[k + 1]]


def build_object_database(
    frames: list[tuple[np.ndarray, np.ndarray]], min_length: float, min_points: int
) -> ObjectDatabase:
    """Collect the objects of some frames that are at least ``min_length`` long.

    Args:
        frames: ``(points, boxes)`` per frame: ``(N, C)`` points and ``(M, 7)`` labelled
            boxes to learn (label noise and boxes too sparse to learn from left out).
        min_length: metres; shorter boxes are not collected.
        min_points: objects with fewer points inside their box are not collected.

    Returns:
        The database; empty (``len == 0``) when no box qualifies.
    """
    boxes, chunks = [], []
    for points, frame_boxes in frames:
        frame_boxes = np.asarray(frame_boxes, np.float64).reshape(-1, 7)
        for box in frame_boxes[frame_boxes[:, 3] >= min_length]:
            near = np.abs(points[:, 0] - box[0]) <= box[3]
            near &= np.abs(points[:, 1] - box[1]) <= box[3]
            candidates = points[near]
            inside = inside_pairs(candidates, np.broadcast_to(box, (len(candidates), 7)))
            if inside.sum() >= max(min_points, 1):
                boxes.append(box)
                chunks.append(candidates[inside])
    width = frames[0][0].shape[1] if frames else 4
    if not boxes:
        return ObjectDatabase(np.zeros((0, 7)), np.zeros((0, width), np.float32), np.zeros(1, int))
    offsets = np.r_[0, np.cumsum([len(c) for c in chunks])].astype(np.int64)
    return ObjectDatabase(
        np.stack(boxes), np.concatenate(chunks).astype(np.float32, copy=False), offsets
    )


def _placed_boxes(box: np.ndarray, turns: np.ndarray, stretch: float) -> np.ndarray:
    """``(T, 7)``: ``box`` stretched along its length, then turned about the sensor's
    vertical axis by each of ``turns`` (radians)."""
    c, s = np.cos(turns), np.sin(turns)
    out = np.tile(box, (len(turns), 1))
    out[:, 0], out[:, 1] = c * box[0] - s * box[1], s * box[0] + c * box[1]
    out[:, 3] = box[3] * stretch
    out[:, 6] = wrap_angle(box[6] + turns)
    return out


def _placed_points(box: np.ndarray, points: np.ndarray, turn: float, stretch: float) -> np.ndarray:
    """The object's points moved as ``_placed_boxes`` moves its box.

    Turning about the sensor keeps the object's range, its height above the ground and the
    side it shows the sensor, so its points keep the scan pattern of its new place: a
    spinning LiDAR sees the same at every azimuth.
    """
    cos, sin = np.cos(box[6]), np.sin(box[6])
    dx, dy = points[:, 0] - box[0], points[:, 1] - box[1]
    along = (cos * dx + sin * dy) * stretch
    across = -sin * dx + cos * dy
    x = box[0] + cos * along - sin * across
    y = box[1] + sin * along + cos * across
    c, s = np.cos(turn), np.sin(turn)
    moved = points.copy()
    moved[:, 0], moved[:, 1] = c * x - s * y, s * x + c * y
    return moved


_RECT = [0, 1, 3, 4, 6]  # the BEV rectangle of a box: centre x, y, length, width, heading


class _CoarseGrid:
    """The frame's points bucketed into 0.5 m cells: which cell each point falls in, and how
    many points above the ground each cell holds. It tests a footprint for free ground, and
    finds the points under it, without a pass over all the frame's points per footprint."""

    cell = 0.5

    def __init__(self, points: np.ndarray, reach: float) -> None:
        self.reach = reach
        self.n = int(np.ceil(2 * reach / self.cell))
        i = np.floor((points[:, 0] + np.float32(reach)) / np.float32(self.cell)).astype(np.int64)
        j = np.floor((points[:, 1] + np.float32(reach)) / np.float32(self.cell)).astype(np.int64)
        outside = (i.astype(np.uint64) >= self.n) | (j.astype(np.uint64) >= self.n)
        self.point_cell = np.where(outside, self.n * self.n, i * self.n + j)  # spare cell
        above = (points[:, 2] > _GROUND_Z).astype(np.float64)
        counts = np.bincount(self.point_cell, weights=above, minlength=self.n * self.n + 1)
        self.clutter = counts[:-1].reshape(self.n, self.n)

    def _cells(self, box: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """``(i, j)`` of the cells within the footprint's bounding square (plus one cell)."""
        radius = np.hypot(box[3], box[4]) / 2 + margin + self.cell
        lo = np.clip(np.floor((box[:2] - radius + self.reach) / self.cell), 0, self.n - 1)
        hi = np.clip(np.ceil((box[:2] + radius + self.reach) / self.cell), 0, self.n - 1)
        i, j = np.meshgrid(
            np.arange(int(lo[0]), int(hi[0]) + 1),
            np.arange(int(lo[1]), int(hi[1]) + 1),
            indexing="ij",
        )
        return i.reshape(-1), j.reshape(-1)

    def clutter_under(self, box: np.ndarray, margin: float) -> int:
        """Above-ground points in the cells whose centres lie in the grown footprint."""
        i, j = self._cells(box, margin)
        centres = (np.column_stack([i, j]) + 0.5) * self.cell - self.reach
        inside = _footprint_mask(centres, box, margin)
        return int(self.clutter[i[inside], j[inside]].sum())

    def points_under(
        self, points: np.ndarray, boxes: list[np.ndarray], margin: float
    ) -> np.ndarray:
        """Indices of the points in any of the footprints grown by ``margin``."""
        touched = np.zeros(self.n * self.n + 1, bool)
        for box in boxes:
            i, j = self._cells(box, margin)
            touched[i * self.n + j] = True
        candidates = np.flatnonzero(touched[self.point_cell])
        under = np.zeros(len(candidates), bool)
        for box in boxes:
            under |= _footprint_mask(points[candidates], box, margin)
        return candidates[under]


def _footprint_mask(points: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """Points whose x, y lie inside a box's footprint grown by ``margin`` (any height)."""
    dx, dy = points[:, 0] - box[0], points[:, 1] - box[1]
    cos, sin = np.cos(box[6]), np.sin(box[6])
    return (np.abs(cos * dx + sin * dy) <= box[3] / 2 + margin) & (
        np.abs(-sin * dx + cos * dy) <= box[4] / 2 + margin
    )


def paste_objects(
    points: np.ndarray,
    boxes: np.ndarray,
    others: np.ndarray,
    database: ObjectDatabase,
    count: int,
    stretch: tuple[float, float],
    max_range: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste up to ``count`` objects of the database into one frame.

    Each object is drawn at random, stretched along its length by a factor drawn from
    ``stretch``, and turned about the sensor by one of 6 random angles: the first at which
    its footprint, grown by 0.5 m, overlaps no box of the frame (``boxes``, ``others``,
    earlier pastes), lies within ``max_range`` of the sensor, and stands on free ground (at
    most 8 scene points above 0.3 m under it). Without such an angle it is skipped. The
    scene's points under a kept footprint (grown by 0.25 m, at any height) are removed
    before the object's own are added.

    Args:
        points: ``(N, C)`` float32 points of the frame.
        boxes: ``(M, 7)`` boxes to learn in the frame.
        others: ``(K, 7)`` other boxes of the frame (ignored vehicles): never covered.
        database: objects to draw from.
        count: objects to paste.
        stretch: ``(low, high)`` factors of the length stretch.
        max_range: metres from the sensor that a pasted box must stay within.
        rng: the random generator.

    Returns:
        ``(points, boxes)``: the frame's points with the pasted objects' instead of the
        scene's under them, and ``boxes`` followed by the pasted boxes.
    """
    if count <= 0 or len(database) == 0:
        return points, boxes
    taken = [np.asarray(boxes, np.float64).reshape(-1, 7), np.asarray(others).reshape(-1, 7)]
    occupied = np.concatenate(taken)
    grid = _CoarseGrid(points, max_range)
    pasted_boxes, pasted_points = [], []
    for k in rng.integers(len(database), size=count):
        factor = rng.uniform(*stretch)
        turns = rng.uniform(-np.pi, np.pi, size=_TRIES)
        candidates = _placed_boxes(database.boxes[k], turns, factor)
        ok = (
            np.hypot(candidates[:, 0], candidates[:, 1])
            + np.hypot(candidates[:, 3], candidates[:, 4]) / 2
            <= max_range
        )
        if len(occupied) and ok.any():
            mine = np.repeat(candidates[:, _RECT], len(occupied), axis=0)
            theirs = np.tile(occupied[:, _RECT], (len(candidates), 1))
            hit = bev_overlap(mine, theirs, margin=_COLLISION_MARGIN / 2)
            ok &= ~hit.reshape(len(candidates), len(occupied)).any(1)
        for t in np.flatnonzero(ok):
            if grid.clutter_under(candidates[t], _FOOTPRINT_MARGIN) <= _MAX_CLUTTER_POINTS:
                pasted_boxes.append(candidates[t])
                pasted_points.append(
                    _placed_points(database.boxes[k], database.object_points(k), turns[t], factor)
                )
                occupied = np.concatenate([occupied, candidates[t][None]])
                break
    if not pasted_boxes:
        return points, boxes
    keep = np.ones(len(points), bool)
    keep[grid.points_under(points, pasted_boxes, _FOOTPRINT_MARGIN)] = False
    out_points = np.concatenate([points[keep], *pasted_points]).astype(points.dtype, copy=False)
    out_boxes = np.concatenate([np.asarray(boxes, np.float64).reshape(-1, 7), pasted_boxes])
    return out_points, out_boxes


def move_frame(
    points: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random flip across the x axis, rotation within +-22.5 degrees and scaling by +-5%."""
    flip = rng.random() < 0.5
    angle = rng.uniform(-np.pi / 8, np.pi / 8)
    scale = rng.uniform(0.95, 1.05)
    c, s = np.cos(angle), np.sin(angle)

    def move_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if flip:
            y = -y
        return scale * (c * x - s * y), scale * (s * x + c * y)

    pts = points.copy()
    pts[:, 0], pts[:, 1] = move_xy(points[:, 0], points[:, 1])
    pts[:, 2] *= scale
    out = []
    for b in boxes:
        b = b.copy()
        b[:, 0], b[:, 1] = move_xy(b[:, 0], b[:, 1])
        b[:, 2:6] *= scale
        heading = -b[:, 6] if flip else b[:, 6]
        b[:, 6] = wrap_angle(heading + angle)
        out.append(b)
    return pts, out


def crop_window(
    boxes: np.ndarray,
    grid_size: int,
    crop_cells: int,
    cell_m: float,
    rng: np.random.Generator,
    align: int = 4,
) -> tuple[int, int]:
    """The lower corner ``(i0, j0)``, in input cells, of a square training crop.

    The crop is centred on a random box (uniformly over ``boxes``) shifted by up to a
    quarter of the crop each way, or anywhere when the frame has no box; it is clipped
    into the grid, and its corner is a multiple of ``align`` (the backbone's total stride),
    so that the network computes on the crop what it computes there on the whole grid
    (but near the crop's edges).

    Args:
        boxes: ``(M, 7)`` boxes to learn, vehicle frame.
        grid_size: input cells per side of the whole grid ``G``.
        crop_cells: input cells per side of the crop, a multiple of ``align``, ``<= G``.
        cell_m: input cell size, metres; the grid starts at ``-G cell_m / 2``.
        rng: the random generator.
        align: the corner's multiple, in input cells.
    """
    if len(boxes):
        centre = boxes[rng.integers(len(boxes)), :2] / cell_m + grid_size / 2
        centre = centre + rng.uniform(-crop_cells / 4, crop_cells / 4, size=2)
    else:
        centre = rng.uniform(0, grid_size, size=2)
    corner = np.floor((centre - crop_cells / 2) / align).astype(np.int64) * align
    i0, j0 = np.clip(corner, 0, grid_size - crop_cells)
    return int(i0), int(j0)
