"""A compact bird's-eye-view (BEV) vehicle detector, its ensemble and ROI-pooled features.

Points become a voxel grid in BEV (per cell: counts in height slices, height and intensity
statistics, range); a small CNN (two scales, PointPillars/CenterPoint style) turns it into a
feature map at twice the cell size; a CenterPoint head predicts a vehicle-centre heatmap and,
per cell, the centre offset, z, log size, the box axis as sin/cos of twice the heading
(free of the front/back ambiguity of near-symmetric vehicles) and a front/back direction
logit (as SECOND's direction classifier). REM's features are the
final feature map max-pooled inside each box (paper section 3.1).

Grid convention: cell ``(i, j)`` of the input grid covers
``x in [-R + i c, -R + (i + 1) c)`` and ``y in [-R + j c, -R + (j + 1) c)`` (vehicle frame,
``R = range_m``, ``c = cell_m``); tensors are ``(C, H, W)`` with H along x and W along y.
"""

from rem_core.detect.augment import (
    ObjectDatabase,
    build_object_database,
    crop_window,
    move_frame,
    paste_objects,
)
from rem_core.detect.decode import decode_boxes
from rem_core.detect.diagnose import (
    box_errors,
    summarize_box_errors,
)
from rem_core.detect.infer import (
    DetectionSet,
    detect,
    detect_ensemble,
    ensemble_scores,
)
from rem_core.detect.model import (
    N_HEAD,
    N_INPUT,
    STRIDE,
    Z_EDGES,
    BevDetector,
    bev_grid,
    load_detector,
    save_detector,
)
from rem_core.detect.roi import (
    feature_map,
    pool_roi_features,
)
from rem_core.detect.train import (
    default_steps,
    train_detector,
    train_detectors,
)

__all__ = [
    "N_HEAD",
    "N_INPUT",
    "STRIDE",
    "Z_EDGES",
    "BevDetector",
    "DetectionSet",
    "ObjectDatabase",
    "bev_grid",
    "box_errors",
    "build_object_database",
    "crop_window",
    "decode_boxes",
    "default_steps",
    "detect",
    "detect_ensemble",
    "ensemble_scores",
    "feature_map",
    "load_detector",
    "move_frame",
    "paste_objects",
    "pool_roi_features",
    "save_detector",
    "summarize_box_errors",
    "train_detector",
    "train_detectors",
]
