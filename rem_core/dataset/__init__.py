"""The on-disk data set every stage reads: a folder of Parquet tables and per-segment points.

Layout (``docs/data-format.md`` is the full contract)::

    DIR/
      dataset.json             format name and version, what made it, counts, and the
                               size and SHA-256 of every file below (``content``)
      segments.parquet         SEGMENTS schema: one row per segment with its split
      frames.parquet           FRAMES schema: one row per frame with the ego pose
      boxes.parquet            BOXES schema: ground-truth boxes with track ids
      points/<segment_id>.parquet   POINTS schema: x, y, z, intensity by frame_index

A data set is written into a temporary sibling folder and renamed into place when complete,
so a crash never leaves a half-written data set under the final name (``DatasetWriter``).
``Dataset.content_key`` is what it holds, wherever it is and whatever made it.
"""

from rem_core.dataset.folder import (
    DATASET_FORMAT,
    DATASET_VERSION,
    Dataset,
    summarize_tracks,
)
from rem_core.dataset.writer import DatasetWriter, write_parquet_folder

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "Dataset",
    "DatasetWriter",
    "summarize_tracks",
    "write_parquet_folder",
]
