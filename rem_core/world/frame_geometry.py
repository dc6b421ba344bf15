"""Where everything is at one frame of a segment: agents, structures, the ego and the ground.

The scene's agents and static structures stacked into arrays (``_Agents``, ``_Statics``),
with the spray box a moving vehicle throws up in the wet; the ground's height (hills); the
ego vehicle's pose at a time and the agents seen from it (``_Pose``); and, per frame, the
solid boxes (agents' parts and structures) and spray boxes in the vehicle frame that the
LiDAR casts its rays against. ``rem_core.world.segment`` sweeps and labels the frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rem_core.config import DomainConfig
from rem_core.world.lidar import HIT_STATIC, Solids
from rem_core.world.scene import _Agent, _SceneBuilder

__all__: list[str] = []


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


@dataclass(frozen=True)
class _Agents:
    """The scene's agents as arrays: one row per agent, and all their parts stacked.

    Attributes:
        part_owner: ``(P,)`` the agent each part belongs to.
        part_center: ``(P, 3)`` part centres in the object frame, raised to their height above
            the ground under the agent.
        part_half: ``(P, 3)`` part half extents.
        part_rot: ``(P, 3, 3)`` object-from-part rotations.
        part_refl: ``(P,)`` part reflectivities.
        dims: ``(A, 3)`` label box length, width and height.
        yaw: ``(A,)`` heading in the world frame.
        start: ``(A, 2)`` world xy at t = 0.
        velocity: ``(A, 2)`` world velocity, m/s.
        moving: ``(A,)`` faster than 0.1 m/s.
        z0: ``(A,)`` height of the surface the agent stands on.
        radius: ``(A,)`` half the diagonal of the label box's footprint.
        cls: ``(A,)`` object class.
        track_ids: ``(A,)`` ``v0001``-style track names.
        subtypes: ``(A,)`` object subtype.
        sprays: ``(A,)`` throws up spray in the wet.
        spray_center: ``(A, 3)`` the spray box's centre, object frame.
        spray_half: ``(A, 3)`` the spray box's half extents.
    """

    part_owner: np.ndarray
    part_center: np.ndarray
    part_half: np.ndarray
    part_rot: np.ndarray
    part_refl: np.ndarray
    dims: np.ndarray
    yaw: np.ndarray
    start: np.ndarray
    velocity: np.ndarray
    moving: np.ndarray
    z0: np.ndarray
    radius: np.ndarray
    cls: np.ndarray
    track_ids: np.ndarray
    subtypes: np.ndarray
    sprays: np.ndarray
    spray_center: np.ndarray
    spray_half: np.ndarray


@dataclass(frozen=True)
class _Statics:
    """The scene's static structures as arrays, one row each, in the world frame."""

    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    refl: np.ndarray
    radius: np.ndarray
    ground: np.ndarray  # height of the ground under each centre


@dataclass(frozen=True)
class _Pose:
    """The ego vehicle at one frame, and where the agents are seen from it.

    Attributes:
        ego_xy: ``(2,)`` the ego's world position.
        ego_yaw: the ego's heading in the world frame.
        ego_z: height of the ground under the ego.
        to_vehicle: ``(2, 2)`` vehicle-from-world rotation.
        rel: ``(A, 2)`` agent positions in the vehicle frame.
        lift: ``(A,)`` height of the ground under each agent above that under the ego.
        dist: ``(A,)`` horizontal distance of each agent from the sensor.
        terrain: the ground's height ``h(x, y)`` in the vehicle frame.
    """

    ego_xy: np.ndarray
    ego_yaw: float
    ego_z: float
    to_vehicle: np.ndarray
    rel: np.ndarray
    lift: np.ndarray
    dist: np.ndarray
    terrain: Callable


