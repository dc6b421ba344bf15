"""The synthetic LiDAR world: a built-in data set whose ground truth says which objects are rare.

Each segment is a few seconds of driving at ``frame_rate_hz`` through a grid of streets:
an ego vehicle follows its lane on the main road; parked and moving vehicles of a
long-tailed subtype mix, cyclists in bike lanes and pedestrians on sidewalks share the
streets with building walls, fences, poles and trees. A spinning LiDAR (``rem_core.lidar``)
sweeps the scene every frame; occlusion and sparsity come from ray casting alone.

Frames (the conventions of the Waymo Open Dataset):
    world: x east, y north, z up, metres; flat ground at z = 0.
    vehicle: x forward, y left, z up; origin on the ground below the ego's reference point;
        the LiDAR sits at ``(0, 0, lidar.sensor_height_m)``.
    Boxes are in the vehicle frame, ``heading`` in [-pi, pi) from +x counter-clockwise.

Every segment draws from its own generators seeded by ``(seed, segment index)``, so a
segment can be rebuilt alone and the world is identical for a seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rem_core.boxes import bev_overlap, wrap_angle
from rem_core.config import DomainConfig, WorldConfig, config_hash, config_to_dict
from rem_core.dataset import Dataset, DatasetWriter
from rem_core.lidar import HIT_STATIC, Lidar, Solids
from rem_core.schema import BOXES, FRAMES, SEGMENTS, conform
from rem_core.shapes import Shape, make_shape

__all__ = [
    "SPLITS",
    "Segment",
    "plan_segments",
    "simulate_segment",
    "simulate_world",
    "write_world",
]

log = logging.getLogger(__name__)

#: Split of each segment, in the order segments are numbered.
SPLITS = ("source", "unlabelled", "validation", "ood")

LANE_WIDTH = 3.5
BIKE_LANE = 1.5
PARKING_LANE = 2.5
SIDEWALK = 3.5
EPOCH_MICROS = 1_600_000_000_000_000  # segments start on 2020-09-13, one hour apart
#: Label boxes start this far above the road, as labellers fit boxes to the object and not
#: to the road under it (so ``num_points`` does not count the road surface).
LABEL_CLEARANCE_M = 0.05


@dataclass(frozen=True)
class Segment:
    """One simulated segment.

    Attributes:
        segment_id: unique name in the data set.
        split: ``source``, ``unlabelled``, ``validation`` or ``ood``.
        domain: the name of its ``DomainConfig`` (``clear`` unless out of distribution).
        frames: one row per frame in the ``FRAMES`` schema.
        boxes: one row per labelled object and frame in the ``BOXES`` schema.
        points: ``(M, 4)`` float32 ``x, y, z, intensity`` of all frames, vehicle frame.
        offsets: ``(T + 1,)`` int64; frame ``f`` holds ``points[offsets[f]:offsets[f + 1]]``.
    """

    segment_id: str
    split: str
    domain: str
    frames: pd.DataFrame
    boxes: pd.DataFrame
    points: np.ndarray
    offsets: np.ndarray

    def frame_points(self, frame_index: int) -> np.ndarray:
        """``(N, 4)`` float32 points of one frame."""
        return self.points[self.offsets[frame_index] : self.offsets[frame_index + 1]]

    def segment_row(self) -> pd.DataFrame:
        """This segment as a one-row table in the ``SEGMENTS`` schema."""
        return conform(
            pd.DataFrame(
                {
                    "segment_id": [self.segment_id],
                    "split": [self.split],
                    "domain": [self.domain],
                    "num_frames": [len(self.frames)],
                    "frame_rate_hz": [
                        1e6 / np.diff(self.frames["timestamp_micros"]).mean()
                        if len(self.frames) > 1
                        else np.nan
                    ],
                }
            ),
            SEGMENTS,
            "segment",
        )


def plan_segments(config: WorldConfig) -> pd.DataFrame:
    """The segments a world holds, without simulating them.

    Returns:
        One row per segment: ``index``, ``segment_id``, ``split``, ``domain``.
    """
    n_source = config.n_source_segments
    rows = []
    for index in range(config.n_total_segments):
        if index < n_source:
            split = "source"
        elif index < config.n_segments:
            split = "unlabelled"
        elif index < config.n_segments + config.n_val_segments:
            split = "validation"
        else:
            split = "ood"
        domain = config.ood_domain.name if split == "ood" else "clear"
        rows.append((index, f"w{config.seed}-{index:04d}", split, domain))
    return pd.DataFrame(rows, columns=["index", "segment_id", "split", "domain"])


# --- scene layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Road:
    axis: int  # 0: along x, 1: along y
    offset: float  # the centre line's y (axis 0) or x (axis 1)
    lanes: int  # per direction

    @property
    def half_width(self) -> float:
        return self.lanes * LANE_WIDTH + BIKE_LANE + PARKING_LANE

    @property
    def along(self) -> np.ndarray:
        return np.array([1.0, 0.0]) if self.axis == 0 else np.array([0.0, 1.0])

    @property
    def left(self) -> np.ndarray:
        u = self.along
        return np.array([-u[1], u[0]])

    def point(self, s: float, lateral: float) -> np.ndarray:
        base = np.array([0.0, self.offset]) if self.axis == 0 else np.array([self.offset, 0.0])
        return s * self.along + base + lateral * self.left

    def yaw(self, forward: bool) -> float:
        u = self.along if forward else -self.along
        return float(np.arctan2(u[1], u[0]))


@dataclass
class _Agent:
    cls: str
    subtype: str
    shape: Shape
    start: np.ndarray  # (2,) world xy at t = 0
    velocity: np.ndarray  # (2,) m/s
    yaw: float


class _Occupancy:
    """Footprints of accepted road users over time, to keep new ones from overlapping."""

    def __init__(self, times: np.ndarray, capacity: int = 512) -> None:
        self.times = times
        self.pos = np.zeros((capacity, len(times), 2))
        self.rect = np.zeros((capacity, 3))  # length, width, yaw
        self.n = 0

    def try_add(
        self,
        start: np.ndarray,
        velocity: np.ndarray,
        length: float,
        width: float,
        yaw: float,
        margin: float = 0.3,
    ) -> bool:
        pos = start + velocity * self.times[:, None]
        if self.n:
            radius = np.hypot(length, width) / 2
            others = np.hypot(self.rect[: self.n, 0], self.rect[: self.n, 1]) / 2
            gap = np.linalg.norm(self.pos[: self.n] - pos[None], axis=-1)
            a, t = np.nonzero(gap < radius + others[:, None] + 2 * margin)
            if len(a):
                mine = np.column_stack([pos[t], np.full((len(t), 3), [length, width, yaw])])
                theirs = np.column_stack([self.pos[a, t], self.rect[a]])
                if bev_overlap(mine, theirs, margin=margin).any():
                    return False
        if self.n == len(self.pos):
            self.pos = np.concatenate([self.pos, np.zeros_like(self.pos)])
            self.rect = np.concatenate([self.rect, np.zeros_like(self.rect)])
        self.pos[self.n] = pos
        self.rect[self.n] = (length, width, yaw)
        self.n += 1
        return True


def _free_intervals(
    lo: float, hi: float, blocked: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    out, start = [], lo
    for b0, b1 in sorted(blocked):
        if b0 > start:
            out.append((start, min(b0, hi)))
        start = max(start, b1)
    if start < hi:
        out.append((start, hi))
    return [(a, b) for a, b in out if b - a > 1.0]


class _SceneBuilder:
    """Lays out streets, structures and traffic of one segment."""

    def __init__(self, config: WorldConfig, domain: DomainConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        mix = domain.vehicle_mix or config.vehicle_mix
        self.subtypes = [s for s, _ in mix]
        weights = np.array([w for _, w in mix], dtype=float)
        self.weights = weights / weights.sum()
        n = config.frames_per_segment
        self.times = np.arange(n) / config.frame_rate_hz
        self.occupancy = _Occupancy(self.times)
        self.agents: list[_Agent] = []
        self.static: list[
            tuple[np.ndarray, np.ndarray, float, float]
        ] = []  # centre, size, yaw, refl

        u = rng.uniform
        self.ego_speed = 0.0 if rng.random() < 0.15 else u(5.0, 13.0)
        travel = self.ego_speed * self.times[-1]
        reach = config.lidar.max_range_m + 15.0
        self.bounds = (-reach, travel + reach, -reach, reach)  # x0, x1, y0, y1
        main = _Road(0, 0.0, int(rng.integers(1, 3)))
        self.roads = [main]
        spacing_y = u(60.0, 130.0)
        for y in (-spacing_y, spacing_y):
            if abs(y) < reach:
                self.roads.append(_Road(0, y, 1))
        spacing_x = u(70.0, 160.0)
        x = u(-reach, -reach + spacing_x)
        while x < self.bounds[1]:
            self.roads.append(_Road(1, x, int(rng.integers(1, 3))))
            x += spacing_x
        ego_lane = int(rng.integers(0, main.lanes))
        self.ego_start = main.point(0.0, -(ego_lane + 0.5) * LANE_WIDTH)
        self.ego_yaw = main.yaw(True)  # the ego follows its lane along the main road
        self.ego_velocity = self.ego_speed * main.along
        self.ego_lane = (0, ego_lane)
        self.occupancy.try_add(self.ego_start, self.ego_velocity, 4.8, 1.9, 0.0)

    def extent(self, road: _Road) -> tuple[float, float]:
        x0, x1, y0, y1 = self.bounds
        return (x0, x1) if road.axis == 0 else (y0, y1)

    def crossings(self, road: _Road, pad: float) -> list[tuple[float, float]]:
        return [
            (other.offset - other.half_width - pad, other.offset + other.half_width + pad)
            for other in self.roads
            if other.axis != road.axis
        ]

    def sample_subtype(self) -> str:
        return str(self.rng.choice(self.subtypes, p=self.weights))

    def add_agent(
        self,
        cls: str,
        subtype: str,
        shape: Shape,
        start: np.ndarray,
        velocity: np.ndarray,
        yaw: float,
    ) -> bool:
        length, width = shape.dims[0], shape.dims[1]
        if not self.occupancy.try_add(start, velocity, length, width, yaw):
            return False
        self.agents.append(_Agent(cls, subtype, shape, start, velocity, yaw))
        return True

    def add_static(
        self,
        road: _Road,
        s: float,
        lateral: float,
        size: tuple[float, float, float],
        refl: float,
        z0: float = 0.0,
    ) -> None:
        xy = road.point(s, lateral)
        center = np.array([xy[0], xy[1], z0 + size[2] / 2])
        self.static.append((center, np.array(size), road.yaw(True), refl))

    def build_structures(self) -> None:
        u, rng = self.rng.uniform, self.rng
        for road in self.roads:
            lo, hi = self.extent(road)
            for side in (-1.0, 1.0):
                for a, b in _free_intervals(lo, hi, self.crossings(road, SIDEWALK + 1.0)):
                    setback = u(0.5, 5.0)
                    facade = road.half_width + SIDEWALK + setback
                    s = a
                    while s < b - 2.0:
                        length = min(u(8.0, 40.0), b - s)
                        roll = rng.random()
                        if roll < 0.75:
                            depth = u(6.0, 12.0)
                            self.add_static(
                                road,
                                s + length / 2,
                                side * (facade + depth / 2),
                                (length, depth, u(4.0, 18.0)),
                                u(0.15, 0.45),
                            )
                        elif roll < 0.9:
                            self.add_static(
                                road,
                                s + length / 2,
                                side * (facade + 0.1),
                                (length, 0.15, u(1.0, 2.0)),
                                u(0.2, 0.5),
                            )
                        s += length + (u(1.0, 8.0) if rng.random() < 0.4 else 0.0)
                    s = a + u(2.0, 20.0)
                    while s < b - 1.0:
                        lateral = side * (road.half_width + SIDEWALK - 0.3)
                        self.add_static(road, s, lateral, (0.25, 0.25, u(6.0, 9.0)), 0.4)
                        if rng.random() < 0.4 and s + 12.0 < b:
                            tree = s + u(8.0, 12.0)
                            self.add_static(road, tree, lateral, (0.35, 0.35, 2.6), 0.1)
                            crown = u(2.5, 4.5)
                            self.add_static(
                                road,
                                tree,
                                lateral - side * 0.3,
                                (crown, min(crown, 2.6), u(2.5, 4.0)),
                                0.12,
                                z0=2.6,
                            )
                        s += u(25.0, 40.0)

    def build_parked(self) -> None:
        u, rng = self.rng.uniform, self.rng
        pending = None  # a vehicle that did not fit where it was drawn parks further on
        for road in self.roads:
            lo, hi = self.extent(road)
            for side in (-1.0, 1.0):
                for a, b in _free_intervals(lo, hi, self.crossings(road, 6.0)):
                    s = a + u(0.0, 3.0)
                    while s < b - 3.0:
                        if pending is None and rng.random() >= self.config.parked_occupancy:
                            s += u(4.0, 7.0)
                            continue
                        if pending is None:
                            subtype = self.sample_subtype()
                            pending = subtype, make_shape("vehicle", subtype, rng, parked=True)
                        subtype, shape = pending
                        length, width = shape.dims[0], shape.dims[1]
                        if s + length > b:
                            break
                        curb = road.half_width - 0.25 - width / 2
                        forward = (side < 0) != (rng.random() < 0.1)
                        start = road.point(s + length / 2, side * curb)
                        if self.add_agent(
                            "vehicle", subtype, shape, start, np.zeros(2), road.yaw(forward)
                        ):
                            pending = None
                        s += length + u(0.8, 3.0)

    def _movers(
        self,
        road: _Road,
        lateral: float,
        forward: bool,
        speed: float,
        per_km: float,
        make: Callable[[], tuple[str, str, Shape]],
    ) -> None:
        lo, hi = self.extent(road)
        lo, hi = lo - 60.0, hi + 60.0
        count = self.rng.poisson(per_km * (hi - lo) / 1000.0)
        direction = road.along if forward else -road.along
        for _ in range(count):
            cls, subtype, shape = make()
            # Retry the same object elsewhere on the lane, so that long vehicles, which
            # collide more often, keep their share of the mix.
            for s in self.rng.uniform(lo, hi, 8):
                if self.add_agent(
                    cls,
                    subtype,
                    shape,
                    road.point(s, lateral),
                    direction * speed,
                    road.yaw(forward),
                ):
                    break

    def build_traffic(self) -> None:
        u, rng, cfg = self.rng.uniform, self.rng, self.config

        def vehicle() -> tuple[str, str, Shape]:
            subtype = self.sample_subtype()
            return "vehicle", subtype, make_shape("vehicle", subtype, rng)

        for r, road in enumerate(self.roads):
            for forward in (True, False):
                sign = -1.0 if forward else 1.0  # right-hand traffic
                for lane in range(road.lanes):
                    speed = u(6.0, 14.0)
                    if forward and (r, lane) == self.ego_lane:
                        speed = self.ego_speed  # keep the ego's lane moving as one queue
                    lateral = sign * (lane + 0.5) * LANE_WIDTH
                    self._movers(
                        road, lateral, forward, speed, cfg.moving_vehicles_per_km_lane, vehicle
                    )
                bike = sign * (road.lanes * LANE_WIDTH + BIKE_LANE / 2)
                self._movers(
                    road,
                    bike,
                    forward,
                    u(3.5, 7.0),
                    cfg.cyclists_per_km_lane,
                    lambda: ("cyclist", "cyclist", make_shape("cyclist", "cyclist", rng)),
                )

    def build_pedestrians(self) -> None:
        u, rng = self.rng.uniform, self.rng
        for road in self.roads:
            lo, hi = self.extent(road)
            for side in (-1.0, 1.0):
                for a, b in _free_intervals(lo, hi, self.crossings(road, 0.0)):
                    count = rng.poisson(self.config.pedestrians_per_km_sidewalk * (b - a) / 1000)
                    for s in rng.uniform(a, b, count):
                        lateral = side * (road.half_width + u(0.6, 2.3))
                        shape = make_shape("pedestrian", "pedestrian", rng)
                        if rng.random() < 0.25:
                            velocity, yaw = np.zeros(2), u(-np.pi, np.pi)
                        else:
                            forward = rng.random() < 0.5
                            velocity = (road.along if forward else -road.along) * u(0.8, 1.6)
                            yaw = road.yaw(forward)
                        self.add_agent(
                            "pedestrian", "pedestrian", shape, road.point(s, lateral), velocity, yaw
                        )


# --- simulation ---------------------------------------------------------------------------


def _rz(yaw: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotations about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def _noisy_labels(
    boxes: np.ndarray, is_vehicle: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Realistic label errors: a box on part of a vehicle, or a wrong size.

    Returns:
        ``(N,)`` object array of the error kind: ``""``, ``"partial"`` or ``"wrong_size"``.
    """
    kind = np.full(len(boxes), "", dtype=object)
    hit = is_vehicle & (rng.random(len(boxes)) < fraction)
    for i in np.flatnonzero(hit):
        cx, cy, cz, length, width, height, heading = boxes[i]
        if rng.random() < 0.5:
            keep = rng.uniform(0.4, 0.7) * length
            shift = (length - keep) / 2 * rng.choice([-1.0, 1.0])
            boxes[i, 0] += shift * np.cos(heading)
            boxes[i, 1] += shift * np.sin(heading)
            boxes[i, 3] = keep
            kind[i] = "partial"
        else:
            scale = rng.choice([rng.uniform(0.65, 0.85), rng.uniform(1.15, 1.4)], size=3)
            keep = rng.random(3) < 0.4
            keep[rng.integers(3)] = False  # at least one dimension is wrong
            scale[keep] = 1.0
            boxes[i, 3:6] *= scale
            boxes[i, 2] = LABEL_CLEARANCE_M + boxes[i, 5] / 2  # still on the ground
            kind[i] = "wrong_size"
    return kind


