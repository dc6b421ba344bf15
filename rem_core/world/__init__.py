"""The synthetic LiDAR world: a built-in data set whose ground truth says which objects are rare.

Each segment is a few seconds of driving at ``frame_rate_hz`` through a grid of streets:
an ego vehicle follows its lane on the main road; parked and moving vehicles of a
long-tailed subtype mix, cyclists in bike lanes and pedestrians on sidewalks share the
streets with building walls, fences, poles and trees. A spinning LiDAR (``rem_core.world.lidar``)
sweeps the scene every frame; occlusion and sparsity come from ray casting alone.

Frames (the conventions of the Waymo Open Dataset):
    world: x east, y north, z up, metres; flat ground at z = 0.
    vehicle: x forward, y left, z up; origin on the ground below the ego's reference point;
        the LiDAR sits at ``(0, 0, lidar.sensor_height_m)``.
    Boxes are in the vehicle frame, ``heading`` in [-pi, pi) from +x counter-clockwise.

Every segment draws from its own generators seeded by ``(seed, segment index)``, so a
segment can be rebuilt alone and the world is identical for a seed.
"""

from rem_core.world.label_noise import NOISE_KINDS
from rem_core.world.lidar import (
    HIT_CLUTTER,
    HIT_GROUND,
    HIT_NONE,
    HIT_STATIC,
    Lidar,
    Solids,
    Sweep,
)
from rem_core.world.scene import (
    BIKE_LANE,
    LANE_WIDTH,
    PARKED_ONLY,
    PARKING_LANE,
    SIDEWALK,
)
from rem_core.world.segment import (
    EPOCH_MICROS,
    LABEL_CLEARANCE_M,
    Segment,
    plan_segments,
    simulate_segment,
)
from rem_core.world.shapes import (
    TOW_BED_Z,
    Shape,
    make_shape,
)
from rem_core.world.simulate import (
    simulate_world,
    write_world,
)

__all__ = [
    "BIKE_LANE",
    "EPOCH_MICROS",
    "HIT_CLUTTER",
    "HIT_GROUND",
    "HIT_NONE",
    "HIT_STATIC",
    "LABEL_CLEARANCE_M",
    "LANE_WIDTH",
    "NOISE_KINDS",
    "PARKED_ONLY",
    "PARKING_LANE",
    "SIDEWALK",
    "TOW_BED_Z",
    "Lidar",
    "Segment",
    "Shape",
    "Solids",
    "Sweep",
    "make_shape",
    "plan_segments",
    "simulate_segment",
    "simulate_world",
    "write_world",
]
