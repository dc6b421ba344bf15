"""What every feature source is: one way to compute the detection stage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline.outputs import DetectionRun, StageCall

__all__ = ["FeatureSource"]


class FeatureSource(ABC):
    """One way to compute the detection stage: detections, features, ensemble scores,
    tracks and auto-labels of every segment.

    Class attributes say what a run of the source can show:

    Attributes:
        name: the source's name in ``FeatureConfig.source`` and in a run's meta.
        label: what it scores, for a reader (a short noun phrase; ``needs`` says more).
        trains_detector: whether it trains (or copies) our detector ensemble first.
        ensemble: whether its runs hold more than one score per detection, so that the
            score variance (M-REM, MD-REM's easy filter) means something.
        own_gt_features: whether ground-truth boxes get features of their own; else they
            borrow their best-overlapping detection's, and a missed box has none.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    trains_detector: ClassVar[bool] = False
    ensemble: ClassVar[bool] = False
    own_gt_features: ClassVar[bool] = True

    @abstractmethod
    def detect(self, config: RemConfig, dataset: Dataset, call: StageCall) -> DetectionRun:
        """Compute the detection stage's main part: detections, features, tracks and
        auto-labels, the main model's scores (``path`` ``None``: the caller publishes it).
        A source with an ensemble leaves its members' score columns NaN for
        :meth:`score_members`."""

    def score_members(
        self, config: RemConfig, dataset: Dataset, run: DetectionRun, call: StageCall
    ) -> tuple[np.ndarray, dict]:
        """Every member's score of each of ``run``'s detections (``(N, M)``, the shape of
        ``run.scores``) and what to record of it; the stage's second part, published after
        the analyses that need only the main part can run. Without an ensemble: the
        scores ``detect`` gave."""
        return run.scores, {"members": run.scores.shape[1]}

    def needs(self, config: RemConfig) -> str:
        """What the source computes, for a sentence ("The analyses need ...")."""
        return self.label

    def ready(self, config: RemConfig, dataset: Dataset, root: Path) -> bool:
        """Whether what the source needs before detecting is cached (true if nothing)."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
