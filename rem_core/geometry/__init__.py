"""What a box is and how two overlap: the lowest layer the simulator, the detector, tracking,
evaluation and mining share.

Box convention (as Waymo): an ``(N, 7)`` float array ``center_x, center_y, center_z, length,
width, height, heading`` in metres and radians, geometric centre, ``length`` along the
heading, heading in [-pi, pi) counter-clockwise from +x.

* ``boxes``: corners, points inside boxes (``PointGrid``), size subsets (``size_subset``:
  Regular [3, 7) m, Large >= 7 m).
* ``iou``: rotated BEV IoU and 3D IoU of upright boxes, dense, paired and per frame
  (``iou_within_keys``), exact and vectorised.
* ``descriptors``: geometric descriptors of boxes (shape and the points inside), the
  features REM scores on data without a detector.
"""

from rem_core.geometry.boxes import (
    LARGE_MIN_M,
    PointGrid,
    as_boxes,
    bev_corners,
    bev_overlap,
    box_corners,
    count_points_in_boxes,
    expand_ranges,
    inside_pairs,
    points_in_box,
    size_subset,
    wrap_angle,
)
from rem_core.geometry.descriptors import (
    DESCRIPTOR_NAMES,
    box_descriptors,
)
from rem_core.geometry.iou import (
    IoUKind,
    bev_iou,
    bev_iou_pairs,
    bev_iou_within_keys,
    iou_3d,
    iou_3d_pairs,
    iou_within_keys,
)

__all__ = [
    "DESCRIPTOR_NAMES",
    "LARGE_MIN_M",
    "IoUKind",
    "PointGrid",
    "as_boxes",
    "bev_corners",
    "bev_iou",
    "bev_iou_pairs",
    "bev_iou_within_keys",
    "bev_overlap",
    "box_corners",
    "box_descriptors",
    "count_points_in_boxes",
    "expand_ranges",
    "inside_pairs",
    "iou_3d",
    "iou_3d_pairs",
    "iou_within_keys",
    "points_in_box",
    "size_subset",
    "wrap_angle",
]
