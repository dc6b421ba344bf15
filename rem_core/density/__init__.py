"""Density estimators over detector features, and rareness as ``-log p`` (paper section 3.1).

Every estimator follows one protocol (:class:`DensityEstimator`) with scikit-learn manners:
``__init__`` stores settings only, ``fit(X)`` returns the estimator, learned state ends in
``_``, and ``score_samples(X)`` returns one natural-log density per row. Arrays in and out
are numpy: ``X`` is ``(N, D)`` float32 or float64 (standardised features, roughly unit
variance), scores are ``(N,)`` float64 in nats. Estimators persist as a tensor state dict
(``density.pt``, read with ``torch.load(weights_only=True)``) plus ``density.json``;
nothing is pickled.

The paper's estimator is :class:`FFJORD` (Grathwohl et al., 2019): a continuous normalizing
flow whose log-density is, with ``z(0) = x`` and ``dz/dt = f(t, z)``,

    log p(x) = log N(z(t1); 0, I) + integral_0^t1 tr(df/dz(t, z(t))) dt.

Baselines: :class:`GaussianDensity`, :class:`GaussianMixtureDensity`, :class:`KNNDensity`
(an unnormalised score) and the discrete flow :class:`RealNVP`. FFJORD trains with the RNODE
penalties (Finlay et al. 2020) when ``kinetic_weight``/``jacobian_weight`` are set, and
:func:`select_density` picks the PCA dimension and estimator on held-out likelihood.

Every estimator takes keyword settings, the fields of its settings class in
``rem_core.config`` (FFJORD: :class:`DensityConfig`; :class:`GaussianConfig`,
:class:`GMMConfig`, :class:`KNNConfig`, :class:`RealNVPConfig`), checked by its rules, or
one such object as ``config``. :class:`~rem_core.config.RarenessConfig` carries one of each,
and :func:`estimator_for` builds the one it chooses.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> est = make_estimator("gaussian").fit(X)
    >>> rareness(est, X[:4]).shape
    (4,)
    >>> from rem_core.config import RarenessConfig
    >>> estimator_for(RarenessConfig(estimator="knn").with_estimator_settings(k=5)).config
    KNNConfig(k=5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rem_core.config import (
    DensityConfig,
    GaussianConfig,
    GMMConfig,
    KNNConfig,
    RarenessConfig,
    RealNVPConfig,
)
from rem_core.density.base import (
    BatchLoss,
    DensityEstimator,
    EpochRecord,
    SolverStalled,
    _read,
    rareness,
    standard_normal_log_prob,
)
from rem_core.density.baselines import GaussianDensity, GaussianMixtureDensity, KNNDensity
from rem_core.density.cnf import (
    MLPDynamics,
    RegularisedTerms,
    cnf_log_prob,
    cnf_regularised_terms,
    exact_divergence,
    hutchinson_divergence,
)
from rem_core.density.ffjord import FFJORD
from rem_core.density.realnvp import RealNVP
from rem_core.density.selection import Candidate, CandidateFit, DensitySelection, select_density

__all__ = [
    "fit_density",
    "BatchLoss",
    "Candidate",
    "CandidateFit",
    "ESTIMATORS",
    "FFJORD",
    "DensityConfig",
    "DensityEstimator",
    "DensitySelection",
    "EpochRecord",
    "GMMConfig",
    "GaussianConfig",
    "GaussianDensity",
    "GaussianMixtureDensity",
    "KNNConfig",
    "KNNDensity",
    "MLPDynamics",
    "RealNVP",
    "RealNVPConfig",
    "RegularisedTerms",
    "SolverStalled",
    "cnf_log_prob",
    "cnf_regularised_terms",
    "estimator_for",
    "exact_divergence",
    "hutchinson_divergence",
    "load_estimator",
    "make_estimator",
    "rareness",
    "select_density",
    "standard_normal_log_prob",
]

#: Short names (``rareness.estimator``, the CLI's ``--estimator``); each maps to a class whose
#: keyword settings ``make_estimator`` passes.
ESTIMATORS: dict[str, type] = {
    "ffjord": FFJORD,
    "gaussian": GaussianDensity,
    "gmm": GaussianMixtureDensity,
    "knn": KNNDensity,
    "realnvp": RealNVP,
}


def make_estimator(name: str, **settings: Any) -> DensityEstimator:
    """An unfitted estimator by short name (``ffjord``, ``gaussian``, ``gmm``, ``knn``,
    ``realnvp``) with keyword settings, e.g. ``make_estimator("knn", k=5)``.

    Raises:
        ValueError: an unknown name, an unknown setting or a bad value (naming the field,
            ``knn.k: must be an int >= 1, got 0``).
    """
    if name not in ESTIMATORS:
        raise ValueError(f"density.estimator: unknown {name!r}; known: {', '.join(ESTIMATORS)}")
    try:
        return ESTIMATORS[name](**settings)
    except TypeError as exc:
        raise ValueError(f"density.{name}: bad settings ({exc})") from None


def load_estimator(folder: str | Path) -> DensityEstimator:
    """Load whichever estimator :meth:`save` wrote to ``folder``."""
    info, _ = _read(folder, None)
    kind = info["estimator"]
    if kind not in ESTIMATORS:
        raise ValueError(f"{folder}: unknown estimator {kind!r}")
    return ESTIMATORS[kind].load(folder)


def estimator_for(rareness: RarenessConfig) -> DensityEstimator:
    """The unfitted estimator ``rareness.estimator`` names, with its settings from
    ``rareness`` (``density`` for FFJORD, ``gaussian``, ``gmm``, ``knn`` or ``realnvp``).

    What the pipeline fits; ``RarenessConfig.with_estimator_settings`` changes them.
    """
    return make_estimator(rareness.estimator, **rareness.estimator_settings())


def fit_density(features: Any, rareness: RarenessConfig) -> tuple[Any, DensityEstimator]:
    """The PCA reducer (``rem_core.features.FeatureReducer``) and the density model of
    ``rareness`` fitted on ``features`` (``(N, C)``): what the pipeline's rareness stage and
    a pool's fit on a sample (``rem_core.pool``) both fit.

    Features with fewer independent dimensions than ``rareness.k`` (geometric descriptors
    without points) keep as many components as they have dimensions of variation (judged
    on the first 5,000 rows).
    """
    import numpy as np

    from rem_core.features import FeatureReducer

    sample = features[:5000].astype(np.float64)
    k = min(rareness.k, int(np.linalg.matrix_rank(sample - sample.mean(0), tol=1e-6)))
    reducer = FeatureReducer(k=max(k, 1), seed=rareness.density.seed).fit(features)
    estimator = estimator_for(rareness)
    estimator.fit(reducer.transform(features))
    return reducer, estimator
