"""Reading public data formats into data sets, and a detector's detections into one.

* ``importers``: ``import_data`` (``rem import``) and the per-format importers: Waymo v1
  segment TFRecords, Waymo ``Objects`` files, Waymo v2 Parquet components, Argoverse 2
  sensor logs, KITTI tracking; ``segments`` finds each format's inputs and reads them as
  segments.
* ``waymo``, ``waymo_v2``, ``waymo_lidar``, ``tfrecord``, ``av2``, ``kitti``: the formats
  (the Waymo protos, ``waymo-open-dataset``, are an optional dependency, imported where
  they are read).
* ``detections``: a detector's detections as a table; ``attach``: storing them, with their
  features, beside a data set's tables (``rem import detections``).

``docs/io.md`` describes the formats, what each importer keeps, and the checks.
"""

from rem_core.io.attach import (
    DETECTION_FEATURES_FILE,
    DETECTIONS_FILE,
    attach_detections,
    detections_from_kitti,
    detections_from_waymo_objects,
)
from rem_core.io.av2 import (
    AV2_CLASSES,
    read_annotations,
    read_sweep,
)
from rem_core.io.detections import (
    check_features,
    read_detections,
)
from rem_core.io.importers import (
    IMPORTERS,
    import_av2,
    import_data,
    import_kitti_tracking,
    import_waymo,
    import_waymo_objects,
    import_waymo_v2,
)
from rem_core.io.kitti import (
    KITTI_CLASSES,
    camera_to_lidar,
    read_calib,
    read_kitti_detections,
    read_labels,
    sequence_length,
)
from rem_core.io.tfrecord import (
    masked_crc32c,
    read_records,
    write_records,
)
from rem_core.io.waymo import (
    WAYMO_TYPES,
    frame_boxes,
    frame_row,
    objects_from_boxes,
    read_frames,
    read_objects,
    write_objects,
)
from rem_core.io.waymo_lidar import (
    beam_inclinations,
    decode_matrix,
    encode_matrix,
    frame_points,
    points_to_range_image,
    range_image_to_points,
    rotation_from_rpy,
)
from rem_core.io.waymo_v2 import (
    read_lidar_box,
    read_lidar_points,
)

__all__ = [
    "AV2_CLASSES",
    "DETECTIONS_FILE",
    "DETECTION_FEATURES_FILE",
    "IMPORTERS",
    "KITTI_CLASSES",
    "WAYMO_TYPES",
    "attach_detections",
    "beam_inclinations",
    "camera_to_lidar",
    "check_features",
    "decode_matrix",
    "detections_from_kitti",
    "detections_from_waymo_objects",
    "encode_matrix",
    "frame_boxes",
    "frame_points",
    "frame_row",
    "import_av2",
    "import_data",
    "import_kitti_tracking",
    "import_waymo",
    "import_waymo_objects",
    "import_waymo_v2",
    "masked_crc32c",
    "objects_from_boxes",
    "points_to_range_image",
    "range_image_to_points",
    "read_annotations",
    "read_calib",
    "read_detections",
    "read_frames",
    "read_kitti_detections",
    "read_labels",
    "read_lidar_box",
    "read_lidar_points",
    "read_objects",
    "read_records",
    "read_sweep",
    "rotation_from_rpy",
    "sequence_length",
    "write_objects",
    "write_records",
]
