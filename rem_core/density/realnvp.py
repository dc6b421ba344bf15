"""RealNVP (Dinh et al., 2017): a discrete flow of affine coupling layers, exact log-det."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.density.base import (
    EpochRecord,
    _as_matrix,
    _build,
    _check,
    _read,
    _require_fitted,
    _score_in_batches,
    _train_flow,
    _write,
    standard_normal_log_prob,
)

logger = logging.getLogger(__name__)


class _Coupling(nn.Module):
    """Affine coupling: rows kept by ``mask`` condition a scale and shift of the others."""

    def __init__(self, mask: Tensor, hidden: int):
        super().__init__()
        d = mask.numel()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.head = nn.Linear(hidden, 2 * d)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.mask
        s, shift = self.head(self.net(x * m)).chunk(2, dim=1)
        s = torch.tanh(s) * (1 - m)  # bounded log-scale keeps training stable
        y = x * m + (1 - m) * (x * torch.exp(s) + shift)
        return y, s.sum(dim=1)


class _RealNVPNet(nn.Module):
    def __init__(self, dim: int, n_layers: int, hidden: int):
        super().__init__()
        parity = torch.arange(dim) % 2
        masks = [(parity == (i % 2)).float() for i in range(n_layers)]
        self.layers = nn.ModuleList(_Coupling(m, hidden) for m in masks)

    def log_prob(self, x: Tensor) -> Tensor:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return standard_normal_log_prob(x) + log_det


class RealNVP:
    """RealNVP (Dinh et al. 2017): affine coupling layers with alternating masks, exact log-det.

    Even and odd feature indices take turns conditioning each other; each layer's log-scale is
    ``tanh``-bounded. ``log p(x) = log N(g(x); 0, I) + sum of log-scales``.

    Args:
        n_layers: coupling layers.
        hidden: width of each coupling network's two hidden layers.
        lr, weight_decay, batch_size, max_epochs, patience, val_fraction, seed, device:
            as in :class:`DensityConfig`.

    Attributes:
        net_: the fitted flow; ``history_`` its :class:`EpochRecord` list; ``n_features_in_``.
    """

    kind: ClassVar[str] = "realnvp"

    def __init__(
        self,
        *,
        n_layers: int = 8,
        hidden: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 1024,
        max_epochs: int = 200,
        patience: int = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        _check(n_layers >= 1, "realnvp.n_layers", f"must be >= 1, got {n_layers}")
        _check(hidden >= 1, "realnvp.hidden", f"must be >= 1, got {hidden}")
        _check(0 < lr <= 1, "realnvp.lr", f"must be in (0, 1], got {lr}")
        _check(weight_decay >= 0, "realnvp.weight_decay", f"must be >= 0, got {weight_decay}")
        _check(batch_size >= 1, "realnvp.batch_size", f"must be >= 1, got {batch_size}")
        _check(max_epochs >= 1, "realnvp.max_epochs", f"must be >= 1, got {max_epochs}")
        _check(patience >= 1, "realnvp.patience", f"must be >= 1, got {patience}")
        _check(
            0 <= val_fraction < 0.5,
            "realnvp.val_fraction",
            f"must be in [0, 0.5), got {val_fraction}",
        )
        _check(isinstance(seed, int), "realnvp.seed", f"must be an int, got {seed!r}")
        self.n_layers = n_layers
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    def _settings(self) -> dict[str, Any]:
        keys = ("n_layers", "hidden", "lr", "weight_decay", "batch_size", "max_epochs")
        keys += ("patience", "val_fraction", "seed", "device")
        return {k: getattr(self, k) for k in keys}

    def fit(self, X: np.ndarray) -> Self:
        """Train on ``X`` ``(N, D)`` by maximum likelihood with early stopping; returns ``self``."""
        X = _as_matrix(X)
        device = torch.device(self.device)
        net = _build(self.seed, lambda: _RealNVPNet(X.shape[1], self.n_layers, self.hidden))
        net = net.to(device)

        def batch_loss(xb: Tensor, gen: torch.Generator) -> tuple[Tensor, int]:
            return -net.log_prob(xb).mean(), 0

        def eval_nll(xv: Tensor) -> float:
            with torch.no_grad():
                return float(-net.log_prob(xv).mean())

        self.history_ = _train_flow(
            net,
            X,
            batch_loss=batch_loss,
            eval_nll=eval_nll,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            val_fraction=self.val_fraction,
            seed=self.seed,
            device=device,
            name="realnvp",
        )
        self.net_ = net
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 exact log-density of each row of ``X`` ``(N, D)``."""
        X = _as_matrix(X, _require_fitted(self))
        with torch.no_grad():
            return _score_in_batches(self.net_.log_prob, X, 65536, torch.device(self.device))

    def save(self, folder: str | Path) -> None:
        """Write the flow's state dict and settings to ``folder``."""
        _require_fitted(self)
        history = [dataclasses.asdict(r) for r in self.history_]
        _write(
            folder,
            self.kind,
            self._settings(),
            self.net_.state_dict(),
            n_features_in=self.n_features_in_,
            history=history,
        )

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save` (weights only)."""
        info, state = _read(folder, cls.kind)
        est = cls(**info["settings"])
        d = int(info["n_features_in"])
        net = _RealNVPNet(d, est.n_layers, est.hidden)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{folder}: weights do not match the settings ({exc})") from None
        est.net_ = net.to(torch.device(est.device)).eval()
        est.n_features_in_ = d
        est.history_ = [EpochRecord(**r) for r in info.get("history", [])]
        return est
