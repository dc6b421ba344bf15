from __future__ import annotations

import numpy as np
import pytest

from rem_core.density import FeatureReducer


def test_pca_then_standardise_matches_the_definition():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(2000, 3)) * [5.0, 2.0, 0.5]
    X = latent @ rng.normal(size=(3, 12)) + rng.normal(0, 0.01, (2000, 12)) + 7.0
    red = FeatureReducer(k=3).fit(X)
    Z = red.transform(X)
    assert Z.shape == (2000, 3) and Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-4)
    assert red.explained_variance_ratio_.sum() > 0.999
    # The directions are the top eigenvectors of the covariance.
    w, v = np.linalg.eigh(np.cov(X.T))
    top = v[:, np.argsort(w)[::-1][:3]]
    overlap = np.abs(red.components_ @ top)
    np.testing.assert_allclose(overlap.max(1), 1, atol=1e-6)


def test_round_trip_and_errors(tmp_path):
    X = np.random.default_rng(1).normal(size=(300, 8))
    red = FeatureReducer(k=4).fit(X)
    red.save(tmp_path / "r")
    again = FeatureReducer.load(tmp_path / "r")
    np.testing.assert_array_equal(again.transform(X), red.transform(X))
    with pytest.raises(ValueError, match="expected 8 features"):
        red.transform(X[:, :5])
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        red.transform(bad)
    with pytest.raises(ValueError, match="k: 20 components"):
        FeatureReducer(k=20).fit(X[:10])
    with pytest.raises(ValueError, match="call fit"):
        FeatureReducer().transform(X)
    (tmp_path / "r" / "reducer.json").write_text("{")
    with pytest.raises(ValueError, match="not a saved FeatureReducer"):
        FeatureReducer.load(tmp_path / "r")
