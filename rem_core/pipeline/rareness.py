"""What the rareness stage gives (:class:`RarenessRun`: the feature space, the density model and
log p of every object), with the one way it is written to and read from its cache entry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rem_core.density import DensityEstimator, FeatureReducer, load_estimator

__all__ = ["RarenessRun", "load_rareness", "write_rareness"]


@dataclass(frozen=True)
class RarenessRun:
    """The rareness stage's output: the feature space, the density model and log p of all.

    Attributes:
        path: the cache folder (``None`` until published).
        reducer: the fitted PCA + standardisation.
        estimator: the fitted density model.
        log_prob: ``(N,)`` float64 log-density of every detection of the detection run.
        gt_log_prob: ``(K,)`` float64 log-density of every ground-truth box (row order of
            the detection run's ``gt``; pedestrians and cyclists through the vehicle
            detector's features too; NaN for a box without features).
        meta: settings, fit size and time.
    """

    path: Path | None
    reducer: FeatureReducer
    estimator: DensityEstimator
    log_prob: np.ndarray
    gt_log_prob: np.ndarray
    meta: dict = field(repr=False)


def write_rareness(run: RarenessRun, tmp: Path) -> None:
    """Write ``run`` into the folder ``tmp`` (the cache entry's temporary folder)."""
    run.reducer.save(tmp / "reducer")
    run.estimator.save(tmp / "density")
    np.save(tmp / "log_prob.npy", run.log_prob)
    np.save(tmp / "gt_log_prob.npy", run.gt_log_prob)
    (tmp / "meta.json").write_text(json.dumps(run.meta, indent=2, default=str))


def load_rareness(path: str | Path) -> RarenessRun:
    """Read a rareness run written by :func:`write_rareness`."""
    path = Path(path)
    return RarenessRun(
        path=path,
        reducer=FeatureReducer.load(path / "reducer"),
        estimator=load_estimator(path / "density"),
        log_prob=np.load(path / "log_prob.npy"),
        gt_log_prob=np.load(path / "gt_log_prob.npy"),
        meta=json.loads((path / "meta.json").read_text()),
    )
