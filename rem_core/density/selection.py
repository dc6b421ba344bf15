"""Model selection of REM's feature space and density on held-out log-likelihood.

A candidate is what :class:`~rem_core.config.RarenessConfig` chooses: the number ``k`` of
PCA components, the estimator and (for FFJORD) its :class:`~rem_core.config.DensityConfig`
(hidden widths, RNODE weights ...). :func:`select_density` fits every candidate on one set of
rows and scores another (held out, ideally other segments: frames of one segment are nearly
copies of each other) and keeps the best by held-out negative log-likelihood.

**NLLs at different ``k`` are not comparable as they stand**: each is a density over a
different space (``k`` standardised components). So every candidate is scored in one common
space, the top ``K = max k`` standardised components of one PCA fitted on the fitting rows:
a candidate with ``k < K`` models components ``1..k`` and puts a standard normal on the
discarded ``k+1..K`` (they are decorrelated and of unit variance on the fitting rows, so that
is the maximum-likelihood Gaussian for them, independent of the rest):

    log p_K(z) = log p_k(z_1..k) + log N(z_{k+1..K}; 0, I)

This is the full-space likelihood with a Gaussian on the discarded components; the change of
variables from features to standardised components is the same for every candidate, so it
drops out of comparisons, and so would any common Gaussian on components beyond ``K``
(which keeps the comparison away from the features' near-degenerate directions). A single
Gaussian scores the same at every ``k`` in this space, a useful check. ``best_by_k`` keeps,
per ``k``, the lowest NLL in the candidate's own space (those are comparable); ``best`` is
the lowest common-space NLL over all.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 6)) @ rng.normal(size=(6, 6))
    >>> sel = select_density(X[:400], X[400:], [Candidate(k=2, estimator="gaussian"),
    ...                                         Candidate(k=4, estimator="gaussian")])
    >>> sorted(sel.best_by_k), sel.reducer.k
    ([2, 4], 4)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rem_core.config import DensityConfig, RarenessConfig
from rem_core.density.base import DensityEstimator, SolverStalled
from rem_core.density.reduce import FeatureReducer
from rem_core.density.registry import estimator_for
from rem_core.errors import InputError

__all__ = ["Candidate", "CandidateFit", "DensitySelection", "select_density"]

logger = logging.getLogger(__name__)

#: Estimators whose score is a normalised log-density (kNN's is not, so it cannot be selected
#: on likelihood).
_NORMALISED = ("ffjord", "gaussian", "gmm", "realnvp")


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One choice of feature space and density model (the fields of ``RarenessConfig``).

    Attributes:
        k: PCA components kept.
        estimator: ``ffjord``, ``gaussian``, ``gmm`` or ``realnvp`` (normalised densities).
        density: FFJORD's settings (``RarenessConfig.density``); a baseline takes its
            default settings (``RarenessConfig().gmm`` ...).
    """

    k: int
    estimator: str = "ffjord"
    density: DensityConfig = field(default_factory=DensityConfig)

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1):
            raise InputError(f"candidate.k: must be an int >= 1, got {self.k!r}")
        if self.estimator not in _NORMALISED:
            raise InputError(
                f"candidate.estimator: must be one of {', '.join(_NORMALISED)} (a normalised "
                f"density, so held-out likelihoods compare), got {self.estimator!r}"
            )

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``ffjord k=16 h=64x64 kin=0.01 jac=0.01``."""
        if self.estimator != "ffjord":
            return f"{self.estimator} k={self.k}"
        c = self.density
        text = f"ffjord k={self.k} h={'x'.join(map(str, c.hidden))}"
        if c.kinetic_weight or c.jacobian_weight:
            text += f" kin={c.kinetic_weight:g} jac={c.jacobian_weight:g}"
        return text

    def make_estimator(self) -> DensityEstimator:
        """An unfitted estimator with these settings, built as the pipeline builds
        ``apply_to(RarenessConfig())``'s."""
        return estimator_for(self.apply_to(RarenessConfig()))

    def apply_to(self, rareness: RarenessConfig) -> RarenessConfig:
        """``rareness`` with this candidate's ``k``, ``estimator`` and ``density``."""
        return dataclasses.replace(
            rareness, k=self.k, estimator=self.estimator, density=self.density
        )


