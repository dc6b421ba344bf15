"""Baselines: a full-covariance Gaussian, a Gaussian mixture, k-nearest-neighbour distance."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from rem_core.config import GaussianConfig, GMMConfig, KNNConfig
from rem_core.density.base import (
    _LOG_2PI,
    _as_matrix,
    _check,
    _configure,
    _read,
    _require_fitted,
    _write,
)
from rem_core.errors import InputError

__all__ = [
    "GaussianDensity",
    "GaussianMixtureDensity",
    "KNNDensity",
]

logger = logging.getLogger(__name__)


class GaussianDensity:
    """A single Gaussian with full covariance, fitted in closed form.

    Args:
        config: settings as one :class:`~rem_core.config.GaussianConfig` (optional).
        **settings: its fields, replacing those of ``config``: ``reg``, added to the
            covariance diagonal for numerical stability (variance units; default 1e-6).

    Attributes:
        config: the settings.
        mean_: ``(D,)`` float64 sample mean.
        covariance_: ``(D, D)`` float64 sample covariance plus ``reg * I``.
        n_features_in_: ``D``.
    """

    kind: ClassVar[str] = "gaussian"

    def __init__(self, config: GaussianConfig | None = None, **settings: Any) -> None:
        self.config = _configure(GaussianConfig, config, settings)

    def fit(self, X: np.ndarray) -> Self:
        """Fit mean and covariance to ``X`` ``(N, D)``; returns ``self``."""
        X = _as_matrix(X)
        d = X.shape[1]
        self.mean_ = X.mean(axis=0)
        cov = np.atleast_2d(np.cov(X, rowvar=False, bias=True)) if len(X) > 1 else np.zeros((d, d))
        self.covariance_ = cov + self.config.reg * np.eye(d)
        self.n_features_in_ = d
        self._factor()
        return self

    def _factor(self) -> None:
        from scipy.linalg import cholesky

        try:
            self._chol = cholesky(self.covariance_, lower=True)
        except np.linalg.LinAlgError:
            raise InputError(
                "gaussian.reg: the covariance is singular; increase reg (e.g. 1e-3)"
            ) from None
        self._log_det = 2.0 * np.log(np.diag(self._chol)).sum()

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 log N(x; mean_, covariance_) of each row of ``X`` ``(N, D)``."""
        from scipy.linalg import solve_triangular

        X = _as_matrix(X, _require_fitted(self))
        white = solve_triangular(self._chol, (X - self.mean_).T, lower=True)
        d = self.n_features_in_
        return -0.5 * ((white**2).sum(axis=0) + self._log_det + d * _LOG_2PI)

    def save(self, folder: str | Path) -> None:
        """Write ``density.pt`` and ``density.json`` to ``folder``."""
        _require_fitted(self)
        state = {"mean": torch.from_numpy(self.mean_), "cov": torch.from_numpy(self.covariance_)}
        _write(folder, self.kind, dataclasses.asdict(self.config), state)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save`."""
        info, state = _read(folder, cls.kind)
        est = cls(**info["settings"])
        est.mean_ = state["mean"].numpy().astype(np.float64)
        est.covariance_ = state["cov"].numpy().astype(np.float64)
        est.n_features_in_ = est.mean_.shape[0]
        est._factor()
        return est


class GaussianMixtureDensity:
    """A Gaussian mixture fitted by EM (``sklearn.mixture.GaussianMixture``).

    Args:
        config: settings as one :class:`~rem_core.config.GMMConfig` (optional).
        **settings: its fields, replacing those of ``config``: ``n_components`` (8),
            ``covariance_type`` (``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``),
            ``reg_covar`` (1e-6, added to covariance diagonals), ``max_iter`` (200 EM
            iterations), ``n_init`` (1 EM start; the best is kept), ``seed`` (0, of the
            k-means initialisation).

    Attributes:
        config: the settings.
        mixture_: the fitted ``GaussianMixture``; its arrays (``weights_``, ``means_``,
            ``covariances_``, ``precisions_cholesky_``) are what :meth:`save` stores.
        n_features_in_: ``D``.
    """

    kind: ClassVar[str] = "gmm"
    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "weights_",
        "means_",
        "covariances_",
        "precisions_cholesky_",
        "precisions_",
    )

    def __init__(self, config: GMMConfig | None = None, **settings: Any) -> None:
        self.config = _configure(GMMConfig, config, settings)

    def _mixture(self):
        from sklearn.mixture import GaussianMixture

        c = self.config
        return GaussianMixture(
            n_components=c.n_components,
            covariance_type=c.covariance_type,
            reg_covar=c.reg_covar,
            max_iter=c.max_iter,
            n_init=c.n_init,
            random_state=c.seed,
        )

    def fit(self, X: np.ndarray) -> Self:
        """Fit the mixture to ``X`` ``(N, D)`` (needs ``N >= n_components``); returns ``self``."""
        X = _as_matrix(X)
        n = self.config.n_components
        _check(
            len(X) >= n,
            "gmm.n_components",
            f"{n} components need at least as many rows, got N={len(X)}",
        )
        self.mixture_ = self._mixture().fit(X)
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 log mixture density of each row of ``X`` ``(N, D)``."""
        X = _as_matrix(X, _require_fitted(self))
        return self.mixture_.score_samples(X).astype(np.float64)

    def save(self, folder: str | Path) -> None:
        """Write the mixture's arrays to ``density.pt`` and its settings to ``density.json``."""
        _require_fitted(self)
        state = {k: torch.from_numpy(np.asarray(getattr(self.mixture_, k))) for k in self._ARRAYS}
        settings = dataclasses.asdict(self.config)
        _write(folder, self.kind, settings, state, n_features_in=self.n_features_in_)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Rebuild the mixture from its saved arrays (no pickle)."""
        info, state = _read(folder, cls.kind)
        est = cls(**info["settings"])
        mixture = est._mixture()
        for key in cls._ARRAYS:
            setattr(mixture, key, state[key].numpy().astype(np.float64))
        mixture.converged_ = True
        mixture.n_iter_ = 0
        mixture.lower_bound_ = float("nan")
        mixture.n_features_in_ = int(info["n_features_in"])
        est.mixture_ = mixture
        est.n_features_in_ = int(info["n_features_in"])
        return est


class KNNDensity:
    """k-nearest-neighbour density score (unnormalised).

    ``log p(x) = log k - log N - log V_D - D log r_k(x)``, where ``r_k`` is the Euclidean
    distance from ``x`` to its k-th nearest training point and ``V_D`` the volume of the unit
    D-ball. This is the classic kNN density estimate; it does not integrate to one, so treat
    it as a score: only its ordering (and differences) are meaningful. A training point
    counts itself as its own first neighbour. Distances are floored at 1e-12.

    Args:
        config: settings as one :class:`~rem_core.config.KNNConfig` (optional).
        **settings: its fields, replacing those of ``config``: ``k`` (10), the neighbour
            rank whose distance is used.

    Attributes:
        config: the settings.
        points_: ``(N, D)`` float64 training points (what :meth:`save` stores).
        n_features_in_: ``D``.
    """

    kind: ClassVar[str] = "knn"

    def __init__(self, config: KNNConfig | None = None, **settings: Any) -> None:
        self.config = _configure(KNNConfig, config, settings)

    def fit(self, X: np.ndarray) -> Self:
        """Index the rows of ``X`` ``(N, D)``, ``N >= k``; returns ``self``."""
        X = _as_matrix(X)
        k = self.config.k
        _check(len(X) >= k, "knn.k", f"needs at least k={k} rows, got N={len(X)}")
        self.points_ = X.copy()
        self.n_features_in_ = X.shape[1]
        self._index()
        return self

    def _index(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        self._nn = NearestNeighbors(n_neighbors=self.config.k).fit(self.points_)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 unnormalised log density of each row of ``X`` ``(N, D)``."""
        from scipy.special import gammaln

        X = _as_matrix(X, _require_fitted(self))
        k = self.config.k
        dist, _ = self._nn.kneighbors(X, n_neighbors=k)
        r = np.maximum(dist[:, -1], 1e-12)
        d = self.n_features_in_
        log_unit_ball = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1)
        const = math.log(k) - math.log(len(self.points_)) - log_unit_ball
        return const - d * np.log(r)

    def save(self, folder: str | Path) -> None:
        """Write the training points to ``density.pt`` and ``k`` to ``density.json``."""
        _require_fitted(self)
        points = {"points": torch.from_numpy(self.points_)}
        _write(folder, self.kind, dataclasses.asdict(self.config), points)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save` and rebuild its index."""
        info, state = _read(folder, cls.kind)
        est = cls(**info["settings"])
        est.points_ = state["points"].numpy().astype(np.float64)
        est.n_features_in_ = est.points_.shape[1]
        est._index()
        return est
