"""TODO"""

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
