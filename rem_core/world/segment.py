"""Sweeping one segment with the LiDAR: labels, points and point counts per frame.

``Segment`` is a simulated segment, ``plan_segments`` lists a world's segments and
``simulate_segment`` builds one: it lays out the scene, then per frame places everything
(``rem_core.world.frame_geometry``), sweeps the LiDAR, labels the objects it sees (with
label noise) and collects the frame's row, boxes and points, which it assembles into the
segment's tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rem_core.config import DomainConfig, WorldConfig
from rem_core.errors import InputError
from rem_core.geometry import wrap_angle
from rem_core.schema import BOXES, FRAMES, SEGMENTS, conform
from rem_core.world.frame_geometry import (
    _Agents,
    _frame_solids,
    _frame_spray,
    _hills,
    _Pose,
    _pose,
    _stack_agents,
    _stack_statics,
)
from rem_core.world.label_noise import _noisy_labels
from rem_core.world.lidar import Lidar
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


@dataclass(frozen=True)
class _Labels:
    """The labelled objects of one frame.

    Attributes:
        agent: ``(N,)`` the labelled agents.
        boxes: ``(N, 7)`` their label boxes in the vehicle frame, noise included.
        counts: ``(N,)`` LiDAR points inside each box.
        noise: ``(N,)`` the kind of label noise, ``""`` for none.
    """

    agent: np.ndarray
    boxes: np.ndarray
    counts: np.ndarray
    noise: np.ndarray


def _build_scene(
    config: WorldConfig, domain: DomainConfig, rng: np.random.Generator
) -> _SceneBuilder:
    """Lay out the segment's structures, parked vehicles, traffic and pedestrians."""
    scene = _SceneBuilder(config, domain, rng)
    scene.build_structures()
    scene.build_parked()
    scene.build_traffic()
    scene.build_pedestrians()
    return scene


def _true_boxes(agents: _Agents, pose: _Pose, index: np.ndarray) -> np.ndarray:
    """``(N, 7)`` exact label boxes of the agents ``index`` in the vehicle frame, standing
    ``LABEL_CLEARANCE_M`` above the ground under them."""
    return np.column_stack(
        [
            pose.rel[index],
            pose.lift[index] + agents.z0[index] + (agents.dims[index, 2] + LABEL_CLEARANCE_M) / 2,
            agents.dims[index, :2],
            agents.dims[index, 2] - LABEL_CLEARANCE_M,
            wrap_angle(agents.yaw[index] - pose.ego_yaw),
        ]
    )


def _label_frame(
    config: WorldConfig,
    lidar: Lidar,
    agents: _Agents,
    pose: _Pose,
    points: np.ndarray,
    ray: np.ndarray,
    rng: np.random.Generator,
) -> _Labels:
    """Label one frame: as labellers do, an object gets a box when the LiDAR sees it (in
    range, with points); then some labels get noise and their points are counted again."""
    in_range = np.flatnonzero(pose.dist <= config.lidar.max_range_m)
    boxes = _true_boxes(agents, pose, in_range)
    counts = lidar.count_in_boxes(points, ray, boxes)
    visible = counts >= config.min_label_points
    labelled, boxes, counts = in_range[visible], boxes[visible], counts[visible]
    noise, keep = _noisy_labels(
        boxes,
        agents.cls[labelled] == "vehicle",
        ~agents.moving[labelled],
        config.label_noise_fraction,
        rng,
    )
    labelled, boxes, counts, noise = labelled[keep], boxes[keep], counts[keep], noise[keep]
    boxes[:, 6] = wrap_angle(boxes[:, 6])
    wrong = noise != ""
    counts[wrong] = lidar.count_in_boxes(points, ray, boxes[wrong])
    return _Labels(agent=labelled, boxes=boxes, counts=counts, noise=noise)


def _box_table(
    segment_id: str, frame_index: int, agents: _Agents, pose: _Pose, labels: _Labels
) -> pd.DataFrame:
    """One frame's labels as rows of the ``BOXES`` table (not yet conformed)."""
    labelled, boxes = labels.agent, labels.boxes
    speed = agents.velocity[labelled] @ pose.to_vehicle.T
    return pd.DataFrame(
        {
            "segment_id": segment_id,
            "frame_index": frame_index,
            "track_id": agents.track_ids[labelled],
            "class": agents.cls[labelled],
            "subtype": agents.subtypes[labelled],
            "center_x": boxes[:, 0],
            "center_y": boxes[:, 1],
            "center_z": boxes[:, 2],
            "length": boxes[:, 3],
            "width": boxes[:, 4],
            "height": boxes[:, 5],
            "heading": boxes[:, 6],
            "speed_x": speed[:, 0],
            "speed_y": speed[:, 1],
            "num_points": labels.counts,
            "distance": np.hypot(boxes[:, 0], boxes[:, 1]),
            "label_noise": labels.noise != "",
            "noise_kind": labels.noise,
        }
    )


def _frame_row(
    segment_id: str, frame_index: int, timestamp_micros: int, pose: _Pose, n_points: int
) -> tuple:
    """One frame as a row of the ``FRAMES`` table: the ego's pose, level, as a quaternion."""
    return (
        segment_id,
        frame_index,
        timestamp_micros,
        pose.ego_xy[0],
        pose.ego_xy[1],
        0.0,
        np.cos(pose.ego_yaw / 2),
        0.0,
        0.0,
        np.sin(pose.ego_yaw / 2),
        n_points,
    )


def _assemble(
    row: pd.Series,
    frame_rows: list[tuple],
    box_tables: list[pd.DataFrame],
    point_chunks: list[np.ndarray],
) -> Segment:
    """Join the frames' rows, boxes and points into a ``Segment``."""
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
        raise InputError(f"index: segment {index} is outside 0..{len(plan) - 1}")
    row = plan.iloc[index]
    domain = config.ood_domain if row["split"] == "ood" else DomainConfig()
    lidar = lidar or Lidar(config.lidar)
    scene_rng = np.random.default_rng([config.seed, index, 0])
    sensor_rng = np.random.default_rng([config.seed, index, 1])
    label_rng = np.random.default_rng([config.seed, index, 2])

    scene = _build_scene(config, domain, scene_rng)
    agents = _stack_agents(scene.agents)
    ground = _hills(domain, np.random.default_rng([config.seed, index, 3]))
    statics = _stack_statics(scene.static, ground)

    max_range = config.lidar.max_range_m
    base_micros = EPOCH_MICROS + index * 3_600_000_000
    frame_rows, box_tables, point_chunks = [], [], []
    for f, t in enumerate(scene.times):
        pose = _pose(scene, agents, ground, t)
        solids, seen = _frame_solids(agents, statics, pose, max_range)
        spray = _frame_spray(agents, pose, seen) if domain.spray_per_m > 0 else None
        terrain = pose.terrain if domain.hill_amplitude_m > 0 else None
        points, ray = lidar.points(lidar.cast(solids, sensor_rng, domain, spray, terrain))
        labels = _label_frame(config, lidar, agents, pose, points, ray, label_rng)
        box_tables.append(_box_table(row["segment_id"], f, agents, pose, labels))
        timestamp = base_micros + round(t * 1e6)
        frame_rows.append(_frame_row(row["segment_id"], f, timestamp, pose, len(points)))
        point_chunks.append(points)
    return _assemble(row, frame_rows, box_tables, point_chunks)