def _spray_boxes(
    agents: list[_Agent], dims: np.ndarray, velocity: np.ndarray, moving: np.ndarray, z0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spray thrown up by a moving vehicle in the wet: from its rear wheels to a plume
    behind it, longer at speed (object frame, label box centre at the origin).

    Returns:
        ``(sprays, center, half)``: which agents throw spray, and per agent the centre and
        half extents of its spray box.
    """
    speed_ms = np.hypot(velocity[:, 0], velocity[:, 1])
    sprays = moving & (z0 == 0) & (np.array([a.cls for a in agents]) == "vehicle")
    plume = np.clip(0.3 * speed_ms, 1.5, 4.5)
    rear = -dims[:, 0] / 2
    center = np.column_stack(
        [rear + (1.2 - plume) / 2, np.zeros(len(agents)), np.full(len(agents), 0.65)]
    )
    half = np.column_stack([(plume + 1.2) / 2, dims[:, 1] / 2 + 0.2, np.full(len(agents), 0.65)])
    return sprays, center, half


def _stack_agents(agents: list[_Agent]) -> _Agents:
    """Stack the agents and their parts into arrays; part centres get their height above
    ground."""
    n_parts = np.array([len(a.shape.half) for a in agents], dtype=np.int64)
    dims = np.stack([a.shape.dims for a in agents])
    velocity = np.stack([a.velocity for a in agents])
    moving = np.hypot(velocity[:, 0], velocity[:, 1]) > 0.1
    z0 = np.array([a.z0 for a in agents])
    sprays, spray_center, spray_half = _spray_boxes(agents, dims, velocity, moving, z0)
    prefix = {"vehicle": "v", "pedestrian": "p", "cyclist": "c"}
    return _Agents(
        part_owner=np.repeat(np.arange(len(agents)), n_parts),
        part_center=np.concatenate(
            [a.shape.center + [0, 0, a.z0 + a.shape.dims[2] / 2] for a in agents]
        ),
        part_half=np.concatenate([a.shape.half for a in agents]),
        part_rot=np.concatenate([a.shape.rotation for a in agents]),
        part_refl=np.concatenate([a.shape.reflectivity for a in agents]),
        dims=dims,
        yaw=np.array([a.yaw for a in agents]),
        start=np.stack([a.start for a in agents]),
        velocity=velocity,
        moving=moving,
        z0=z0,
        radius=np.hypot(dims[:, 0], dims[:, 1]) / 2,
        cls=np.array([a.cls for a in agents], dtype=object),
        track_ids=np.array([f"{prefix[a.cls]}{i:04d}" for i, a in enumerate(agents)], dtype=object),
        subtypes=np.array([a.subtype for a in agents], dtype=object),
        sprays=sprays,
        spray_center=spray_center,
        spray_half=spray_half,
    )


def _stack_statics(
    static: list[tuple[np.ndarray, np.ndarray, float, float]], ground: Callable
) -> _Statics:
    """Stack the static structures (centre, size, yaw, reflectivity) into arrays."""
    center = np.stack([c for c, _, _, _ in static])
    half = np.stack([s for _, s, _, _ in static]) / 2
    return _Statics(
        center=center,
        half=half,
        yaw=np.array([y for _, _, y, _ in static]),
        refl=np.array([r for _, _, _, r in static]),
        radius=np.linalg.norm(half[:, :2], axis=1),
        ground=ground(center[:, 0], center[:, 1]),
    )


def _pose(scene: _SceneBuilder, agents: _Agents, ground: Callable, t: float) -> _Pose:
    """Where the ego vehicle is at time ``t``, and the agents relative to it."""
    ego_xy = scene.ego_start + scene.ego_velocity * t
    c, s = np.cos(scene.ego_yaw), np.sin(scene.ego_yaw)
    to_vehicle = np.array([[c, s], [-s, c]])

    ego_z = float(ground(ego_xy[:1], ego_xy[1:])[0])
    agent_xy = agents.start + agents.velocity * t
    rel = (agent_xy - ego_xy) @ to_vehicle.T
    lift = ground(agent_xy[:, 0], agent_xy[:, 1]) - ego_z  # (A,) 0 on flat ground

    def terrain(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ground(ego_xy[0] + c * x - s * y, ego_xy[1] + s * x + c * y) - ego_z

    return _Pose(
        ego_xy=ego_xy,
        ego_yaw=scene.ego_yaw,
        ego_z=ego_z,
        to_vehicle=to_vehicle,
        rel=rel,
        lift=lift,
        dist=np.hypot(rel[:, 0], rel[:, 1]),
        terrain=terrain,
    )


def _frame_solids(
    agents: _Agents, statics: _Statics, pose: _Pose, max_range: float
) -> tuple[Solids, np.ndarray]:
    """The parts of agents and the static structures that may reach into the sensor's range,
    in the vehicle frame.

    Returns:
        ``(solids, seen)``: the boxes to cast rays against, and the agents among them.
    """
    seen = np.flatnonzero(pose.dist - agents.radius <= max_range)
    parts = np.flatnonzero(np.isin(agents.part_owner, seen))
    owner = agents.part_owner[parts]
    rot = _rz(agents.yaw[owner] - pose.ego_yaw)
    center = np.einsum("pij,pj->pi", rot, agents.part_center[parts])
    center[:, :2] += pose.rel[owner]
    center[:, 2] += pose.lift[owner]

    s_rel = (statics.center[:, :2] - pose.ego_xy) @ pose.to_vehicle.T
    near = np.flatnonzero(np.hypot(s_rel[:, 0], s_rel[:, 1]) - statics.radius <= max_range)
    solids = Solids(
        center=np.concatenate(
            [
                center,
                np.column_stack(
                    [s_rel[near], statics.center[near, 2] + statics.ground[near] - pose.ego_z]
                ),
            ]
        ),
        half=np.concatenate([agents.part_half[parts], statics.half[near]]),
        rotation=np.concatenate(
            [rot @ agents.part_rot[parts], _rz(statics.yaw[near] - pose.ego_yaw)]
        ),
        owner=np.concatenate([owner, np.full(len(near), HIT_STATIC)]),
        reflectivity=np.concatenate([agents.part_refl[parts], statics.refl[near]]),
    )
    return solids, seen


def _frame_spray(agents: _Agents, pose: _Pose, seen: np.ndarray) -> Solids:
    """The spray boxes of the agents in ``seen`` that throw spray, in the vehicle frame."""
    throw = seen[agents.sprays[seen]]
    rot_s = _rz(agents.yaw[throw] - pose.ego_yaw)
    spray_center = np.einsum("pij,pj->pi", rot_s, agents.spray_center[throw])
    spray_center[:, :2] += pose.rel[throw]
    spray_center[:, 2] += pose.lift[throw]
    return Solids(
        center=spray_center,
        half=agents.spray_half[throw],
        rotation=rot_s,
        owner=throw,
        reflectivity=np.full(len(throw), 0.02),
    )
