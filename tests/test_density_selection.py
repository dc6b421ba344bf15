"""Model selection of the PCA dimension and density on held-out likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rem_core.config import DensityConfig, RarenessConfig
from rem_core.density import Candidate, FeatureReducer, GaussianDensity, select_density


def structured(n: int, seed: int, informative: int = 4, noise: int = 4) -> np.ndarray:
    """Rows whose first ``informative`` directions are each a two-cluster mixture (variance
    about 5) and the next ``noise`` plain Gaussian (variance 0.25 .. 1), mixed by a fixed
    random rotation: PCA orders the clustered directions first."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-2.0, 2.0], size=(n, informative))
    head = sign + 0.4 * rng.normal(size=(n, informative))
    tail = rng.normal(size=(n, noise)) * np.linspace(1.0, 0.5, noise)
    q, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(informative + noise,) * 2))
    return np.hstack([head, tail]) @ q.T


def test_a_single_gaussian_scores_the_same_at_every_k() -> None:
    """Standardised PCA components are uncorrelated with unit variance on the fitting rows,
    so the fitted Gaussian is N(0, I) whatever k: with the standard normal tail its
    common-space NLL cannot depend on k, while its own-space NLL grows with k."""
    X = structured(1500, seed=0)
    sel = select_density(
        X[:1000], X[1000:], [Candidate(k=k, estimator="gaussian") for k in (2, 5, 8)]
    )
    common = [f.heldout_nll_common for f in sel.fits]
    own = [f.heldout_nll for f in sel.fits]
    np.testing.assert_allclose(common, common[0], rtol=0, atol=1e-6)
    assert own[0] < own[1] < own[2]


def test_common_space_matches_a_hand_computed_tail() -> None:
    X = structured(900, seed=1)
    sel = select_density(
        X[:600], X[600:], [Candidate(k=3, estimator="gmm"), Candidate(k=6, estimator="gaussian")]
    )
    z = FeatureReducer(k=6).fit(X[:600]).transform(X[600:]).astype(np.float64)
    gmm = sel.fits[0]
    log_p = gmm.estimator.score_samples(z[:, :3])
    tail = -0.5 * (z[:, 3:] ** 2).sum(1) - 1.5 * math.log(2 * math.pi)
    assert gmm.heldout_nll == pytest.approx(-log_p.mean(), rel=1e-6)
    assert gmm.heldout_nll_common == pytest.approx(-(log_p + tail).mean(), rel=1e-6)
    np.testing.assert_allclose(sel.transform(X[600:], 3), z[:, :3], atol=1e-5)


def test_selection_keeps_the_dimension_that_holds_the_structure() -> None:
    """Four clustered directions: a mixture on k=2 leaves two of them to a Gaussian tail and
    loses in the common space, though its own-space NLL (2 dimensions) is far lower."""
    X = structured(3000, seed=2)
    candidates = [
        Candidate(k=2, estimator="gmm"),
        Candidate(k=2, estimator="gaussian"),
        Candidate(k=4, estimator="gmm"),
        Candidate(k=4, estimator="gaussian"),
        Candidate(k=8, estimator="gaussian"),
    ]
    sel = select_density(X[:2000], X[2000:], candidates)
    assert sel.best_by_k[2].candidate.estimator == "gmm"
    assert sel.best_by_k[4].candidate.estimator == "gmm"
    assert sel.best_by_k[2].heldout_nll < sel.best_by_k[4].heldout_nll
    assert sel.best.candidate == Candidate(k=4, estimator="gmm")
    table = sel.table()
    assert list(table["best"]) == [False, False, True, False, False]
    assert table["best_for_k"].sum() == 3
    assert table["heldout_nll_per_dim"].iloc[0] == pytest.approx(table["heldout_nll"].iloc[0] / 2)


def test_ffjord_candidates_report_nfe_and_rnode_weights() -> None:
    X = structured(800, seed=3, informative=2, noise=1)
    small = DensityConfig(
        max_epochs=2, hidden=(8, 8), batch_size=256, kinetic_weight=0.0, jacobian_weight=0.0
    )
    reg = DensityConfig(
        max_epochs=2, hidden=(8, 8), batch_size=256, kinetic_weight=0.1, jacobian_weight=0.2
    )
    sel = select_density(
        X[:600], X[600:], [Candidate(k=3, density=small), Candidate(k=3, density=reg)]
    )
    table = sel.table()
    assert (table["train_nfe"] > 0).all() and (table["score_nfe"] > 0).all()
    assert list(table["kinetic_weight"]) == [0.0, 0.1]
    assert table["label"].iloc[1] == "ffjord k=3 h=8x8 kin=0.1 jac=0.2"
    assert np.isfinite(table["heldout_nll"]).all()


def test_a_stalling_candidate_is_reported_not_raised() -> None:
    X = structured(400, seed=4, informative=2, noise=1)
    stiff = DensityConfig(max_nfe=10, max_epochs=2, train_rtol=1e-7, train_atol=1e-7, lr=0.5)
    sel = select_density(
        X[:300], X[300:], [Candidate(k=3, density=stiff), Candidate(k=3, estimator="gaussian")]
    )
    assert "first epoch" in sel.fits[0].error and sel.fits[0].heldout_nll == math.inf
    assert sel.best.candidate.estimator == "gaussian"


def test_candidate_maps_onto_the_rareness_settings() -> None:
    density = DensityConfig(kinetic_weight=0.01, jacobian_weight=0.01, max_epochs=40)
    rareness = Candidate(k=8, density=density).apply_to(RarenessConfig())
    assert (rareness.k, rareness.estimator, rareness.density) == (8, "ffjord", density)
    assert isinstance(Candidate(k=2, estimator="gaussian").make_estimator(), GaussianDensity)
    # built as the pipeline builds it: FFJORD from density, a baseline from its defaults
    assert Candidate(k=8, density=density).make_estimator().config == density
    assert Candidate(k=2, estimator="gmm").make_estimator().config == RarenessConfig().gmm


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k": 0}, "candidate.k"),
        ({"k": 2.0}, "candidate.k"),
        ({"k": 2, "estimator": "knn"}, "candidate.estimator"),
        ({"k": 2, "estimator": "nope"}, "candidate.estimator"),
    ],
)
def test_candidate_errors_name_the_field(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Candidate(**settings)


def test_selection_input_errors() -> None:
    X = structured(50, seed=5)
    with pytest.raises(ValueError, match="candidates"):
        select_density(X, X, [])
    with pytest.raises(ValueError, match="X_fit, X_heldout"):
        select_density(X, X[:, :3], [Candidate(k=2, estimator="gaussian")])
    with pytest.raises(ValueError, match="X_heldout: is empty"):
        select_density(X, X[:0], [Candidate(k=2, estimator="gaussian")])
    with pytest.raises(ValueError, match="k: 9 components"):
        select_density(X, X, [Candidate(k=9, estimator="gaussian")])


def test_time_budget_skips_candidates_not_started_in_time() -> None:
    X = structured(300, seed=6)
    two = [Candidate(k=2, estimator="gaussian"), Candidate(k=3, estimator="gaussian")]
    spent = select_density(X[:200], X[200:], two, time_budget_s=0.0)
    assert all("time budget" in f.error and f.heldout_nll == math.inf for f in spent.fits)
    ample = select_density(X[:200], X[200:], two, time_budget_s=3600.0)
    assert all(f.error == "" and math.isfinite(f.heldout_nll) for f in ample.fits)
