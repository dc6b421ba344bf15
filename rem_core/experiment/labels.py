"""A row's label set: the segments a retraining learns from and the boxes it learns."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.experiment.rows import ExperimentRow
from rem_core.mining import MiningPool, merge_labels, mine
from rem_core.schema import BOX_COLUMNS

__all__ = ["label_set"]


def label_set(
    row: ExperimentRow,
    config: RemConfig,
    dataset: Dataset,
    pool: MiningPool,
    seed: int = 0,
) -> tuple[list[str], pd.DataFrame, dict]:
    """The training segments and vehicle labels of ``row``.

    Returns:
        ``(segments, labels, stats)``: the segment ids to train on; the boxes to learn
        (``segment_id, frame_index``, the box columns, ``num_points``, ``label_noise``,
        ``source``: ``"source"``, ``"human"``, ``"pseudo"`` or ``"truth"``); and
        ``human_tracks``, ``human_boxes``, ``pseudo_boxes``.
    """
    source_ids, pool_ids = dataset.split_ids("source"), dataset.split_ids("unlabelled")
    columns = ["segment_id", "frame_index", *BOX_COLUMNS, "num_points", "label_noise"]
    boxes = dataset.boxes[dataset.boxes["class"] == "vehicle"]
    parts = [boxes.loc[boxes["segment_id"].isin(source_ids), columns].assign(source="source")]
    stats = {"human_tracks": 0, "human_boxes": 0, "pseudo_boxes": 0}
    if row.fill == "none":
        return source_ids, pd.concat(parts, ignore_index=True), stats
    if row.fill == "gt":
        truth = boxes.loc[boxes["segment_id"].isin(pool_ids), columns].assign(source="truth")
        stats["human_boxes"] = len(truth)
        pool_boxes = boxes.loc[boxes["segment_id"].isin(pool_ids)]
        stats["human_tracks"] = len(pool_boxes.drop_duplicates(["segment_id", "track_id"]))
        return source_ids + pool_ids, pd.concat([*parts, truth], ignore_index=True), stats

    exp = config.experiment
    if row.fill == "sl":
        pseudo = pool.detections[pool.detections["score"] >= exp.self_label_score]
    else:
        pseudo = pool.autolabels[pool.autolabels["score"] >= exp.auto_label_score]
    pseudo = pseudo[pseudo["class"] == "vehicle"]
    untracked = pseudo["track_id"].isna()
    if untracked.any():  # each its own track, so merging drops only what overlaps
        pseudo = pseudo.assign(
            track_id=pseudo["track_id"].where(
                ~untracked, "untracked-" + pseudo["detection_id"].astype(str)
            )
        )
    if row.method is None:
        kept = pseudo
        human = pool.gt.iloc[:0]
    else:
        budget = row.budget or config.mining.budget
        mining = replace(config.mining, budget=budget, seed=config.mining.seed + seed)
        mined = mine(pool, row.method, replace(config, mining=mining))
        merged = merge_labels(mined.result, pool.gt, pseudo)
        kept = merged[merged["source"] == "auto"]
        keys = pd.MultiIndex.from_frame(mined.result.tracks[["segment_id", "track_id"]])
        human = pool.gt[pd.MultiIndex.from_frame(pool.gt[["segment_id", "track_id"]]).isin(keys)]
        stats["human_tracks"] = len(mined.result.tracks)
    stats["human_boxes"], stats["pseudo_boxes"] = len(human), len(kept)
    human = human[columns].assign(source="human")
    kept = kept.assign(label_noise=False)[columns].assign(source="pseudo")
    labels = pd.concat([*parts, human, kept], ignore_index=True)
    return source_ids + pool_ids, labels, stats
