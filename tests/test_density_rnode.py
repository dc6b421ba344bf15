"""RNODE regularisation of FFJORD (Finlay et al. 2020): exact oracles, the loss, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from test_density import gaussian_mixture, mixture_logpdf, random_mlp, sample_mixture
from torch import Tensor, nn

from rem_core.config import DensityConfig
from rem_core.density import (
    FFJORD,
    GaussianDensity,
    MLPDynamics,
    cnf_log_prob,
    cnf_regularised_terms,
    load_estimator,
    make_estimator,
)

A = torch.tensor([[0.3, -0.5, 0.1], [0.2, -0.4, 0.0], [0.1, 0.3, 0.6]], dtype=torch.float64)


class Linear(nn.Module):
    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return z @ A.T


def rademacher(shape: tuple[int, ...], seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=gen).double() * 2 - 1


def test_linear_field_penalties_match_closed_form() -> None:
    """For f = A z: z(t) = e^{tA} x, so K = int_0^1 |A e^{tA} x|^2 dt (Gauss-Legendre, 40
    nodes: exact to rounding for this smooth integrand) and J = |A^T eps|^2 exactly."""
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = rademacher((6, 3), seed=1)
    terms = cnf_regularised_terms(Linear(), x, eps, rtol=1e-10, atol=1e-10, create_graph=False)
    nodes, weights = np.polynomial.legendre.leggauss(40)
    a = A.numpy()
    kinetic = np.zeros(6)
    for s, w in zip((nodes + 1) / 2, weights / 2, strict=True):
        v = x.numpy() @ expm(s * a).T @ a.T
        kinetic += w * (v**2).sum(axis=1)
    np.testing.assert_allclose(terms.kinetic.detach().numpy(), kinetic, rtol=1e-7)
    np.testing.assert_allclose(
        terms.jacobian.detach().numpy(), ((eps @ A) ** 2).sum(1).numpy(), rtol=1e-9
    )
    # The trace part is Hutchinson's eps^T A eps, integrated over [0, 1].
    z1 = x @ torch.linalg.matrix_exp(A).T
    expected = -0.5 * (z1.pow(2).sum(1) + 3 * math.log(2 * math.pi)) + (eps @ A * eps).sum(1)
    torch.testing.assert_close(terms.log_prob.detach(), expected, rtol=1e-8, atol=1e-8)


def test_regularised_loss_is_at_least_the_nll_loss() -> None:
    net = random_mlp(3, (16, 16), "softplus", seed=2).double()
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = rademacher((64, 3), seed=4)
    terms = cnf_regularised_terms(net, x, eps, rtol=1e-6, atol=1e-6)
    plain, nfe = cnf_log_prob(net, x, noise=eps, rtol=1e-6, atol=1e-6, create_graph=True)
    # Same probe and same error control (z and L only): the NLL part is the plain solve's.
    torch.testing.assert_close(terms.log_prob, plain, rtol=1e-9, atol=1e-9)
    assert terms.nfe == nfe
    nll = -plain.mean()
    assert torch.all(terms.kinetic > 0) and torch.all(terms.jacobian > 0)
    for wk, wj in [(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (0.1, 1.0)]:
        loss = terms.loss(wk, wj)
        expected = nll + wk * terms.kinetic.mean() + wj * terms.jacobian.mean()
        torch.testing.assert_close(loss, expected)
        assert loss >= nll
    assert terms.loss(0.1, 0.1) > nll + 1e-3


def test_penalties_have_finite_nonzero_gradients() -> None:
    net = random_mlp(3, (16, 16), "tanh", seed=5).double()
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    terms = cnf_regularised_terms(net, x, rademacher((32, 3), seed=7), rtol=1e-6, atol=1e-6)
    for value in (terms.kinetic.mean(), terms.jacobian.mean()):
        assert math.isfinite(float(value.detach())) and float(value.detach()) > 0
        grads = torch.autograd.grad(value, list(net.parameters()), retain_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        assert torch.isfinite(flat).all()
        assert float(flat.abs().max()) > 1e-6


def test_zero_dynamics_have_zero_penalties() -> None:
    net = MLPDynamics(3, (8, 8)).double()  # zero output layer: f = 0
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    terms = cnf_regularised_terms(net, x, rademacher((16, 3), seed=9))
    assert float(terms.kinetic.detach().abs().max()) == 0
    assert float(terms.jacobian.detach().abs().max()) == 0
    torch.testing.assert_close(terms.loss(1.0, 1.0), terms.loss(0.0, 0.0))


def test_regularised_fit_learns_a_2d_density() -> None:
    mix = gaussian_mixture(2, 3, seed=3, spread=2.0)
    X, X_test = sample_mixture(mix, 2000, 1), sample_mixture(mix, 2000, 2)
    entropy = -mixture_logpdf(mix, X_test).mean()
    standard = -(-0.5 * (X_test**2).sum(1) - math.log(2 * math.pi)).mean()
    single = -GaussianDensity().fit(X).score_samples(X_test).mean()
    est = FFJORD(
        max_epochs=40,
        batch_size=128,
        patience=5,
        hidden=(32, 32),
        seed=0,
        kinetic_weight=0.05,
        jacobian_weight=0.05,
    ).fit(X)
    nll = -est.score_samples(X_test).mean()
    assert nll < standard - 1.0  # clearly below a standard normal's NLL...
    assert nll - entropy < 0.7 * (single - entropy)  # ...and most of the non-Gaussian gap
    assert all(r.kinetic > 0 and r.jacobian > 0 for r in est.history_)
    assert all(math.isfinite(r.train_nll) for r in est.history_)


def test_regularisation_lowers_the_kinetic_energy() -> None:
    mix = gaussian_mixture(2, 3, seed=3, spread=2.0)
    X = sample_mixture(mix, 1000, 1)
    settings = {"max_epochs": 15, "batch_size": 128, "hidden": (16, 16), "val_fraction": 0.0}
    plain = FFJORD(**settings, kinetic_weight=0.0, jacobian_weight=0.0).fit(X)
    strong = FFJORD(**settings, kinetic_weight=1.0, jacobian_weight=1.0).fit(X)
    x = torch.as_tensor(X[:500], dtype=torch.float32)
    eps = rademacher((500, 2), seed=10).float()

    def energy(est: FFJORD) -> float:
        terms = cnf_regularised_terms(est.dynamics_, x, eps, create_graph=False)
        return float((terms.kinetic.mean() + terms.jacobian.mean()).detach())

    assert math.isnan(plain.history_[-1].kinetic)  # not computed without regularisation
    assert energy(strong) < 0.5 * energy(plain)


def test_regularised_settings_round_trip(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(300, 2))
    est = FFJORD(max_epochs=2, hidden=(8, 8), kinetic_weight=0.2, jacobian_weight=0.3).fit(X)
    est.save(tmp_path)
    again = load_estimator(tmp_path)
    assert again.config.kinetic_weight == 0.2 and again.config.jacobian_weight == 0.3
    np.testing.assert_array_equal(again.score_samples(X), est.score_samples(X))
    # A model saved before the RNODE settings existed was trained without them: it loads
    # with both weights 0, whatever today's defaults.
    info = json.loads((tmp_path / "density.json").read_text())
    del info["settings"]["kinetic_weight"], info["settings"]["jacobian_weight"]
    (tmp_path / "density.json").write_text(json.dumps(info))
    old = load_estimator(tmp_path)
    assert (old.config.kinetic_weight, old.config.jacobian_weight) == (0.0, 0.0)
    np.testing.assert_array_equal(old.score_samples(X), est.score_samples(X))


@pytest.mark.parametrize("field", ["kinetic_weight", "jacobian_weight"])
@pytest.mark.parametrize("value", [-0.1, 101.0, math.nan, math.inf, True, "0.1"])
def test_weight_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"density.{field}: must be a number in"):
        DensityConfig(**{field: value})
    with pytest.raises(ValueError, match=f"density.{field}"):
        make_estimator("ffjord", **{field: value})


def test_zero_weights_train_the_plain_flow() -> None:
    """Weights 0 take the plain solve: no penalties recorded, the same fit as before RNODE."""
    X = np.random.default_rng(1).normal(size=(300, 2))
    plain = FFJORD(max_epochs=2, hidden=(8, 8), kinetic_weight=0.0, jacobian_weight=0.0).fit(X)
    assert all(math.isnan(r.kinetic) and math.isnan(r.jacobian) for r in plain.history_)
    regularised = FFJORD(max_epochs=2, hidden=(8, 8), kinetic_weight=0.1, jacobian_weight=0.1)
    history = regularised.fit(X).history_  # the flow starts at f = 0: epoch 1 may give 0
    assert all(r.kinetic >= 0 for r in history) and history[-1].kinetic > 0
    assert DensityConfig(kinetic_weight=0.0, jacobian_weight=100.0).jacobian_weight == 100.0
