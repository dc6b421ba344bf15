"""Multi-object tracking of detections and offboard auto-labelling of the tracks.

Box convention (as Waymo, see ``rem_core.geometry.boxes``): ``center_x, center_y, center_z, length,
width, height, heading`` in metres and radians, geometric centre, ``length`` along the
heading, heading in [-pi, pi) counter-clockwise from +x. Tables keep their boxes in the
vehicle frame of their own frame; tracking and smoothing happen in the segment's fixed
world frame, reached through each frame's vehicle-to-world pose (``FRAMES`` table).

* ``track_detections``: a constant-velocity Kalman filter per track on the BEV centre
  ``(x, y, vx, vy)`` in the world frame, Hungarian matching on the centre distance to the
  predicted position with a gate, two association passes (confident detections first, then
  low-score ones, which may extend tracks but never start them), death after
  ``max_missed`` frames without a match.
* ``tracking_metrics``: ID switches, fragmentations, purity and mostly-tracked ratio against
  ground-truth track ids, on score-first greedy BEV IoU matching
  (``rem_core.evaluation.evaluate_detections``).
* ``auto_label``: offboard refinement that sees each whole track, past and future (after
  Qi et al. 2021, "Offboard 3D object detection from point cloud sequences"): one size per
  object, Rauch-Tung-Striebel smoothed centres, headings resolved modulo pi and aligned
  with the motion, static objects held at one pose, short gaps filled.
* ``simulate_detections``: noisy single-frame detections made from ground-truth boxes, a
  stand-in detector for tests and benchmarks.

``docs/tracking.md`` describes the method, the settings and measured figures.
"""

from rem_core.track.autolabel import auto_label
from rem_core.track.metrics import (
    TrackingMetrics,
    tracking_metrics,
)
from rem_core.track.simulate import simulate_detections
from rem_core.track.tracker import track_detections

__all__ = [
    "TrackingMetrics",
    "auto_label",
    "simulate_detections",
    "track_detections",
    "tracking_metrics",
]
