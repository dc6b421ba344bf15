"""REM's feature space: PCA to the top ``k`` components, then standardisation (paper eqs. 1-2).

ROI-pooled detector features (``(N, C)`` float32, see ``rem_core.detect``) are projected on
their top ``k`` principal directions and each component is scaled to zero mean and unit
variance, so that the density model sees a compact, well-conditioned space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
from sklearn.decomposition import PCA

from rem_core.errors import InputError

__all__ = ["FeatureReducer"]


class FeatureReducer:
    """PCA then per-component standardisation, with scikit-learn manners.

    ``z = (W^T (x - mu) - m) / s``: ``W`` the top ``k`` principal directions, ``mu`` the
    feature mean, ``m`` and ``s`` the mean and standard deviation of the projections.

    Args:
        k: components kept (paper default 16); at most the feature dimension.
        seed: seed of the randomised PCA solver, when scikit-learn picks it.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(500, 32)).astype(np.float32)
        >>> Z = FeatureReducer(k=4).fit(X).transform(X)
        >>> Z.shape, bool(np.allclose(Z.std(0), 1, atol=1e-3))
        ((500, 4), True)
    """

    def __init__(self, *, k: int = 16, seed: int = 0) -> None:
        self.k = k
        self.seed = seed

    def _check(self, X: np.ndarray, fitted: bool) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputError(f"X: expected an (N, D) feature matrix, got shape {X.shape}")
        if not np.isfinite(X).all():
            row = int(np.flatnonzero(~np.isfinite(X).all(1))[0])
            raise InputError(f"X: row {row} has a non-finite feature")
        if fitted and X.shape[1] != self.mean_.shape[0]:
            raise InputError(
                f"X: expected {self.mean_.shape[0]} features (as fitted), got {X.shape[1]}"
            )
        return X.astype(np.float64)

    def fit(self, X: np.ndarray) -> Self:
        """Fit on ``(N, D)`` features (paper: the source and unlabelled pools together)."""
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"k: must be an int >= 1, got {self.k!r}")
        X = self._check(X, fitted=False)
        if self.k > min(X.shape):
            raise InputError(
                f"k: {self.k} components need at least {self.k} rows and features, "
                f"got X of shape {X.shape}"
            )
        pca = PCA(n_components=self.k, random_state=self.seed).fit(X)
        self.mean_ = pca.mean_
        self.components_ = pca.components_  # (k, D)
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        proj = (X - self.mean_) @ self.components_.T
        self.proj_mean_ = proj.mean(0)
        self.proj_std_ = np.maximum(proj.std(0), 1e-12)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(N, k)`` float32 standardised components of ``(N, D)`` features."""
        if not hasattr(self, "mean_"):
            raise InputError("FeatureReducer: call fit before transform")
        X = self._check(X, fitted=True)
        proj = (X - self.mean_) @ self.components_.T
        return ((proj - self.proj_mean_) / self.proj_std_).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def save(self, folder: str | Path) -> None:
        """Write ``reducer.npz`` (arrays, no pickle) and ``reducer.json`` (settings)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".reducer.tmp.npz"
        np.savez(
            tmp,
            mean=self.mean_,
            components=self.components_,
            ratio=self.explained_variance_ratio_,
            proj_mean=self.proj_mean_,
            proj_std=self.proj_std_,
        )
        tmp.replace(folder / "reducer.npz")
        (folder / "reducer.json").write_text(json.dumps({"k": self.k, "seed": self.seed}))

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a reducer written by :meth:`save`."""
        folder = Path(folder)
        try:
            settings = json.loads((folder / "reducer.json").read_text())
            with np.load(folder / "reducer.npz", allow_pickle=False) as arrays:
                out = cls(**settings)
                out.mean_ = arrays["mean"]
                out.components_ = arrays["components"]
                out.explained_variance_ratio_ = arrays["ratio"]
                out.proj_mean_ = arrays["proj_mean"]
                out.proj_std_ = arrays["proj_std"]
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{folder}: not a saved FeatureReducer ({exc})") from None
        return out
