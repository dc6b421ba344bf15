"""RealNVP (Dinh et al., 2017): a discrete flow of affine coupling layers, exact log-det."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.config import RealNVPConfig
from rem_core.density.base import (
    _as_matrix,
    _configure,
    _read,
    _require_fitted,
    _write_flow,
    standard_normal_log_prob,
)
from rem_core.density.training import (
    EpochRecord,
    _build,
    _score_in_batches,
    _train_flow,
)
from rem_core.errors import InputError

__all__ = [
    "RealNVP",
]

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
        config: settings as one :class:`~rem_core.config.RealNVPConfig` (optional).
        **settings: its fields, replacing those of ``config``: ``n_layers`` (8 coupling
            layers), ``hidden`` (64, the width of each coupling network's two hidden layers),
            and ``lr`` (1e-3), ``weight_decay``, ``batch_size``, ``max_epochs`` (200),
            ``patience``, ``val_fraction``, ``seed``, ``device`` as in
            :class:`~rem_core.config.DensityConfig`.

    Attributes:
        config: the settings.
        net_: the fitted flow; ``history_`` its :class:`EpochRecord` list; ``n_features_in_``.
    """

    kind: ClassVar[str] = "realnvp"

    def __init__(self, config: RealNVPConfig | None = None, **settings: Any) -> None:
        self.config = _configure(RealNVPConfig, config, settings)

    def fit(self, X: np.ndarray) -> Self:
        """Train on ``X`` ``(N, D)`` by maximum likelihood with early stopping; returns ``self``."""
        X = _as_matrix(X)
        c = self.config
        device = torch.device(c.device)
        net = _build(c.seed, lambda: _RealNVPNet(X.shape[1], c.n_layers, c.hidden)).to(device)

        def batch_loss(xb: Tensor, gen: torch.Generator) -> tuple[Tensor, int]:
            return -net.log_prob(xb).mean(), 0

        def eval_nll(xv: Tensor) -> float:
            with torch.no_grad():
                return float(-net.log_prob(xv).mean())

        self.history_ = _train_flow(
            net, X, c, batch_loss=batch_loss, eval_nll=eval_nll, name=self.kind
        )
        self.net_ = net
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 exact log-density of each row of ``X`` ``(N, D)``."""
        X = _as_matrix(X, _require_fitted(self))
        with torch.no_grad():
            return _score_in_batches(self.net_.log_prob, X, 65536, torch.device(self.config.device))

    def save(self, folder: str | Path) -> None:
        """Write the flow's state dict and settings to ``folder``."""
        _require_fitted(self)
        _write_flow(folder, self, self.net_)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save` (weights only)."""
        info, state = _read(folder, cls.kind)
        est = cls(**info["settings"])
        d = int(info["n_features_in"])
        net = _RealNVPNet(d, est.config.n_layers, est.config.hidden)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{folder}: weights do not match the settings ({exc})") from None
        est.net_ = net.to(torch.device(est.config.device)).eval()
        est.n_features_in_ = d
        est.history_ = [EpochRecord(**r) for r in info.get("history", [])]
        return est
