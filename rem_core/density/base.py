"""The density estimators' protocol, settings, persistence and shared flow training."""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.config import DensityConfig, RealNVPConfig, Settings

__all__ = [
    "BatchLoss",
    "DensityEstimator",
    "EpochRecord",
    "SolverStalled",
    "rareness",
    "standard_normal_log_prob",
]

logger = logging.getLogger(__name__)

_LOG_2PI = math.log(2.0 * math.pi)


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}")


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
        raise ValueError(
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
        raise ValueError(f"X: not convertible to an array ({exc})") from None
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
        raise ValueError(f"{type(est).__name__}: not fitted; call fit(X) first")
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
        raise ValueError(f"{folder}: not a saved density estimator ({exc})") from None
    if kind is not None and found != kind:
        raise ValueError(f"{folder}: holds a {found!r} estimator, not {kind!r}")
    try:
        state = torch.load(folder / "density.pt", weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{folder}: cannot load the estimator's tensors ({exc})") from None
    return info, state


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch of a flow.

    Attributes:
        epoch: 1-based epoch number.
        train_nll: mean training NLL (nats per row; Hutchinson estimate for FFJORD), without
            any regularisation penalty.
        val_nll: mean held-out NLL (nats per row), NaN without a held-out split.
        nfe: mean function evaluations per training batch (forward solve; 0 for RealNVP).
        seconds: wall time of the epoch.
        stalled: the epoch was cut short because an ODE solve raised :class:`SolverStalled`;
            its NLLs are NaN and training stopped there.
        kinetic: mean RNODE kinetic energy ``integral ||f||^2 dt`` per training row, NaN when
            not computed (FFJORD without regularisation, other estimators).
        jacobian: mean RNODE Jacobian penalty ``integral ||eps^T df/dz||^2 dt`` per row, NaN
            when not computed.
    """

    epoch: int
    train_nll: float
    val_nll: float
    nfe: float
    seconds: float
    stalled: bool = False
    kinetic: float = math.nan
    jacobian: float = math.nan


@dataclass(frozen=True)
class BatchLoss:
    """What a flow's ``batch_loss`` returns for one mini-batch.

    Attributes:
        loss: the scalar to minimise (NLL plus any penalty), with its graph.
        nfe: function evaluations of the batch's forward solve (0 for discrete flows).
        nll: the batch's mean NLL without penalties; ``None`` means ``loss`` is the NLL.
        kinetic: mean kinetic energy per row (NaN when not computed).
        jacobian: mean Jacobian penalty per row (NaN when not computed).
    """

    loss: Tensor
    nfe: int
    nll: float | None = None
    kinetic: float = math.nan
    jacobian: float = math.nan


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``(B,)`` log N(z; 0, I) of ``z`` ``(B, D)``."""
    return -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * _LOG_2PI)


def _build(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    # nn.Module initialisers draw from the global generator: fork it so we never reseed it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


class SolverStalled(RuntimeError):
    """An ODE solve exceeded its budget of function evaluations (stiff learned dynamics)."""


def _train_flow(
    module: nn.Module,
    X: np.ndarray,
    settings: DensityConfig | RealNVPConfig,
    *,
    batch_loss: Callable[[Tensor, torch.Generator], BatchLoss | tuple[Tensor, int]],
    eval_nll: Callable[[Tensor], float],
    name: str,
) -> list[EpochRecord]:
    """Adam on the mean NLL with early stopping on a held-out split; restores the best weights.

    ``settings``, the flow's settings, gives Adam's ``lr`` and ``weight_decay``,
    ``batch_size``, ``max_epochs``, ``patience`` and ``val_fraction`` of early stopping,
    ``seed`` and ``device``. ``batch_loss`` returns a :class:`BatchLoss` or a ``(loss, nfe)``
    pair (the loss is then the NLL). A :class:`SolverStalled` raised by ``batch_loss`` or
    ``eval_nll`` ends training there, keeping the best weights so far (the last complete
    epoch's without a held-out split); in the first epoch it propagates.
    """
    batch_size, patience, seed = settings.batch_size, settings.patience, settings.seed
    val_fraction, device = settings.val_fraction, torch.device(settings.device)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_val = int(round(val_fraction * len(X))) if val_fraction > 0 and len(X) >= 2 else 0
    n_val = min(n_val, len(X) - 1)
    x_val = torch.as_tensor(X[order[:n_val]], dtype=torch.float32, device=device)
    x_train = torch.as_tensor(X[order[n_val:]], dtype=torch.float32, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    best, best_state, waited = math.inf, copy.deepcopy(module.state_dict()), 0
    history: list[EpochRecord] = []
    stalled = False
    for epoch in range(1, settings.max_epochs + 1):
        start = time.perf_counter()
        before = copy.deepcopy(module.state_dict())
        module.train()
        perm = torch.randperm(len(x_train), generator=gen, device=device)
        total, kinetic, jacobian, nfe_sum, batches = 0.0, 0.0, 0.0, 0, 0
        try:
            for i in range(0, len(x_train), batch_size):
                xb = x_train[perm[i : i + batch_size]]
                out = batch_loss(xb, gen)
                if not isinstance(out, BatchLoss):
                    out = BatchLoss(*out)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                nll = float(out.loss.detach()) if out.nll is None else out.nll
                total += nll * len(xb)
                kinetic += out.kinetic * len(xb)
                jacobian += out.jacobian * len(xb)
                nfe_sum += out.nfe
                batches += 1
            module.eval()
            val = eval_nll(x_val) if n_val else math.nan
        except SolverStalled as exc:
            if epoch == 1:
                raise SolverStalled(f"{name}: stalled in the first epoch: {exc}") from None
            history.append(
                EpochRecord(
                    epoch=epoch,
                    train_nll=math.nan,
                    val_nll=math.nan,
                    nfe=nfe_sum / max(batches, 1),
                    seconds=time.perf_counter() - start,
                    stalled=True,
                )
            )
            logger.warning(
                "%s: stopped at epoch %d, keeping the best weights: %s", name, epoch, exc
            )
            stalled = True
            if not n_val:
                best_state = before  # the weights of the last complete epoch
            break
        record = EpochRecord(
            epoch=epoch,
            train_nll=total / len(x_train),
            val_nll=val,
            nfe=nfe_sum / batches,
            seconds=time.perf_counter() - start,
            kinetic=kinetic / len(x_train),
            jacobian=jacobian / len(x_train),
        )
        history.append(record)
        logger.info(
            "%s epoch %d: train nll %.4f, val nll %.4f, nfe/batch %.1f, %.1f s%s",
            name,
            epoch,
            record.train_nll,
            record.val_nll,
            record.nfe,
            record.seconds,
            ""
            if math.isnan(record.kinetic)
            else f", kinetic {record.kinetic:.4g}, jacobian {record.jacobian:.4g}",
        )
        if not math.isfinite(record.train_nll):
            raise ValueError(f"{name}: training diverged at epoch {epoch}; lower lr")
        if n_val == 0:
            continue
        if val < best - 1e-4:
            best, best_state, waited = val, copy.deepcopy(module.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                logger.info("%s: early stop at epoch %d (best val nll %.4f)", name, epoch, best)
                break
    if n_val or stalled:
        module.load_state_dict(best_state)
    module.eval()
    return history


def _score_in_batches(
    fn: Callable[[Tensor], Tensor], X: np.ndarray, batch: int, device
) -> np.ndarray:
    out = []
    for i in range(0, len(X), batch):
        xb = torch.as_tensor(X[i : i + batch], dtype=torch.float32, device=device)
        out.append(fn(xb).detach().double().cpu().numpy())
    return np.concatenate(out)
