"""The estimators by short name, and the one fit of the feature reducer and density model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rem_core.config import RarenessConfig
from rem_core.density.base import DensityEstimator, _read
from rem_core.density.baselines import GaussianDensity, GaussianMixtureDensity, KNNDensity
from rem_core.density.ffjord import FFJORD
from rem_core.density.realnvp import RealNVP
from rem_core.density.reduce import FeatureReducer
from rem_core.density.training import epoch_progress
from rem_core.errors import InputError

__all__ = ["ESTIMATOR_CLASSES", "estimator_for", "fit_density", "load_estimator", "make_estimator"]

#: Short names (``rareness.estimator``, the CLI's ``--estimator``); each maps to a class whose
#: keyword settings ``make_estimator`` passes.
ESTIMATOR_CLASSES: dict[str, type] = {
    "ffjord": FFJORD,
    "gaussian": GaussianDensity,
    "gmm": GaussianMixtureDensity,
    "knn": KNNDensity,
    "realnvp": RealNVP,
}


def make_estimator(name: str, **settings: Any) -> DensityEstimator:
    """An unfitted estimator by short name (``ffjord``, ``gaussian``, ``gmm``, ``knn``,
    ``realnvp``) with keyword settings, e.g. ``make_estimator("knn", k=5)``.

    Raises:
        ValueError: an unknown name, an unknown setting or a bad value (naming the field,
            ``knn.k: must be an int >= 1, got 0``).
    """
    if name not in ESTIMATOR_CLASSES:
        raise InputError(
            f"density.estimator: unknown {name!r}; known: {', '.join(ESTIMATOR_CLASSES)}"
        )
    try:
        return ESTIMATOR_CLASSES[name](**settings)
    except TypeError as exc:
        raise InputError(f"density.{name}: bad settings ({exc})") from None


def load_estimator(folder: str | Path) -> DensityEstimator:
    """Load whichever estimator :meth:`save` wrote to ``folder``."""
    info, _ = _read(folder, None)
    kind = info["estimator"]
    if kind not in ESTIMATOR_CLASSES:
        raise InputError(f"{folder}: unknown estimator {kind!r}")
    return ESTIMATOR_CLASSES[kind].load(folder)


def estimator_for(rareness: RarenessConfig) -> DensityEstimator:
    """The unfitted estimator ``rareness.estimator`` names, with its settings from
    ``rareness`` (``density`` for FFJORD, ``gaussian``, ``gmm``, ``knn`` or ``realnvp``).

    What the pipeline fits; ``RarenessConfig.with_estimator_settings`` changes them.
    """
    return make_estimator(rareness.estimator, **rareness.estimator_settings())


def fit_density(
    features: np.ndarray,
    rareness: RarenessConfig,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[FeatureReducer, DensityEstimator]:
    """The PCA reducer (:class:`FeatureReducer`) and the density model of
    ``rareness`` fitted on ``features`` (``(N, C)``): what the pipeline's rareness stage and
    a pool's fit on a sample (``rem_core.pool``) both fit. A flow calls
    ``progress(epoch, max_epochs)`` after each epoch (``training.epoch_progress``).

    Features with fewer independent dimensions than ``rareness.k`` (geometric descriptors
    without points) keep as many components as they have dimensions of variation (judged
    on the first 5,000 rows).
    """
    sample = features[:5000].astype(np.float64)
    k = min(rareness.k, int(np.linalg.matrix_rank(sample - sample.mean(0), tol=1e-6)))
    reducer = FeatureReducer(k=max(k, 1), seed=rareness.density.seed).fit(features)
    estimator = estimator_for(rareness)
    with epoch_progress(progress):
        estimator.fit(reducer.transform(features))
    return reducer, estimator
