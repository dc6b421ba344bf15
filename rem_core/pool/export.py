"""The pipeline's unlabelled pool as a pool folder, to score and mine it part by part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rem_core.errors import InputError
from rem_core.pipeline import ensure_detections
from rem_core.pool.folder import DETECTION_COLUMNS, GT_COLUMNS, TRACK_COLUMN, Pool, write_pool

__all__ = ["export_pool"]


def export_pool(
    config: Any,
    dataset: Any,
    folder: str | Path,
    *,
    parts: int = 8,
    root: Path | None = None,
    progress: Any = None,
    client: Any = None,
) -> Pool:
    """Write the unlabelled pool of ``config``'s pipeline on ``dataset`` as a pool folder of
    ``parts`` parts of consecutive segments (running the detection stage if it is not
    cached): the rows mining sees (``pipeline.ensure_mining_pool``: detections scoring at
    least ``rareness.min_score``, in their order, with their predicted tracks and features;
    the pool's vehicle boxes as ground truth)."""

    if parts < 1:
        raise InputError(f"parts: must be >= 1, got {parts}")
    run = ensure_detections(config, dataset, root, progress, client=client)
    pool_ids = list(dataset.split_ids("unlabelled"))
    det, gt = run.detections, run.gt
    rows = np.flatnonzero(
        det["segment_id"].isin(pool_ids).to_numpy()
        & (det["score"].to_numpy() >= config.rareness.min_score)
    )
    gt_rows = np.flatnonzero(
        gt["segment_id"].isin(pool_ids).to_numpy() & (gt["class"] == "vehicle").to_numpy()
    )
    # Parts of consecutive segments, in the order the pool's rows first name them, so the
    # parts in order hold the rows in the mining pool's order when the rows are grouped by
    # segment (the detection stage writes them so).
    order = list(dict.fromkeys(det["segment_id"].iloc[rows]))
    seen = set(order)
    order += [s for s in dict.fromkeys(gt["segment_id"].iloc[gt_rows]) if s not in seen]
    groups = [list(g) for g in np.array_split(np.array(order, object), min(parts, len(order)))]
    det_seg = det["segment_id"].iloc[rows].to_numpy()
    gt_seg = gt["segment_id"].iloc[gt_rows].to_numpy()
    columns = DETECTION_COLUMNS + [TRACK_COLUMN]

    def make_part(p: int):
        mine, truth = rows[np.isin(det_seg, groups[p])], gt_rows[np.isin(gt_seg, groups[p])]
        return (
            det[columns].iloc[mine].reset_index(drop=True),
            run.features[mine],
            gt[GT_COLUMNS].iloc[truth].reset_index(drop=True),
        )

    return write_pool(folder, make_part, len(groups))
