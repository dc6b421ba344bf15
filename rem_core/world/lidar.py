"""A spinning LiDAR simulated by ray casting against oriented boxes and a ground plane.

Everything is in the vehicle frame (x forward, y left, z up, metres, origin on the ground
below the vehicle's reference point); the sensor sits at ``(0, 0, sensor_height_m)``.
A sweep is a range image of ``n_beams x n_columns`` rays. Occlusion and the fall of point
density with distance come out of the geometry: each ray returns the nearest surface it
meets. No Python loop runs over rays: each box is culled to the window of beams and
columns its corners span, and all (box, ray) pairs of a sweep are tested at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rem_core.config import DomainConfig, LidarConfig
from rem_core.geometry import box_corners, expand_ranges, inside_pairs, wrap_angle

__all__ = ["HIT_CLUTTER", "HIT_GROUND", "HIT_NONE", "HIT_STATIC", "Lidar", "Solids", "Sweep"]

#: Owner codes of a ray that is not on an object (objects are numbered from 0).
HIT_NONE, HIT_GROUND, HIT_STATIC, HIT_CLUTTER = -1, -2, -3, -4


#: Samples along the rays taken at once in the search for uneven ground.
_TERRAIN_BLOCK = 8


@dataclass(frozen=True)
class Solids:
    """Oriented boxes to cast rays against, in the vehicle frame.

    Attributes:
        center: ``(P, 3)`` float64 box centres, metres.
        half: ``(P, 3)`` float64 half extents along the box's own x, y, z.
        rotation: ``(P, 3, 3)`` float64, vehicle-from-box rotation.
        owner: ``(P,)`` int64, the object index a box belongs to, or ``HIT_STATIC``.
        reflectivity: ``(P,)`` float64 in [0, 1].
    """

    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray
    owner: np.ndarray
    reflectivity: np.ndarray

    def __len__(self) -> int:
        return len(self.center)

    def corners(self) -> np.ndarray:
        """``(P, 8, 3)`` corners in the vehicle frame."""
        signs = np.array(
            [[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=float
        )
        local = signs[None] * self.half[:, None, :]
        return np.einsum("pij,pkj->pki", self.rotation, local) + self.center[:, None, :]


@dataclass(frozen=True)
class Sweep:
    """One revolution of the LiDAR as a range image.

    Attributes:
        range: ``(n_beams, n_columns)`` float32 metres along the ray; ``inf`` = no return.
        owner: ``(n_beams, n_columns)`` int32, object index hit or one of the ``HIT_*`` codes.
        intensity: ``(n_beams, n_columns)`` float32 in [0, 1].
    """

    range: np.ndarray
    owner: np.ndarray
    intensity: np.ndarray


class Lidar:
    """Ray directions of a spinning LiDAR, computed once per configuration.

    Args:
        config: beams, azimuth step, range and noise of the sensor.
    """

    def __init__(self, config: LidarConfig) -> None:
        self.config = config
        self.elevation = np.deg2rad(
            np.linspace(config.elevation_min_deg, config.elevation_max_deg, config.n_beams)
        )
        self.step = np.deg2rad(config.azimuth_step_deg)
        self.azimuth = np.arange(config.n_columns) * self.step
        cos_el = np.cos(self.elevation)[:, None]
        self.directions = np.stack(
            [
                cos_el * np.cos(self.azimuth)[None, :],
                cos_el * np.sin(self.azimuth)[None, :],
                np.broadcast_to(
                    np.sin(self.elevation)[:, None], (config.n_beams, config.n_columns)
                ),
            ],
            axis=-1,
        )  # (B, C, 3)
        self._directions32 = np.ascontiguousarray(self.directions.reshape(-1, 3), dtype=np.float32)
        self.origin = np.array([0.0, 0.0, config.sensor_height_m])
        with np.errstate(divide="ignore"):
            ground = -config.sensor_height_m / np.sin(self.elevation)
        self.ground_range = np.where(self.elevation < 0, ground, np.inf)

    @property
    def shape(self) -> tuple[int, int]:
        return self.directions.shape[:2]

    def ray_windows(self, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate rays of each box: all rays that can pass through it.

        The window is conservative: every ray through the box lies inside it.

        Args:
            corners: ``(P, 8, 3)`` box corners in the vehicle frame.

        Returns:
            ``(box_index, beam, column)``, each ``(K,)`` int64: the flat (box, ray) pairs.
        """
        n_beams, n_cols = self.shape
        rel = corners - self.origin
        dist_xy = np.hypot(rel[..., 0], rel[..., 1])  # (P, 8)
        center = rel.mean(axis=1)
        center_dist = np.hypot(center[:, 0], center[:, 1])
        radius = np.max(
            np.hypot(rel[..., 0] - center[:, None, 0], rel[..., 1] - center[:, None, 1]), 1
        )
        d_min = np.maximum(center_dist - radius, 1e-3)
        d_max = dist_xy.max(axis=1)
        z_top = rel[..., 2].max(axis=1)
        z_bot = rel[..., 2].min(axis=1)
        el_top = np.arctan2(z_top, np.where(z_top > 0, d_min, d_max))
        el_bot = np.arctan2(z_bot, np.where(z_bot < 0, d_min, d_max))
        b0 = np.searchsorted(self.elevation, el_bot, side="left")
        b1 = np.searchsorted(self.elevation, el_top, side="right")

        az_center = np.arctan2(center[:, 1], center[:, 0])
        az_rel = wrap_angle(np.arctan2(rel[..., 1], rel[..., 0]) - az_center[:, None])
        c0 = np.ceil((az_center + az_rel.min(axis=1)) / self.step).astype(np.int64)
        c1 = np.floor((az_center + az_rel.max(axis=1)) / self.step).astype(np.int64)
        surrounds = center_dist <= radius  # the sensor is inside the footprint's circle
        c0 = np.where(surrounds, 0, c0)
        c1 = np.where(surrounds, n_cols - 1, np.minimum(c1, c0 + n_cols - 1))
        nb = np.maximum(b1 - b0, 0)
        nc = np.maximum(c1 - c0 + 1, 0)
        count = nb * nc
        box, local = expand_ranges(np.zeros(len(count), np.int64), count)
        ncb = nc[box]
        beam = b0[box] + local // np.maximum(ncb, 1)
        column = (c0[box] + local % np.maximum(ncb, 1)) % n_cols
        return box, beam, column

    def _slab(self, solids: Solids, box: np.ndarray, ray: np.ndarray, far: bool = False) -> tuple:
        """Entry distance of each (box, ray) pair by the slab test, in float32 for speed.

        Returns:
            ``(t, hit)``: ``(K,)`` float64 distance along the ray and ``(K,)`` bool; with
            ``far``, also the ``(K,)`` exit distance.
        """
        # Per box: the ray origin and the box axes, then one 1-D gather per pair and axis.
        rot = solids.rotation.astype(np.float32)  # (P, 3, 3) vehicle-from-box
        origin_local = np.einsum("pji,pj->pi", rot, self.origin - solids.center).astype(np.float32)
        half = solids.half.astype(np.float32)
        dx, dy, dz = (self._directions32[:, i][ray] for i in range(3))
        t_near = np.full(len(ray), -np.inf, dtype=np.float32)
        t_far = np.full(len(ray), np.inf, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis in range(3):
                v = dx * rot[:, 0, axis][box]
                v += dy * rot[:, 1, axis][box]
                v += dz * rot[:, 2, axis][box]
                np.divide(np.float32(1.0), v, out=v)
                o = origin_local[:, axis][box]
                h = half[:, axis][box]
                ta = (-h - o) * v
                tb = (h - o) * v
                np.maximum(t_near, np.minimum(ta, tb), out=t_near)
                np.minimum(t_far, np.maximum(ta, tb), out=t_far)
        hit = (t_near <= t_far) & (t_near > 0)
        if far:
            return t_near.astype(np.float64), hit, t_far.astype(np.float64)
        return t_near.astype(np.float64), hit

    def cast(
        self,
        solids: Solids,
        rng: np.random.Generator,
        domain: DomainConfig | None = None,
        spray: Solids | None = None,
        terrain: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> Sweep:
        """Cast every ray of one sweep.

        Args:
            solids: boxes in the vehicle frame (objects and static structures).
            rng: randomness for noise, dropout and clutter.
            domain: weather effects added to the sensor's own noise and dropout.
            spray: clouds of spray (``owner`` is the vehicle throwing it): a ray crossing
                one returns from a random depth in it with probability
                ``1 - exp(-domain.spray_per_m * path)``, path ending at the first surface.
            terrain: the ground's height in the vehicle frame at ``(x, y)`` (arrays of the
                same shape); ``None``: the flat plane ``z = 0``.

        Returns:
            The sweep's range image, with ranges beyond ``max_range_m`` and dropped rays
            set to ``inf``.
        """
        cfg = self.config
        domain = domain or DomainConfig()
        n_beams, n_cols = self.shape
        n_rays = n_beams * n_cols
        if terrain is None:
            best = np.repeat(self.ground_range, n_cols)  # flat, beam-major
        else:
            best = self._terrain_range(terrain)
        owner = np.where(np.isfinite(best), HIT_GROUND, HIT_NONE).astype(np.int32)
        reflect = np.full(n_rays, 0.1)

        if len(solids):
            box, beam, column = self.ray_windows(solids.corners())
            ray = beam * n_cols + column
            t, hit = self._slab(solids, box, ray)
            ray, box, t = ray[hit], box[hit], t[hit]
            np.minimum.at(best, ray, t)
            first = t == best[ray]
            owner[ray[first]] = solids.owner[box[first]]
            reflect[ray[first]] = solids.reflectivity[box[first]]
        if spray is not None and len(spray) and domain.spray_per_m > 0:
            self._spray(spray, domain.spray_per_m, rng, best, owner, reflect)

        ground = owner == HIT_GROUND
        reflect[ground] = domain.ground_reflectivity
        dropout = cfg.dropout + domain.extra_dropout
        noise = cfg.range_noise_m + domain.extra_range_noise_m
        rng_range = best + noise * rng.standard_normal(n_rays, dtype=np.float32)
        valid = (best <= cfg.max_range_m) & (rng.random(n_rays, dtype=np.float32) >= dropout)
        if domain.ground_dropout > 0:  # a wet road mirrors grazing beams away
            lost = domain.ground_dropout * np.minimum(1.0, best / 30.0)
            valid &= ~(ground & (rng.random(n_rays) < lost))
        if domain.clutter_fraction > 0:
            clutter = rng.random(n_rays) < domain.clutter_fraction
            rng_range = np.where(clutter, rng.uniform(1.0, 10.0, n_rays), rng_range)
            owner = np.where(clutter, HIT_CLUTTER, owner)
            reflect = np.where(clutter, 0.02, reflect)
            valid |= clutter
        owner = np.where(valid, owner, HIT_NONE)
        reach = np.minimum(rng_range, cfg.max_range_m)
        returned = reflect * (1.0 - 0.4 * reach / cfg.max_range_m)
        if domain.surface_reflectivity != 1.0 or domain.extinction_per_m > 0:
            wet = np.where(owner == HIT_CLUTTER, 1.0, domain.surface_reflectivity)
            returned = returned * wet * np.exp(-2.0 * domain.extinction_per_m * reach)
        intensity = np.clip(
            returned + 0.01 * rng.standard_normal(n_rays, dtype=np.float32),
            0.0,
            1.0,
        )
        return Sweep(
            range=np.where(valid, rng_range, np.inf).astype(np.float32).reshape(n_beams, n_cols),
            owner=owner.astype(np.int32).reshape(n_beams, n_cols),
            intensity=np.where(valid, intensity, 0.0).astype(np.float32).reshape(n_beams, n_cols),
        )

    def _terrain_range(
        self, terrain: Callable[[np.ndarray, np.ndarray], np.ndarray], step: float = 1.0
    ) -> np.ndarray:
        """Distance along each ray to uneven ground (``inf`` if it meets none in range):
        the first of ``step``-metre samples below the ground, refined by linear
        interpolation between it and the sample before.

        The samples are taken ``_TERRAIN_BLOCK`` at a time, and a ray that has met the
        ground takes no more: most rays point down and meet it within a few metres. Each
        sample is the same elementwise arithmetic as over the whole range at once, so the
        distances are the same to the bit.
        """
        d = self.directions.reshape(-1, 3)
        t = np.arange(step, self.config.max_range_m + step, step)
        best = np.full(len(d), np.inf)
        # rays rising faster than any hill never meet the ground
        maybe = np.flatnonzero(d[:, 2] < 0.15)
        for chunk in np.array_split(maybe, max(1, len(maybe) // 8192)):
            # the height above ground of each ray still in the air at the sample before
            # the block (at the sensor, before the first)
            before = np.full(len(chunk), self.origin[2])
            for start in range(0, len(t), _TERRAIN_BLOCK):
                ts = t[start : start + _TERRAIN_BLOCK]
                x, y = d[chunk, 0, None] * ts, d[chunk, 1, None] * ts
                above = self.origin[2] + d[chunk, 2, None] * ts - terrain(x, y)  # (R, B)
                below = above < 0
                hit = below.any(axis=1)
                k = np.argmax(below, axis=1)[hit]
                rows = np.flatnonzero(hit)
                a1 = above[rows, k]
                a0 = np.where(k > 0, above[rows, np.maximum(k - 1, 0)], before[rows])
                t_before = t[start - 1] if start else 0.0
                t0 = np.where(k > 0, ts[np.maximum(k - 1, 0)], t_before)
                best[chunk[rows]] = t0 + step * a0 / np.maximum(a0 - a1, 1e-9)
                chunk, before = chunk[~hit], above[~hit, -1]
                if not len(chunk):
                    break
        return best

    def _spray(
        self,
        spray: Solids,
        per_m: float,
        rng: np.random.Generator,
        best: np.ndarray,
        owner: np.ndarray,
        reflect: np.ndarray,
    ) -> None:
        """Returns from clouds of spray, in place: nearer than the first surface, faint."""
        box, beam, column = self.ray_windows(spray.corners())
        ray = beam * self.shape[1] + column
        t0, hit, t1 = self._slab(spray, box, ray, far=True)
        ray, t0, t1 = ray[hit], t0[hit], np.minimum(t1[hit], best[ray[hit]])
        path = t1 - t0
        inside = path > 0
        ray, t0, path = ray[inside], t0[inside], path[inside]
        returns = rng.random(len(ray)) < -np.expm1(-per_m * path)
        ray, t = ray[returns], t0[returns] + rng.random(int(returns.sum())) * path[returns]
        np.minimum.at(best, ray, t)
        first = t == best[ray]
        owner[ray[first]] = HIT_CLUTTER
        reflect[ray[first]] = 0.02

    def points(self, sweep: Sweep) -> tuple[np.ndarray, np.ndarray]:
        """The returns of a sweep as points.

        Returns:
            ``(points, ray)``: ``(M, 4)`` float32 ``x, y, z, intensity`` in the vehicle frame,
            and ``(M,)`` int64 flat ray index (``beam * n_columns + column``) of each point.
        """
        flat = sweep.range.reshape(-1)
        ray = np.flatnonzero(np.isfinite(flat))
        pts = np.empty((len(ray), 4), dtype=np.float32)
        np.multiply(flat[ray, None], self._directions32[ray], out=pts[:, :3])
        pts[:, 2] += np.float32(self.config.sensor_height_m)
        pts[:, 3] = sweep.intensity.reshape(-1)[ray]
        return pts, ray

    def count_in_boxes(self, points: np.ndarray, ray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Points of one sweep inside each box, testing only the rays through each box.

        Args:
            points: ``(M, >=3)`` points from :meth:`points`.
            ray: ``(M,)`` their flat ray indices.
            boxes: ``(N, 7)`` boxes in the vehicle frame.

        Returns:
            ``(N,)`` int64 counts; equal to a test of every point against every box.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        if len(boxes) == 0:
            return np.zeros(0, dtype=np.int64)
        n_beams, n_cols = self.shape
        point_of_ray = np.full(n_beams * n_cols, -1, dtype=np.int64)
        point_of_ray[ray] = np.arange(len(ray))
        box, beam, column = self.ray_windows(box_corners(boxes))
        idx = point_of_ray[beam * n_cols + column]
        keep = idx >= 0
        box, idx = box[keep], idx[keep]
        inside = inside_pairs(points[idx], boxes[box])
        return np.bincount(box[inside], minlength=len(boxes))
