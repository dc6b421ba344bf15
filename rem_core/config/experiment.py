"""Settings of the active-learning experiment and of where REM's features come from."""

from __future__ import annotations

from dataclasses import dataclass

from rem_core.config.names import EXPERIMENT_ROW_NAMES, FEATURE_SOURCES, PRECISIONS
from rem_core.config.rules import Check, Settings, integer, number, one_of, require, setting

__all__ = ["ExperimentConfig", "FeatureConfig"]


def _divides_100(width: float) -> bool:
    return 0 < width <= 100 and (100 / width) % 1 == 0


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig(Settings):
    """The active-learning experiment (paper Tables 2 and 3; ``rem_core.experiment.runs``).

    Attributes:
        rows: the table's rows to run (``EXPERIMENT_ROW_NAMES``).
        seeds: runs per row (seeds 0 .. seeds - 1 of the weights, the data order and Random).
        detector_epochs: the experiment's detector recipe: the pipeline's detector settings
            with this many epochs (``None``: the pipeline's own). The ensemble that mines,
            self-labels and auto-labels is trained with it on the source pool, and every
            retraining takes its number of optimiser steps, ``ceil(source frames /
            batch_size) * epochs``, whatever the row's label set: every row costs the same
            and gains only from what its labels hold.
        detector_precision: the training precision of that recipe (``detector.precision``;
            ``None``: the pipeline's own). ``auto`` (bfloat16 on this machine) costs Large
            AP (docs/detector.md measures it) and saves little time on crops.
        steps: the optimiser steps of every retraining, overriding the recipe's. The demo
            preset sets neither recipe field and ``steps=4800``: it mines with the app's
            pipeline and retrains every row for 4,800 steps in fp32.
        self_label_score: the main model's detections at least this sure become self-labels.
        auto_label_score: auto-labels at least this sure are kept.
        iou_threshold: IoU of a true positive in the evaluation (the paper's 0.5).
        iou: ``"3d"`` or ``"bev"`` IoU.
        curve_bin_width: percentile bins of the recall-by-rareness curves.
        ema_decay: each retraining returns the exponential moving average of its weights
            with this decay (0: the last step's weights; see ``train_detector``).
    """

    section = "experiment"

    rows: tuple[str, ...] = setting(
        EXPERIMENT_ROW_NAMES, Check(lambda v: isinstance(v, tuple), "must be a tuple of row names")
    )
    seeds: int = integer(3, "[0, 100]")
    detector_epochs: int | None = integer(None, "[1, 1000]", optional=True)
    detector_precision: str | None = one_of(None, PRECISIONS, optional=True)
    steps: int | None = integer(None, "[1, inf)", optional=True)
    self_label_score: float = number(0.5, "[0, 1]")
    auto_label_score: float = number(0.5, "[0, 1]")
    iou_threshold: float = number(0.5, "(0, 1)")
    iou: str = one_of("3d", ("3d", "bev"))
    curve_bin_width: float = setting(5.0, Check(_divides_100, "must divide 100"))
    ema_decay: float = number(0.0, "[0, 1)")

    def _validate(self) -> None:
        for row in self.rows:
            require(
                row in EXPERIMENT_ROW_NAMES,
                "experiment.rows",
                f"unknown row {row!r}; known: {', '.join(EXPERIMENT_ROW_NAMES)}",
            )
        require(len(set(self.rows)) == len(self.rows), "experiment.rows", "a row appears twice")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig(Settings):
    """Where the features REM scores come from.

    Attributes:
        source: ``"detector"`` (the paper's: ROI-pooled features of our BEV detector
            ensemble, trained on the source pool) or ``"geometry"`` (geometric box
            descriptors, ``rem_core.geometry.descriptors``, for data without point clouds to train
            a detector on, such as imported labels: the ground-truth boxes stand in for
            detections, each with its own track and score 1), or ``"imported"`` (the
            features a researcher's own detector gave its detections, stored by ``rem
            import detections --features``; the density is fitted on them, and a
            ground-truth box takes the features of the detection that best overlaps it,
            none when missed).
    """

    section = "features"

    source: str = one_of("detector", FEATURE_SOURCES)