def simulate_segment(config: WorldConfig, index: int, lidar: Lidar | None = None) -> Segment:
    """Build and sweep one segment.

    Args:
        config: the world's settings.
        index: the segment's number in ``plan_segments(config)``.
        lidar: a prepared sensor for ``config.lidar`` (saves recomputing ray directions).

    Returns:
        The segment's frames, labelled boxes and points.
    """
    plan = plan_segments(config)
    if not 0 <= index < len(plan):
        raise ValueError(f"index: segment {index} is outside 0..{len(plan) - 1}")
    row = plan.iloc[index]
    domain = config.ood_domain if row["split"] == "ood" else DomainConfig()
    lidar = lidar or Lidar(config.lidar)
    scene_rng = np.random.default_rng([config.seed, index, 0])
    sensor_rng = np.random.default_rng([config.seed, index, 1])
    label_rng = np.random.default_rng([config.seed, index, 2])

    scene = _SceneBuilder(config, domain, scene_rng)
    scene.build_structures()
    scene.build_parked()
    scene.build_traffic()
    scene.build_pedestrians()
    agents = scene.agents

    # Agent parts, stacked; centres get their height above ground.
    n_parts = np.array([len(a.shape.half) for a in agents], dtype=np.int64)
    part_owner = np.repeat(np.arange(len(agents)), n_parts)
    part_center = np.concatenate([a.shape.center + [0, 0, a.shape.dims[2] / 2] for a in agents])
    part_half = np.concatenate([a.shape.half for a in agents])
    part_rot = np.concatenate([a.shape.rotation for a in agents])
    part_refl = np.concatenate([a.shape.reflectivity for a in agents])
    agent_dims = np.stack([a.shape.dims for a in agents])
    agent_yaw = np.array([a.yaw for a in agents])
    agent_start = np.stack([a.start for a in agents])
    agent_velocity = np.stack([a.velocity for a in agents])
    agent_radius = np.hypot(agent_dims[:, 0], agent_dims[:, 1]) / 2
    agent_cls = np.array([a.cls for a in agents], dtype=object)
    prefix = {"vehicle": "v", "pedestrian": "p", "cyclist": "c"}
    track_ids = np.array([f"{prefix[a.cls]}{i:04d}" for i, a in enumerate(agents)], dtype=object)
    subtypes = np.array([a.subtype for a in agents], dtype=object)

    static_center = np.stack([c for c, _, _, _ in scene.static])
    static_half = np.stack([s for _, s, _, _ in scene.static]) / 2
    static_yaw = np.array([y for _, _, y, _ in scene.static])
    static_refl = np.array([r for _, _, _, r in scene.static])
    static_radius = np.linalg.norm(static_half[:, :2], axis=1)

    max_range = config.lidar.max_range_m
    base_micros = EPOCH_MICROS + index * 3_600_000_000
    frame_rows, box_tables, point_chunks = [], [], []
    for f, t in enumerate(scene.times):
        ego_xy = scene.ego_start + scene.ego_velocity * t
        c, s = np.cos(scene.ego_yaw), np.sin(scene.ego_yaw)
        to_vehicle = np.array([[c, s], [-s, c]])

        rel = (agent_start + agent_velocity * t - ego_xy) @ to_vehicle.T
        dist = np.hypot(rel[:, 0], rel[:, 1])
        seen = np.flatnonzero(dist - agent_radius <= max_range)
        parts = np.flatnonzero(np.isin(part_owner, seen))
        owner = part_owner[parts]
        rot = _rz(agent_yaw[owner] - scene.ego_yaw)
        center = np.einsum("pij,pj->pi", rot, part_center[parts])
        center[:, :2] += rel[owner]

        s_rel = (static_center[:, :2] - ego_xy) @ to_vehicle.T
        near = np.flatnonzero(np.hypot(s_rel[:, 0], s_rel[:, 1]) - static_radius <= max_range)
        solids = Solids(
            center=np.concatenate([center, np.column_stack([s_rel[near], static_center[near, 2]])]),
            half=np.concatenate([part_half[parts], static_half[near]]),
            rotation=np.concatenate([rot @ part_rot[parts], _rz(static_yaw[near] - scene.ego_yaw)]),
            owner=np.concatenate([owner, np.full(len(near), HIT_STATIC)]),
            reflectivity=np.concatenate([part_refl[parts], static_refl[near]]),
        )
        sweep = lidar.cast(solids, sensor_rng, domain)
        points, ray = lidar.points(sweep)

        # As labellers do, an object gets a box when the LiDAR sees it: in range, with points.
        in_range = np.flatnonzero(dist <= max_range)
        boxes = np.column_stack(
            [
                rel[in_range],
                (agent_dims[in_range, 2] + LABEL_CLEARANCE_M) / 2,
                agent_dims[in_range, :2],
                agent_dims[in_range, 2] - LABEL_CLEARANCE_M,
                wrap_angle(agent_yaw[in_range] - scene.ego_yaw),
            ]
        )
        counts = lidar.count_in_boxes(points, ray, boxes)
        visible = counts >= config.min_label_points
        labelled, boxes, counts = in_range[visible], boxes[visible], counts[visible]
        noise = _noisy_labels(
            boxes, agent_cls[labelled] == "vehicle", config.label_noise_fraction, label_rng
        )
        boxes[:, 6] = wrap_angle(boxes[:, 6])
        wrong = noise != ""
        counts[wrong] = lidar.count_in_boxes(points, ray, boxes[wrong])
        speed = agent_velocity[labelled] @ to_vehicle.T
        box_tables.append(
            pd.DataFrame(
                {
                    "segment_id": row["segment_id"],
                    "frame_index": f,
                    "track_id": track_ids[labelled],
                    "class": agent_cls[labelled],
                    "subtype": subtypes[labelled],
                    "center_x": boxes[:, 0],
                    "center_y": boxes[:, 1],
                    "center_z": boxes[:, 2],
                    "length": boxes[:, 3],
                    "width": boxes[:, 4],
                    "height": boxes[:, 5],
                    "heading": boxes[:, 6],
                    "speed_x": speed[:, 0],
                    "speed_y": speed[:, 1],
                    "num_points": counts,
                    "distance": np.hypot(boxes[:, 0], boxes[:, 1]),
                    "label_noise": noise != "",
                    "noise_kind": noise,
                }
            )
        )
        frame_rows.append(
            (
                row["segment_id"],
                f,
                base_micros + round(t * 1e6),
                ego_xy[0],
                ego_xy[1],
                0.0,
                np.cos(scene.ego_yaw / 2),
                0.0,
                0.0,
                np.sin(scene.ego_yaw / 2),
                len(points),
            )
        )
        point_chunks.append(points)

    frames = conform(pd.DataFrame(frame_rows, columns=FRAMES.names), FRAMES, "frames")
    boxes_table = conform(pd.concat(box_tables, ignore_index=True), BOXES, "boxes")
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in point_chunks])]).astype(np.int64)
    return Segment(
        segment_id=str(row["segment_id"]),
        split=str(row["split"]),
        domain=str(row["domain"]),
        frames=frames,
        boxes=boxes_table,
        points=np.concatenate(point_chunks),
        offsets=offsets,
    )


