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

The package's modules: ``base`` (the protocol, persistence), ``baselines``, ``cnf`` (the
flow's dynamics and solves), ``ffjord``, ``realnvp``, ``training`` (the flows' shared
training loop), ``reduce`` (the PCA reducer, ``FeatureReducer``), ``registry`` (estimators
by name, and ``fit_density``: the reducer and the model fitted together), ``selection``
and ``spread`` (scoring on a Dask cluster in whole batches).

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

from rem_core.density.base import (
    DensityEstimator,
    SolverStalled,
    rareness,
    standard_normal_log_prob,
)
from rem_core.density.baselines import (
    GaussianDensity,
    GaussianMixtureDensity,
    KNNDensity,
)
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
from rem_core.density.reduce import FeatureReducer
from rem_core.density.registry import (
    ESTIMATOR_CLASSES,
    estimator_for,
    fit_density,
    load_estimator,
    make_estimator,
)
from rem_core.density.selection import (
    Candidate,
    CandidateFit,
    DensitySelection,
    select_density,
)
from rem_core.density.spread import (
    score_batch,
    score_on_cluster,
)
from rem_core.density.training import (
    BatchLoss,
    EpochRecord,
)

__all__ = [
    "ESTIMATOR_CLASSES",
    "FFJORD",
    "BatchLoss",
    "Candidate",
    "CandidateFit",
    "DensityEstimator",
    "DensitySelection",
    "EpochRecord",
    "FeatureReducer",
    "GaussianDensity",
    "GaussianMixtureDensity",
    "KNNDensity",
    "MLPDynamics",
    "RealNVP",
    "RegularisedTerms",
    "SolverStalled",
    "cnf_log_prob",
    "cnf_regularised_terms",
    "estimator_for",
    "exact_divergence",
    "fit_density",
    "hutchinson_divergence",
    "load_estimator",
    "make_estimator",
    "rareness",
    "score_batch",
    "score_on_cluster",
    "select_density",
    "standard_normal_log_prob",
]
