"""The density estimators' protocol, settings, persistence and shared flow training."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.config import Settings
from rem_core.errors import InputError

__all__ = [
    "DensityEstimator",
    "SolverStalled",
    "rareness",
    "standard_normal_log_prob",
]

logger = logging.getLogger(__name__)

_LOG_2PI = math.log(2.0 * math.pi)


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise InputError(f"{name}: {message}")


S = TypeVar("S", bound=Settings)


def _configure(kind: type[S], config: S | None, settings: dict[str, Any]) -> S:
    """An estimator's settings: ``config`` (default: ``kind()``, the defaults) with the
    keyword ``settings`` replacing its fields, checked by ``kind``'s rules.

    Raises:
        ValueError: ``config`` of another class, an unknown setting or a bad value, naming it
            (``gmm.n_components: must be an int >= 1, got 0``).
    """
    if config is None:
        config = kind()
    elif not isinstance(config, kind):
        raise InputError(
            f"{kind.section}: config must be a {kind.__name__}, got {type(config).__name__}"
        )
    return config.changed(**settings)


@runtime_checkable
class DensityEstimator(Protocol):
    """What every density estimator offers (scikit-learn manners, numpy in and out)."""

    def fit(self, X: np.ndarray) -> Self:
        """Fit to ``X``, ``(N, D)`` float32/float64; returns the estimator."""
        ...

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 natural-log density of each row of ``X`` ``(N, D)``."""
        ...

    def save(self, folder: str | Path) -> None:
        """Write ``density.pt`` (tensor state dict) and ``density.json`` to ``folder``."""
        ...

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save` (weights only, nothing unpickled)."""
        ...


def rareness(estimator: DensityEstimator, X: np.ndarray) -> np.ndarray:
    """Rareness of each row of ``X``: ``-log p(x)`` in nats (the paper's R(x)).

    Args:
        estimator: a fitted :class:`DensityEstimator`.
        X: ``(N, D)`` float32/float64 features.

    Returns:
        ``(N,)`` float64; higher is rarer.
    """
    return -estimator.score_samples(X)


def _as_matrix(X: Any, n_features: int | None = None) -> np.ndarray:
    """Validate ``X`` as a finite ``(N, D)`` float array; raise ``ValueError`` naming the fault."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InputError(f"X: not convertible to an array ({exc})") from None
    _check(arr.ndim == 2, "X", f"must be a 2-D array (N, D), got shape {arr.shape}")
    _check(
        arr.dtype.kind in "fiu",
        "X",
        f"must be a numeric (float) array, got dtype {arr.dtype}",
    )
    _check(arr.shape[0] >= 1 and arr.shape[1] >= 1, "X", f"is empty, shape {arr.shape}")
    _check(bool(np.isfinite(arr).all()), "X", "contains NaN or infinite values")
    if n_features is not None:
        _check(
            arr.shape[1] == n_features,
            "X",
            f"has {arr.shape[1]} features (D), the estimator was fitted with {n_features}",
        )
    return arr.astype(np.float64, copy=False)


def _require_fitted(est: Any) -> int:
    d = getattr(est, "n_features_in_", None)
    if d is None:
        raise InputError(f"{type(est).__name__}: not fitted; call fit(X) first")
    return int(d)


def _write(folder: str | Path, kind: str, settings: dict, state: dict[str, Tensor], **extra: Any):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".density.pt.tmp"
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    tmp.replace(folder / "density.pt")
    info = {"estimator": kind, "settings": settings, **extra}
    tmp = folder / ".density.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(folder / "density.json")


def _write_flow(folder: str | Path, est: Any, module: nn.Module) -> None:
    """Write a fitted flow ``est``: ``module``'s state dict, the settings, ``D`` and the
    training history (``est.history_``)."""
    history = [asdict(r) for r in est.history_]
    settings = asdict(est.config)
    _write(
        folder,
        est.kind,
        settings,
        module.state_dict(),
        n_features_in=est.n_features_in_,
        history=history,
    )


def _read(folder: str | Path, kind: str | None) -> tuple[dict, dict[str, Tensor]]:
    folder = Path(folder)
    try:
        info = json.loads((folder / "density.json").read_text())
        found = info["estimator"]
        info["settings"]
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{folder}: not a saved density estimator ({exc})") from None
    if kind is not None and found != kind:
        raise InputError(f"{folder}: holds a {found!r} estimator, not {kind!r}")
    # Any error of the load is a file that is not loadable tensors: a damaged zip
    # (RuntimeError), an empty file (EOFError), a payload the weights-only loader refuses
    # (pickle's UnpicklingError, caught as such without importing pickle), a missing file.
    try:
        state = torch.load(folder / "density.pt", weights_only=True, map_location="cpu")
    except Exception as exc:
        raise InputError(f"{folder}: cannot load the estimator's tensors ({exc})") from None
    return info, state


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``(B,)`` log N(z; 0, I) of ``z`` ``(B, D)``."""
    return -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * _LOG_2PI)


class SolverStalled(RuntimeError):
    """An ODE solve exceeded its budget of function evaluations (stiff learned dynamics)."""