@dataclass(frozen=True)
class CandidateFit:
    """A fitted candidate and its held-out figures.

    Attributes:
        candidate: the settings.
        estimator: the fitted estimator (on the first ``k`` standardised components).
        heldout_nll: mean held-out NLL in nats per row in the candidate's own ``k``-D space
            (comparable between candidates of the same ``k`` only).
        heldout_nll_common: mean held-out NLL in nats per row in the common ``K``-D space
            (standard normal on the discarded components; comparable across ``k``).
        fit_s: wall time of ``fit`` in seconds.
        epochs: training epochs (0 for closed-form estimators).
        train_nfe: FFJORD's mean function evaluations per training batch in its last
            complete epoch (NaN for other estimators).
        score_nfe: FFJORD's function evaluations of the last held-out scoring solve (NaN
            for other estimators).
        stalled: training stopped because an ODE solve exceeded ``max_nfe``.
        error: why the candidate failed (an ODE solve past ``max_nfe`` in the first epoch or
            while scoring) or was skipped (time budget); its NLLs are then ``inf``. ``""``
            otherwise.
    """

    candidate: Candidate
    estimator: DensityEstimator
    heldout_nll: float
    heldout_nll_common: float
    fit_s: float
    epochs: int
    train_nfe: float
    score_nfe: float
    stalled: bool
    error: str = ""


@dataclass(frozen=True)
class DensitySelection:
    """The outcome of :func:`select_density`.

    Attributes:
        reducer: PCA + standardisation to ``K = max k`` components, fitted on the fitting
            rows; a candidate of ``k`` components reads ``reducer.transform(X)[:, :k]``.
        fits: one :class:`CandidateFit` per candidate, in the order given.
        best_by_k: per ``k``, the fit with the lowest ``heldout_nll``.
        best: the fit with the lowest ``heldout_nll_common``.
    """

    reducer: FeatureReducer
    fits: list[CandidateFit]
    best_by_k: dict[int, CandidateFit]
    best: CandidateFit

    def transform(self, X: np.ndarray, k: int) -> np.ndarray:
        """``(N, k)`` float32 standardised components of raw features ``X`` ``(N, C)``."""
        if not 1 <= k <= self.reducer.k:
            raise InputError(f"k: must be in [1, {self.reducer.k}], got {k}")
        return self.reducer.transform(X)[:, :k]

    def table(self) -> pd.DataFrame:
        """One row per candidate: label, k, estimator, hidden, kinetic_weight,
        jacobian_weight, heldout_nll, heldout_nll_per_dim, heldout_nll_common, fit_s, epochs,
        train_nfe, score_nfe, stalled, error, best_for_k, best."""
        rows = []
        for f in self.fits:
            c = f.candidate
            rows.append(
                {
                    "label": c.label,
                    "k": c.k,
                    "estimator": c.estimator,
                    "hidden": "x".join(map(str, c.density.hidden))
                    if c.estimator == "ffjord"
                    else "",
                    "kinetic_weight": c.density.kinetic_weight if c.estimator == "ffjord" else 0.0,
                    "jacobian_weight": c.density.jacobian_weight
                    if c.estimator == "ffjord"
                    else 0.0,
                    "heldout_nll": f.heldout_nll,
                    "heldout_nll_per_dim": f.heldout_nll / c.k,
                    "heldout_nll_common": f.heldout_nll_common,
                    "fit_s": f.fit_s,
                    "epochs": f.epochs,
                    "train_nfe": f.train_nfe,
                    "score_nfe": f.score_nfe,
                    "stalled": f.stalled,
                    "error": f.error,
                    "best_for_k": self.best_by_k[c.k] is f,
                    "best": self.best is f,
                }
            )
        return pd.DataFrame(rows)


def select_density(
    X_fit: np.ndarray,
    X_heldout: np.ndarray,
    candidates: Sequence[Candidate],
    *,
    seed: int = 0,
    time_budget_s: float | None = None,
) -> DensitySelection:
    """Fit every candidate on ``X_fit`` and keep the best by held-out NLL.

    One :class:`~rem_core.density.FeatureReducer` with ``K = max k`` components is fitted on
    ``X_fit``; a candidate of ``k`` components is fitted on the first ``k`` standardised
    components and scored on those of ``X_heldout``, in its own space and in the common
    ``K``-D space (module docstring).

    Args:
        X_fit: ``(N, C)`` raw features (e.g. ROI-pooled detector features, float32) to fit on.
        X_heldout: ``(M, C)`` raw features to score; hold out whole segments, not frames.
        candidates: at least one :class:`Candidate`; ``k`` at most ``C``.
        seed: seed of the PCA solver.
        time_budget_s: when set, candidates not started within this many seconds of the
            call are skipped (``error`` says so, NLLs ``inf``); a started fit is not cut.

    Returns:
        :class:`DensitySelection`.

    Raises:
        ValueError: no candidates, a ``k`` larger than the features allow, or mismatched
            feature counts.
    """
    X_fit, X_heldout = _checked_inputs(X_fit, X_heldout, candidates)
    k_common = max(c.k for c in candidates)
    reducer = FeatureReducer(k=k_common, seed=seed).fit(X_fit)
    Z_fit, Z_held = reducer.transform(X_fit), reducer.transform(X_heldout)
    began = time.perf_counter()
    fits = [
        _fit_candidate(c, Z_fit, Z_held, k_common, began=began, time_budget_s=time_budget_s)
        for c in candidates
    ]
    best = min(fits, key=lambda f: f.heldout_nll_common)
    return DensitySelection(reducer=reducer, fits=fits, best_by_k=_best_by_k(fits), best=best)


