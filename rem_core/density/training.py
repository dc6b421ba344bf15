"""The flows' shared training loop: Adam on mini-batches, a held-out split, early stopping on
its NLL with the best weights restored, and a record per epoch (FFJORD and RealNVP)."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.config import DensityConfig, RealNVPConfig
from rem_core.density.base import SolverStalled
from rem_core.errors import InputError

__all__ = ["BatchLoss", "EpochRecord", "epoch_progress"]

logger = logging.getLogger(__name__)

#: ``report(epoch, max_epochs)`` after each epoch of a flow trained in this context.
_EPOCH_REPORT: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "epoch_report", default=None
)


@contextlib.contextmanager
def epoch_progress(report: Callable[[int, int], None] | None) -> Iterator[None]:
    """Within the block, every flow's training calls ``report(epoch, max_epochs)`` after each
    epoch (the pipeline shows how far FFJORD got and when it will be done), and
    ``report(max_epochs, max_epochs)`` when early stopping ends it sooner. An estimator's
    ``fit`` keeps its scikit-learn signature; ``None``: nothing is reported."""
    token = _EPOCH_REPORT.set(report)
    try:
        yield
    finally:
        _EPOCH_REPORT.reset(token)


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


def _build(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    # nn.Module initialisers draw from the global generator: fork it so we never reseed it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


@dataclass
class _EpochSums:
    """Running sums over an epoch's batches (NLL and penalties weighted by rows)."""

    total: float = 0.0
    kinetic: float = 0.0
    jacobian: float = 0.0
    nfe: int = 0
    batches: int = 0


@dataclass
class _EarlyStopping:
    """The training run's history, best held-out NLL and the weights to restore."""

    best_state: dict[str, Tensor]
    best: float = math.inf
    waited: int = 0
    stalled: bool = False
    history: list[EpochRecord] = field(default_factory=list)


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
    device = torch.device(settings.device)
    x_train, x_val = _split_heldout(X, settings, device)
    n_val = len(x_val)
    gen = torch.Generator(device=device).manual_seed(settings.seed)
    opt = torch.optim.Adam(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    run = _EarlyStopping(best_state=copy.deepcopy(module.state_dict()))
    report = _EPOCH_REPORT.get() or (lambda epoch, total: None)
    for epoch in range(1, settings.max_epochs + 1):
        start = time.perf_counter()
        before = copy.deepcopy(module.state_dict())
        sums = _EpochSums()
        try:
            _train_epoch(module, x_train, settings.batch_size, gen, opt, batch_loss, sums)
            module.eval()
            val = eval_nll(x_val) if n_val else math.nan
        except SolverStalled as exc:
            if epoch == 1:
                raise SolverStalled(f"{name}: stalled in the first epoch: {exc}") from None
            run.history.append(_stalled_record(epoch, sums, start))
            logger.warning(
                "%s: stopped at epoch %d, keeping the best weights: %s", name, epoch, exc
            )
            run.stalled = True
            if not n_val:
                run.best_state = before  # the weights of the last complete epoch
            break
        record = _epoch_record(epoch, sums, val, len(x_train), start)
        run.history.append(record)
        _log_epoch(name, record)
        report(epoch, settings.max_epochs)
        if not math.isfinite(record.train_nll):
            raise InputError(f"{name}: training diverged at epoch {epoch}; lower lr")
        if n_val and _should_stop(run, module, val, settings.patience, name, epoch):
            break
    if n_val or run.stalled:
        module.load_state_dict(run.best_state)
    module.eval()
    report(settings.max_epochs, settings.max_epochs)
    return run.history


def _split_heldout(
    X: np.ndarray, settings: DensityConfig | RealNVPConfig, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The training and held-out rows of ``X`` as float32 tensors, split by ``settings.seed``."""
    order = np.random.default_rng(settings.seed).permutation(len(X))
    val_fraction = settings.val_fraction
    n_val = int(round(val_fraction * len(X))) if val_fraction > 0 and len(X) >= 2 else 0
    n_val = min(n_val, len(X) - 1)
    x_val = torch.as_tensor(X[order[:n_val]], dtype=torch.float32, device=device)
    x_train = torch.as_tensor(X[order[n_val:]], dtype=torch.float32, device=device)
    return x_train, x_val


def _train_epoch(
    module: nn.Module,
    x_train: Tensor,
    batch_size: int,
    gen: torch.Generator,
    opt: torch.optim.Optimizer,
    batch_loss: Callable[[Tensor, torch.Generator], BatchLoss | tuple[Tensor, int]],
    sums: _EpochSums,
) -> None:
    """One pass of Adam steps over shuffled mini-batches, adding their figures to ``sums``."""
    module.train()
    perm = torch.randperm(len(x_train), generator=gen, device=x_train.device)
    for i in range(0, len(x_train), batch_size):
        xb = x_train[perm[i : i + batch_size]]
        out = batch_loss(xb, gen)
        if not isinstance(out, BatchLoss):
            out = BatchLoss(*out)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        nll = float(out.loss.detach()) if out.nll is None else out.nll
        sums.total += nll * len(xb)
        sums.kinetic += out.kinetic * len(xb)
        sums.jacobian += out.jacobian * len(xb)
        sums.nfe += out.nfe
        sums.batches += 1


def _stalled_record(epoch: int, sums: _EpochSums, start: float) -> EpochRecord:
    """The record of an epoch cut short by a stalled solve: NaN NLLs, the batches' NFE."""
    return EpochRecord(
        epoch=epoch,
        train_nll=math.nan,
        val_nll=math.nan,
        nfe=sums.nfe / max(sums.batches, 1),
        seconds=time.perf_counter() - start,
        stalled=True,
    )


def _epoch_record(
    epoch: int, sums: _EpochSums, val: float, n_train: int, start: float
) -> EpochRecord:
    """The record of a complete epoch: per-row means of the sums and the held-out NLL."""
    return EpochRecord(
        epoch=epoch,
        train_nll=sums.total / n_train,
        val_nll=val,
        nfe=sums.nfe / sums.batches,
        seconds=time.perf_counter() - start,
        kinetic=sums.kinetic / n_train,
        jacobian=sums.jacobian / n_train,
    )


def _log_epoch(name: str, record: EpochRecord) -> None:
    """Log a complete epoch's NLLs, NFE, time and (when computed) RNODE penalties."""
    logger.info(
        "%s epoch %d: train nll %.4f, val nll %.4f, nfe/batch %.1f, %.1f s%s",
        name,
        record.epoch,
        record.train_nll,
        record.val_nll,
        record.nfe,
        record.seconds,
        ""
        if math.isnan(record.kinetic)
        else f", kinetic {record.kinetic:.4g}, jacobian {record.jacobian:.4g}",
    )


def _should_stop(
    run: _EarlyStopping, module: nn.Module, val: float, patience: int, name: str, epoch: int
) -> bool:
    """Keep the weights of a new best held-out NLL; whether patience has run out."""
    if val < run.best - 1e-4:
        run.best, run.best_state, run.waited = val, copy.deepcopy(module.state_dict()), 0
        return False
    run.waited += 1
    if run.waited >= patience:
        logger.info("%s: early stop at epoch %d (best val nll %.4f)", name, epoch, run.best)
        return True
    return False


def _score_in_batches(
    fn: Callable[[Tensor], Tensor], X: np.ndarray, batch: int, device
) -> np.ndarray:
    out = []
    for i in range(0, len(X), batch):
        xb = torch.as_tensor(X[i : i + batch], dtype=torch.float32, device=device)
        out.append(fn(xb).detach().double().cpu().numpy())
    return np.concatenate(out)