def simulate_world(
    config: WorldConfig,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Segment]:
    """Simulate every segment of a world, one at a time (a world may not fit in memory).

    Args:
        config: the world's settings.
        progress: called with ``(segments done, segments in all)`` after each segment.

    Yields:
        Segments in the order of ``plan_segments(config)``.
    """
    lidar = Lidar(config.lidar)
    total = config.n_total_segments
    for index in range(total):
        segment = simulate_segment(config, index, lidar)
        log.debug(
            "segment %s: %d frames, %d boxes",
            segment.segment_id,
            len(segment.frames),
            len(segment.boxes),
        )
        if progress is not None:
            progress(index + 1, total)
        yield segment


def write_world(
    config: WorldConfig,
    out: str | Path,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Simulate a world and write it as a data set folder (atomically).

    Args:
        config: the world's settings.
        out: the data set folder to create.
        progress: called with ``(segments done, segments in all)``.
        overwrite: replace an existing data set at ``out``.

    Returns:
        The written data set, opened.
    """
    manifest = {
        "source": "synthetic world",
        "name": f"world seed {config.seed}",
        "config": config_to_dict(config),
        "config_hash": config_hash(config),
    }
    with DatasetWriter(out, manifest, overwrite=overwrite) as writer:
        for segment in simulate_world(config, progress):
            writer.add_segment(
                segment.segment_row(),
                segment.frames,
                segment.boxes,
                (segment.frame_points(f) for f in range(len(segment.frames))),
            )
    return Dataset.open(out)