def _checked_inputs(
    X_fit: np.ndarray, X_heldout: np.ndarray, candidates: Sequence[Candidate]
) -> tuple[np.ndarray, np.ndarray]:
    """``X_fit`` and ``X_heldout`` as arrays, after checking them and the candidates."""
    if not candidates:
        raise InputError("candidates: give at least one candidate")
    X_fit, X_heldout = np.asarray(X_fit), np.asarray(X_heldout)
    if X_fit.ndim != 2 or X_heldout.ndim != 2 or X_fit.shape[1] != X_heldout.shape[1]:
        raise InputError(
            f"X_fit, X_heldout: need (N, C) and (M, C) feature matrices, got shapes "
            f"{X_fit.shape} and {X_heldout.shape}"
        )
    if len(X_heldout) == 0:
        raise InputError("X_heldout: is empty; hold out some rows to score")
    return X_fit, X_heldout


def _fit_candidate(
    c: Candidate,
    Z_fit: np.ndarray,
    Z_held: np.ndarray,
    k_common: int,
    *,
    began: float,
    time_budget_s: float | None,
) -> CandidateFit:
    """Fit one candidate on its first ``k`` components and score the held-out rows."""
    est = c.make_estimator()
    start = time.perf_counter()
    try:
        if time_budget_s is not None and start - began > time_budget_s:
            raise _OverBudget(f"skipped: the time budget of {time_budget_s:g} s was spent")
        est.fit(Z_fit[:, : c.k])
        fit_s = time.perf_counter() - start
        log_p = est.score_samples(Z_held[:, : c.k])
        error = ""
    except (SolverStalled, _OverBudget) as exc:
        # A candidate whose dynamics turn stiff at once is a bad candidate, not a crash.
        fit_s = time.perf_counter() - start
        log_p = np.full(len(Z_held), -math.inf)
        error = str(exc)
        logger.warning("%s: not scored: %s", c.label, exc)
    tail = _standard_normal_log_prob(Z_held[:, c.k :])
    history = getattr(est, "history_", [])
    complete = [r for r in history if not r.stalled]
    fit = CandidateFit(
        candidate=c,
        estimator=est,
        heldout_nll=float(-log_p.mean()),
        heldout_nll_common=float(-(log_p + tail).mean()),
        fit_s=fit_s,
        epochs=len(history),
        train_nfe=complete[-1].nfe if complete and c.estimator == "ffjord" else math.nan,
        score_nfe=float(getattr(est, "last_nfe_", math.nan)),
        stalled=bool(getattr(est, "stalled_", False)),
        error=error,
    )
    logger.info(
        "%s: held-out nll %.4f (common %d-D: %.4f), fit %.1f s",
        c.label,
        fit.heldout_nll,
        k_common,
        fit.heldout_nll_common,
        fit_s,
    )
    return fit


def _best_by_k(fits: list[CandidateFit]) -> dict[int, CandidateFit]:
    """Per ``k``, the fit with the lowest NLL in its own space (the first of equals)."""
    best_by_k: dict[int, CandidateFit] = {}
    for f in fits:
        k = f.candidate.k
        if k not in best_by_k or f.heldout_nll < best_by_k[k].heldout_nll:
            best_by_k[k] = f
    return best_by_k


class _OverBudget(Exception):
    pass


def _standard_normal_log_prob(z: np.ndarray) -> np.ndarray:
    """``(N,)`` float64 log N(z; 0, I) of ``z`` ``(N, d)``; zeros when ``d == 0``."""
    z = np.asarray(z, dtype=np.float64)
    return -0.5 * ((z**2).sum(axis=1) + z.shape[1] * math.log(2.0 * math.pi))
