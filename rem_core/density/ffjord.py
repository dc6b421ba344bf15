"""FFJORD (Grathwohl et al., 2019): a continuous normalizing flow through torchdiffeq.

The estimator; the flow's dynamics, divergences and solves are in ``density/cnf.py`` (their
names are importable from ``rem_core.density``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from rem_core.config import DensityConfig
from rem_core.density.base import (
    _as_matrix,
    _configure,
    _read,
    _require_fitted,
    _write_flow,
)
from rem_core.density.cnf import MLPDynamics, cnf_log_prob, cnf_regularised_terms
from rem_core.density.training import (
    BatchLoss,
    EpochRecord,
    _build,
    _score_in_batches,
    _train_flow,
)
from rem_core.errors import InputError

__all__ = ["FFJORD"]

logger = logging.getLogger(__name__)


class FFJORD:
    """FFJORD continuous normalizing flow (Grathwohl et al. 2019; paper section 3.1).

    Training maximises the Hutchinson-estimated log-likelihood (one Rademacher probe per batch,
    one vector-Jacobian product per function evaluation) at ``train_rtol``/``train_atol``;
    scoring integrates the exact trace at ``rtol``/``atol``. With ``kinetic_weight`` or
    ``jacobian_weight`` set, training minimises the RNODE objective (Finlay et al. 2020,
    :func:`cnf_regularised_terms`) instead; the validation NLL for early stopping stays the
    plain NLL. The mean number of function evaluations (NFE) per batch is logged every epoch
    and kept in ``history_``. A solve past ``max_nfe`` evaluations ends training early with
    the best weights so far (a warning is logged and ``stalled_`` is set); while scoring it
    raises :class:`SolverStalled`.

    Args:
        config: settings as one :class:`DensityConfig` (optional).
        **settings: the fields of :class:`DensityConfig` (``hidden``, ``activation``, ``t1``,
            ``solver``, ``rtol`` ... ``seed``, ``device``, ``kinetic_weight``,
            ``jacobian_weight``), replacing those of ``config``: ``FFJORD(max_epochs=5)``.
            Checked by ``DensityConfig``'s rules: a bad one raises ``ValueError`` naming it
            (``density.max_epochs: must be an int >= 1, got 0``); so does an unknown name.

    Attributes:
        config: the settings (:class:`DensityConfig`).
        dynamics_: the fitted :class:`MLPDynamics`.
        history_: one :class:`EpochRecord` per epoch.
        n_features_in_: ``D``.
        last_nfe_: function evaluations of the last scoring solve.
        stalled_: whether training stopped because a solve exceeded ``max_nfe``.
    """

    kind: ClassVar[str] = "ffjord"

    def __init__(self, config: DensityConfig | None = None, **settings: Any) -> None:
        self.config = _configure(DensityConfig, config, settings)

    def _make(self, dim: int) -> MLPDynamics:
        c = self.config
        return MLPDynamics(dim, c.hidden, c.activation).to(torch.device(c.device))

    def _solve(self, rtol: float, atol: float) -> dict[str, Any]:
        """The ODE solve's options (``cnf_log_prob``'s keywords) at tolerances ``rtol``/``atol``."""
        c = self.config
        return {"t1": c.t1, "solver": c.solver, "rtol": rtol, "atol": atol, "max_nfe": c.max_nfe}

    def fit(self, X: np.ndarray) -> Self:
        """Train on ``X`` ``(N, D)`` with early stopping; returns ``self``."""
        X = _as_matrix(X)
        c = self.config
        device = torch.device(c.device)
        dyn = _build(c.seed, lambda: self._make(X.shape[1]))

        regularise = c.kinetic_weight > 0 or c.jacobian_weight > 0
        solve = self._solve(c.train_rtol, c.train_atol)

        def batch_loss(xb: Tensor, gen: torch.Generator) -> BatchLoss:
            probe = torch.randint(0, 2, xb.shape, generator=gen, device=device).to(xb) * 2 - 1
            if regularise:
                terms = cnf_regularised_terms(dyn, xb, probe, **solve)
                return BatchLoss(
                    loss=terms.loss(c.kinetic_weight, c.jacobian_weight),
                    nfe=terms.nfe,
                    nll=float(-terms.log_prob.detach().mean()),
                    kinetic=float(terms.kinetic.detach().mean()),
                    jacobian=float(terms.jacobian.detach().mean()),
                )
            logp, nfe = cnf_log_prob(dyn, xb, noise=probe, create_graph=True, **solve)
            return BatchLoss(loss=-logp.mean(), nfe=nfe)

        def eval_nll(xv: Tensor) -> float:
            with torch.no_grad():
                logp = self._log_prob(dyn, xv, c.train_rtol, c.train_atol)
            return float(-logp.mean())

        self.history_ = _train_flow(
            dyn, X, c, batch_loss=batch_loss, eval_nll=eval_nll, name=self.kind
        )
        self.dynamics_ = dyn
        self.n_features_in_ = X.shape[1]
        self.stalled_ = bool(self.history_) and self.history_[-1].stalled
        return self

    def _log_prob(self, dyn: nn.Module, x: Tensor, rtol: float, atol: float) -> Tensor:
        logp, nfe = cnf_log_prob(dyn, x, **self._solve(rtol, atol))
        self.last_nfe_ = nfe
        return logp

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` float64 exact-trace log-density of each row of ``X`` ``(N, D)``."""
        X = _as_matrix(X, _require_fitted(self))
        c = self.config
        with torch.no_grad():
            return _score_in_batches(
                lambda xb: self._log_prob(self.dynamics_, xb, c.rtol, c.atol),
                X,
                c.score_batch_size,
                torch.device(c.device),
            )

    def save(self, folder: str | Path) -> None:
        """Write the dynamics' state dict and the config (plus history) to ``folder``."""
        _require_fitted(self)
        _write_flow(folder, self, self.dynamics_)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read an estimator written by :meth:`save` (weights only)."""
        info, state = _read(folder, cls.kind)
        raw = dict(info["settings"])
        raw["hidden"] = tuple(raw["hidden"])
        # Saved before the RNODE settings existed: trained without them, whatever the defaults.
        raw.setdefault("kinetic_weight", 0.0)
        raw.setdefault("jacobian_weight", 0.0)
        try:
            est = cls(**raw)
        except ValueError as exc:
            raise InputError(f"{folder}: bad saved settings ({exc})") from None
        dyn = est._make(int(info["n_features_in"]))
        try:
            dyn.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{folder}: weights do not match the config ({exc})") from None
        est.dynamics_ = dyn.eval()
        est.n_features_in_ = int(info["n_features_in"])
        est.history_ = [EpochRecord(**r) for r in info.get("history", [])]
        est.stalled_ = bool(est.history_) and est.history_[-1].stalled
        return est
