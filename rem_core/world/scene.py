"""Street layout and traffic of one synthetic segment: roads, structures, road users.

World frame: x east, y north, z up, metres. Right-hand traffic on a grid of streets; the
ego follows its lane on the main road (y = 0) towards +x. Road users move at constant
speed along straight lanes and sidewalks; a new one is rejected when its footprint would
overlap an accepted one's at any frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rem_core.config import DomainConfig, WorldConfig
from rem_core.errors import InputError
from rem_core.geometry import bev_overlap
from rem_core.world.shapes import TOW_BED_Z, Shape, make_shape

__all__ = [
    "BIKE_LANE",
    "LANE_WIDTH",
    "PARKED_ONLY",
    "PARKING_LANE",
    "SIDEWALK",
]

LANE_WIDTH = 3.5
BIKE_LANE = 1.5
PARKING_LANE = 2.5
SIDEWALK = 3.5
#: Subtypes seen only parked.
PARKED_ONLY = frozenset({"open_door"})


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
    z0: float = 0.0  # height of the surface it stands on (a towed car stands on a bed)


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
        self.domain = domain
        self.rng = rng
        mix = domain.vehicle_mix or config.vehicle_mix
        self.subtypes = [s for s, _ in mix]
        weights = np.array([w for _, w in mix], dtype=float)
        self.weights = weights / weights.sum()
        self.parked_only_mix = all(
            s in PARKED_ONLY for s, w in zip(self.subtypes, self.weights, strict=True) if w > 0
        )
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

    def sample_subtype(self, moving: bool = False) -> str:
        """A vehicle subtype of the mix; a moving vehicle never has its doors open."""
        if moving and self.parked_only_mix:
            raise InputError(
                f"vehicle_mix: only subtypes seen parked ({', '.join(sorted(PARKED_ONLY))}); "
                "moving traffic needs at least one other subtype"
            )
        while True:
            subtype = str(self.rng.choice(self.subtypes, p=self.weights))
            if not (moving and subtype in PARKED_ONLY):
                return subtype

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
        if subtype == "tow_truck":
            # The car it carries rides on the bed, behind the cab, as an object of its own.
            car = make_shape("vehicle", "towed_car", self.rng)
            bed_center = -shape.dims[0] / 2 + (shape.dims[0] - 2.4) / 2
            along = np.array([np.cos(yaw), np.sin(yaw)])
            self.agents.append(
                _Agent(
                    "vehicle",
                    "towed_car",
                    car,
                    start + bed_center * along,
                    velocity,
                    yaw,
                    z0=TOW_BED_Z,
                )
            )
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
        u, rng, d = self.rng.uniform, self.rng, self.domain
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
                        if roll < d.building_share:
                            depth = u(6.0, 12.0)
                            self.add_static(
                                road,
                                s + length / 2,
                                side * (facade + depth / 2),
                                (length, depth, u(4.0, 18.0)),
                                u(0.15, 0.45),
                            )
                        elif roll < d.building_share + d.wall_share:
                            self.add_static(
                                road,
                                s + length / 2,
                                side * (facade + 0.1),
                                (length, 0.15, u(1.0, 2.0)),
                                u(0.2, 0.5),
                            )
                        elif roll < d.building_share + d.wall_share + d.hedge_share:
                            # a hedge right behind the sidewalk: dark, deep and uneven
                            z = u(1.2, 2.2)
                            self.add_static(
                                road,
                                s + length / 2,
                                side * (road.half_width + SIDEWALK + 0.2 + 0.6),
                                (length, u(0.9, 1.6), z),
                                u(0.04, 0.12),
                            )
                        s += length + (u(1.0, 8.0) if rng.random() < 0.4 else 0.0)
                    s = a + u(2.0, 20.0)
                    while s < b - 1.0:
                        lateral = side * (road.half_width + SIDEWALK - 0.3)
                        self.add_static(road, s, lateral, (0.25, 0.25, u(6.0, 9.0)), 0.4)
                        if rng.random() < d.tree_share and s + 12.0 < b:
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
            subtype = self.sample_subtype(moving=True)
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
