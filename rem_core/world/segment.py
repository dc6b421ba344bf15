"""Sweeping one segment with the LiDAR: labels, points and point counts per frame."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.config import DomainConfig, WorldConfig
from rem_core.geometry import wrap_angle
from rem_core.schema import BOXES, FRAMES, SEGMENTS, conform
from rem_core.world.label_noise import _noisy_labels
from rem_core.world.lidar import HIT_STATIC, Lidar, Solids
from rem_core.world.scene import _SceneBuilder

__all__ = [
    "EPOCH_MICROS",
    "LABEL_CLEARANCE_M",
    "Segment",
    "plan_segments",
    "simulate_segment",
]

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


def _rz(yaw: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotations about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def _hills(domain: DomainConfig, rng: np.random.Generator) -> Callable:
    """The ground's height ``h(x, y)`` in the world frame: two waves of random phase, along
    and across the main road (flat, and no randomness drawn, without hills)."""
    amplitude, wavelength = domain.hill_amplitude_m, domain.hill_wavelength_m
    if amplitude <= 0:
        return lambda x, y: np.zeros(np.broadcast(x, y).shape)
    phase = rng.uniform(0.0, 2 * np.pi, 2)
    k = 2 * np.pi / wavelength

    def height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return amplitude * (
            np.sin(k * np.asarray(x) + phase[0]) + np.sin(k * np.asarray(y) + phase[1])
        )

    return height


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
    part_center = np.concatenate(
        [a.shape.center + [0, 0, a.z0 + a.shape.dims[2] / 2] for a in agents]
    )
    part_half = np.concatenate([a.shape.half for a in agents])
    part_rot = np.concatenate([a.shape.rotation for a in agents])
    part_refl = np.concatenate([a.shape.reflectivity for a in agents])
    agent_dims = np.stack([a.shape.dims for a in agents])
    agent_yaw = np.array([a.yaw for a in agents])
    agent_start = np.stack([a.start for a in agents])
    agent_velocity = np.stack([a.velocity for a in agents])
    agent_moving = np.hypot(agent_velocity[:, 0], agent_velocity[:, 1]) > 0.1
    agent_z0 = np.array([a.z0 for a in agents])
    # Spray thrown up by a moving vehicle in the wet: from its rear wheels to a plume
    # behind it, longer at speed (object frame, label box centre at the origin).
    speed_ms = np.hypot(agent_velocity[:, 0], agent_velocity[:, 1])
    sprays = agent_moving & (agent_z0 == 0) & (np.array([a.cls for a in agents]) == "vehicle")
    plume = np.clip(0.3 * speed_ms, 1.5, 4.5)
    rear = -agent_dims[:, 0] / 2
    spray_center_obj = np.column_stack(
        [rear + (1.2 - plume) / 2, np.zeros(len(agents)), np.full(len(agents), 0.65)]
    )
    spray_half = np.column_stack(
        [(plume + 1.2) / 2, agent_dims[:, 1] / 2 + 0.2, np.full(len(agents), 0.65)]
    )
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

    ground = _hills(domain, np.random.default_rng([config.seed, index, 3]))
    static_ground = ground(static_center[:, 0], static_center[:, 1])

    max_range = config.lidar.max_range_m
    base_micros = EPOCH_MICROS + index * 3_600_000_000
    frame_rows, box_tables, point_chunks = [], [], []
    for f, t in enumerate(scene.times):
        ego_xy = scene.ego_start + scene.ego_velocity * t
        c, s = np.cos(scene.ego_yaw), np.sin(scene.ego_yaw)
        to_vehicle = np.array([[c, s], [-s, c]])

        ego_z = float(ground(ego_xy[:1], ego_xy[1:])[0])
        agent_xy = agent_start + agent_velocity * t
        rel = (agent_xy - ego_xy) @ to_vehicle.T
        lift = ground(agent_xy[:, 0], agent_xy[:, 1]) - ego_z  # (A,) 0 on flat ground

        def terrain(x: np.ndarray, y: np.ndarray, c=c, s=s, ego_xy=ego_xy, ego_z=ego_z):
            return ground(ego_xy[0] + c * x - s * y, ego_xy[1] + s * x + c * y) - ego_z

        dist = np.hypot(rel[:, 0], rel[:, 1])
        seen = np.flatnonzero(dist - agent_radius <= max_range)
        parts = np.flatnonzero(np.isin(part_owner, seen))
        owner = part_owner[parts]
        rot = _rz(agent_yaw[owner] - scene.ego_yaw)
        center = np.einsum("pij,pj->pi", rot, part_center[parts])
        center[:, :2] += rel[owner]
        center[:, 2] += lift[owner]

        s_rel = (static_center[:, :2] - ego_xy) @ to_vehicle.T
        near = np.flatnonzero(np.hypot(s_rel[:, 0], s_rel[:, 1]) - static_radius <= max_range)
        solids = Solids(
            center=np.concatenate(
                [
                    center,
                    np.column_stack(
                        [s_rel[near], static_center[near, 2] + static_ground[near] - ego_z]
                    ),
                ]
            ),
            half=np.concatenate([part_half[parts], static_half[near]]),
            rotation=np.concatenate([rot @ part_rot[parts], _rz(static_yaw[near] - scene.ego_yaw)]),
            owner=np.concatenate([owner, np.full(len(near), HIT_STATIC)]),
            reflectivity=np.concatenate([part_refl[parts], static_refl[near]]),
        )
        spray = None
        if domain.spray_per_m > 0:
            throw = seen[sprays[seen]]
            rot_s = _rz(agent_yaw[throw] - scene.ego_yaw)
            spray_center = np.einsum("pij,pj->pi", rot_s, spray_center_obj[throw])
            spray_center[:, :2] += rel[throw]
            spray_center[:, 2] += lift[throw]
            spray = Solids(
                center=spray_center,
                half=spray_half[throw],
                rotation=rot_s,
                owner=throw,
                reflectivity=np.full(len(throw), 0.02),
            )
        sweep = lidar.cast(
            solids, sensor_rng, domain, spray, terrain if domain.hill_amplitude_m > 0 else None
        )
        points, ray = lidar.points(sweep)

        # As labellers do, an object gets a box when the LiDAR sees it: in range, with points.
        in_range = np.flatnonzero(dist <= max_range)
        boxes = np.column_stack(
            [
                rel[in_range],
                lift[in_range]
                + agent_z0[in_range]
                + (agent_dims[in_range, 2] + LABEL_CLEARANCE_M) / 2,
                agent_dims[in_range, :2],
                agent_dims[in_range, 2] - LABEL_CLEARANCE_M,
                wrap_angle(agent_yaw[in_range] - scene.ego_yaw),
            ]
        )
        counts = lidar.count_in_boxes(points, ray, boxes)
        visible = counts >= config.min_label_points
        labelled, boxes, counts = in_range[visible], boxes[visible], counts[visible]
        noise, keep = _noisy_labels(
            boxes,
            agent_cls[labelled] == "vehicle",
            ~agent_moving[labelled],
            config.label_noise_fraction,
            label_rng,
        )
        labelled, boxes, counts, noise = labelled[keep], boxes[keep], counts[keep], noise[keep]
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
