"""Density estimators: analytic oracles for FFJORD and one contract every estimator passes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from torch import Tensor, nn

from rem_core.config import (
    ESTIMATOR_SETTINGS,
    ESTIMATORS,
    DensityConfig,
    GaussianConfig,
    KNNConfig,
    RarenessConfig,
    RealNVPConfig,
)
from rem_core.density import (
    ESTIMATOR_CLASSES,
    FFJORD,
    DensityEstimator,
    GaussianDensity,
    GaussianMixtureDensity,
    KNNDensity,
    MLPDynamics,
    RealNVP,
    SolverStalled,
    cnf_log_prob,
    estimator_for,
    exact_divergence,
    hutchinson_divergence,
    load_estimator,
    make_estimator,
    rareness,
    standard_normal_log_prob,
)
from rem_core.density.training import _train_flow

# --- helpers ----------------------------------------------------------------------------------


def gaussian_mixture(
    d: int, k: int, seed: int, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, D), covariances (K, D, D) of a random mixture."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(k, d))
    covs = []
    for _ in range(k):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        covs.append(q @ np.diag(rng.uniform(0.1, 0.5, size=d)) @ q.T)
    return np.full(k, 1 / k), means, np.stack(covs)


def sample_mixture(mix: tuple, n: int, seed: int) -> np.ndarray:
    w, means, covs = mix
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(w), size=n, p=w)
    chol = np.linalg.cholesky(covs)
    return means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.normal(size=(n, means.shape[1])))


def mixture_logpdf(mix: tuple, X: np.ndarray) -> np.ndarray:
    w, means, covs = mix
    parts = [
        np.log(wi) + multivariate_normal(m, c).logpdf(X)
        for wi, m, c in zip(w, means, covs, strict=True)
    ]
    return logsumexp(np.stack(parts), axis=0)


class ZeroDynamics(nn.Module):
    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return 0.0 * z


class PlainMLP(nn.Module):
    """The same function as an MLPDynamics but without its closed-form divergence."""

    def __init__(self, inner: MLPDynamics):
        super().__init__()
        self.inner = inner

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.inner(t, z)


def random_mlp(d: int, hidden: tuple[int, ...], activation: str, seed: int) -> MLPDynamics:
    gen = torch.Generator().manual_seed(seed)
    net = MLPDynamics(d, hidden, activation)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net


def brute_trace(net: nn.Module, t: float, z: Tensor) -> Tensor:
    jac = [torch.autograd.functional.jacobian(lambda v: net(t, v[None])[0], zi) for zi in z]
    return torch.stack([j.trace() for j in jac])


# --- FFJORD oracles ---------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [False, True])
def test_zero_dynamics_is_the_base_gaussian(noise: bool) -> None:
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    probe = torch.ones_like(x) if noise else None
    logp, nfe = cnf_log_prob(ZeroDynamics(), x, noise=probe)
    logp = logp.detach()
    expected = multivariate_normal(np.zeros(5), np.eye(5)).logpdf(x.numpy())
    np.testing.assert_allclose(logp.numpy(), expected, rtol=0, atol=1e-12)
    assert nfe > 0


@pytest.mark.parametrize(
    ("hidden", "activation"), [((64, 64), "softplus"), ((8,), "tanh"), ((8, 8, 8), "tanh")]
)
def test_exact_trace_matches_brute_force_jacobian(hidden: tuple[int, ...], activation: str) -> None:
    net = random_mlp(3, hidden, activation, seed=1).double()
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = brute_trace(net, 0.4, z)
    f, closed = exact_divergence(net, 0.4, z)
    _, via_jacrev = exact_divergence(PlainMLP(net), torch.tensor(0.4, dtype=torch.float64), z)
    torch.testing.assert_close(closed, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(via_jacrev, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f, net(0.4, z))


def test_log_density_change_matches_integrated_brute_force_trace() -> None:
    """A linear field f = A z over [0, 1] has log-det exactly tr(A): check the full solve."""
    a = torch.tensor([[0.3, -0.5, 0.1], [0.2, -0.4, 0.0], [0.1, 0.3, 0.6]], dtype=torch.float64)

    class Linear(nn.Module):
        def forward(self, t: Tensor, z: Tensor) -> Tensor:
            return z @ a.T

    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    logp, _ = cnf_log_prob(Linear(), x, rtol=1e-9, atol=1e-9)
    z1 = x @ torch.linalg.matrix_exp(a).T
    expected = standard_normal_log_prob(z1) + torch.trace(a)
    torch.testing.assert_close(logp, expected, rtol=1e-7, atol=1e-7)


def test_hutchinson_is_unbiased() -> None:
    net = random_mlp(4, (16, 16), "softplus", seed=4).double()
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = brute_trace(net, 0.2, z)
    n = 20000
    gen = torch.Generator().manual_seed(6)
    probes = torch.randint(0, 2, (n, 3, 4), generator=gen).double() * 2 - 1
    zz = z.repeat(n, 1)
    _, est = hutchinson_divergence(net, 0.2, zz, probes.reshape(-1, 4), create_graph=False)
    est = est.reshape(n, 3)
    se = est.std(dim=0) / math.sqrt(n)
    assert torch.all((est.mean(dim=0) - exact).abs() < 4 * se + 1e-9)
    assert torch.all(est.std(dim=0) > 0)  # not trivially exact


class StiffDynamics(nn.Module):
    """``dz/dt = -k z``: explicit solvers need ever more steps as ``k`` grows."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return -self.k * z


def test_solver_stops_past_max_nfe() -> None:
    x = torch.randn(8, 3)
    _, nfe = cnf_log_prob(StiffDynamics(1.0), x, max_nfe=1000)
    assert nfe <= 1000
    with pytest.raises(SolverStalled, match="more than 50 function evaluations"):
        cnf_log_prob(StiffDynamics(1e4), x, max_nfe=50)


@pytest.mark.parametrize("val_fraction", [0.0, 0.25])
def test_training_keeps_the_best_weights_when_a_solve_stalls(val_fraction: float) -> None:
    module = nn.Linear(2, 1)
    X = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    n_train = len(X) - int(round(val_fraction * len(X)))
    starts = []  # weights at the start of every batch; two batches per epoch

    def batch_loss(xb: Tensor, gen: torch.Generator) -> tuple[Tensor, int]:
        starts.append({k: v.clone() for k, v in module.state_dict().items()})
        if len(starts) == 8:  # the second batch of epoch 4, after one update in that epoch
            raise SolverStalled("too stiff")
        return (module(xb) - 3).pow(2).mean(), 7

    settings = RealNVPConfig(
        lr=1e-2, batch_size=n_train // 2, max_epochs=10, patience=10, val_fraction=val_fraction
    )
    history = _train_flow(
        module,
        X,
        settings,
        batch_loss=batch_loss,
        eval_nll=lambda xv: float((module(xv) - 3).pow(2).mean().detach()),
        name="test",
    )
    assert [r.stalled for r in history] == [False, False, False, True]
    assert math.isnan(history[-1].train_nll) and history[-1].nfe == 7
    # The loss falls every epoch, so with or without a held-out split the weights kept are
    # those after epoch 3, not the half-updated ones of the stalled epoch.
    assert history[2].val_nll < history[1].val_nll or not val_fraction
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, starts[6][k])
        assert not torch.equal(v, starts[7][k])


def test_solver_stall_in_the_first_epoch_is_an_error() -> None:
    X = np.random.default_rng(0).normal(size=(64, 2))
    with pytest.raises(SolverStalled, match="first epoch"):
        FFJORD(max_nfe=10, max_epochs=2, train_rtol=1e-7, train_atol=1e-7, lr=0.5).fit(X)


def test_ffjord_fits_a_small_mixture() -> None:
    mix = gaussian_mixture(2, 3, seed=3, spread=2.0)
    X, X_test = sample_mixture(mix, 2000, 1), sample_mixture(mix, 2000, 2)
    entropy = -mixture_logpdf(mix, X_test).mean()
    single = -GaussianDensity().fit(X).score_samples(X_test).mean()
    est = FFJORD(max_epochs=40, batch_size=128, patience=5, hidden=(32, 32), seed=0).fit(X)
    nll = -est.score_samples(X_test).mean()
    assert single - entropy > 0.5  # the mixture is clearly non-Gaussian...
    assert nll - entropy < 0.7 * (single - entropy)  # ...and FFJORD closes a good part of it
    assert nll - entropy > -0.05  # a held-out NLL cannot beat the entropy by much
    assert all(r.nfe > 0 for r in est.history_)


@pytest.mark.slow
def test_ffjord_fits_a_16d_mixture() -> None:
    mix = gaussian_mixture(16, 4, seed=0)
    X, X_test = sample_mixture(mix, 20000, 1), sample_mixture(mix, 10000, 2)
    entropy = -mixture_logpdf(mix, X_test).mean()
    nll = -FFJORD(max_epochs=60, patience=5).fit(X).score_samples(X_test).mean()
    assert (nll - entropy) / 16 < 0.1


# --- the shared contract ----------------------------------------------------------------------

D = 3
FAST = {
    "ffjord": lambda seed: FFJORD(max_epochs=3, batch_size=256, seed=seed, hidden=(16, 16)),
    "gaussian": lambda seed: GaussianDensity(),
    "gmm": lambda seed: GaussianMixtureDensity(n_components=3, seed=seed),
    "knn": lambda seed: KNNDensity(k=5),
    "realnvp": lambda seed: RealNVP(n_layers=4, hidden=16, max_epochs=5, batch_size=256, seed=seed),
}


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(600, D)).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(FAST))
def fitted(request: pytest.FixtureRequest, data: np.ndarray) -> tuple[str, DensityEstimator]:
    return request.param, FAST[request.param](0).fit(data)


def test_contract_shapes_and_finite(fitted: tuple[str, DensityEstimator], data: np.ndarray) -> None:
    _, est = fitted
    assert isinstance(est, DensityEstimator)
    scores = est.score_samples(data[:50])
    assert scores.shape == (50,) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(rareness(est, data[:50]), -scores)
    np.testing.assert_allclose(est.score_samples(data[:50].astype(np.float64)), scores, atol=1e-5)


def test_contract_mode_beats_far_away(fitted: tuple[str, DensityEstimator]) -> None:
    _, est = fitted
    mode, far = np.zeros((1, D)), np.full((1, D), 6.0)
    assert est.score_samples(mode)[0] > est.score_samples(far)[0] + 5


def test_contract_save_load_round_trip(
    fitted: tuple[str, DensityEstimator], data: np.ndarray, tmp_path: Path
) -> None:
    name, est = fitted
    est.save(tmp_path / name)
    again = type(est).load(tmp_path / name)
    np.testing.assert_array_equal(again.score_samples(data), est.score_samples(data))
    assert type(load_estimator(tmp_path / name)) is type(est)


def test_contract_deterministic_under_seed(
    fitted: tuple[str, DensityEstimator], data: np.ndarray
) -> None:
    name, est = fitted
    state = torch.random.get_rng_state()
    again = FAST[name](0).fit(data)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG left alone
    np.testing.assert_array_equal(again.score_samples(data), est.score_samples(data))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((4, D), np.nan), "NaN"),
        (np.zeros((4, D + 1)), "features"),
        (np.zeros(D), "2-D"),
        (np.zeros((0, D)), "empty"),
    ],
)
def test_contract_bad_input(
    fitted: tuple[str, DensityEstimator], bad: np.ndarray, message: str
) -> None:
    name, est = fitted
    with pytest.raises(ValueError, match=message):
        est.score_samples(bad)
    if message != "features":
        with pytest.raises(ValueError, match=message):
            FAST[name](0).fit(bad)


@pytest.mark.parametrize("name", sorted(FAST))
def test_contract_unfitted_raises(name: str) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        FAST[name](0).score_samples(np.zeros((2, D)))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", ()),
        ("activation", "relu"),
        ("solver", "magic"),
        ("rtol", 0.0),
        ("train_atol", -1.0),
        ("batch_size", 0),
        ("max_epochs", 0),
        ("patience", 0),
        ("val_fraction", 0.5),
        ("lr", 0.0),
        ("t1", 0.0),
        ("device", "not-a-device"),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"density.{field}"):
        DensityConfig(**{field: value})


@pytest.mark.parametrize(
    ("name", "settings", "field"),
    [
        ("knn", {"k": 0}, "knn.k"),
        ("gmm", {"n_components": 0}, "gmm.n_components"),
        ("gmm", {"covariance_type": "weird"}, "gmm.covariance_type"),
        ("gaussian", {"reg": -1.0}, "gaussian.reg"),
        ("realnvp", {"n_layers": 0}, "realnvp.n_layers"),
        ("ffjord", {"max_epochs": 0}, "density.max_epochs"),
        ("ffjord", {"nonsense": 1}, "density"),
        ("nope", {}, "density.estimator"),
    ],
)
def test_make_estimator_errors_name_the_field(name: str, settings: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_estimator(name, **settings)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FFJORD(hidden=(0,)), r"^density\.hidden: must be a non-empty tuple"),
        (lambda: FFJORD(max_epochs=2.0), r"^density\.max_epochs: must be an int >= 1, got 2\.0"),
        (lambda: GaussianDensity(reg=math.nan), r"^gaussian\.reg: must be a number >= 0"),
        (lambda: GaussianMixtureDensity(seed=1.5), r"^gmm\.seed: must be an int >= 0"),
        (lambda: GaussianMixtureDensity(max_iter=0), r"^gmm\.max_iter: must be an int >= 1"),
        (lambda: KNNDensity(k=True), r"^knn\.k: must be an int >= 1, got True"),
        (lambda: RealNVP(device="tpu"), r"^realnvp\.device: must be cpu, cuda\[:n\] or mps"),
        (lambda: RealNVP(val_fraction=0.5), r"^realnvp\.val_fraction: must be a number in"),
        (lambda: KNNDensity(j=1), r"^knn: unknown setting j; known: k$"),
        (lambda: GaussianDensity(KNNConfig()), r"^gaussian: config must be a GaussianConfig"),
    ],
)
def test_keyword_settings_are_checked_by_their_class(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", ESTIMATORS)
def test_each_estimator_takes_its_settings_class(name: str) -> None:
    cls = ESTIMATOR_SETTINGS[name]
    assert make_estimator(name).config == cls()  # the defaults are the settings' defaults
    assert set(RarenessConfig.SETTINGS_FIELDS) == set(ESTIMATORS) == set(ESTIMATOR_SETTINGS)
    est = make_estimator(name)
    assert type(est)(config=est.config).config == est.config


def test_keywords_replace_the_fields_of_config() -> None:
    base = DensityConfig(max_epochs=7, hidden=(8, 8))
    est = FFJORD(config=base, seed=3)
    assert (est.config.max_epochs, est.config.hidden, est.config.seed) == (7, (8, 8), 3)
    assert GaussianDensity(GaussianConfig(reg=0.5)).config.reg == 0.5


#: Non-default settings of each estimator, as ``RarenessConfig`` carries them.
CHANGED = {
    "ffjord": {"hidden": (8,), "max_epochs": 1, "activation": "tanh", "seed": 2},
    "gaussian": {"reg": 1e-3},
    "gmm": {"n_components": 2, "covariance_type": "diag", "max_iter": 50, "seed": 4},
    "knn": {"k": 3},
    "realnvp": {"n_layers": 2, "hidden": 8, "max_epochs": 1, "seed": 5},
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_for_gives_the_rareness_settings(
    name: str, data: np.ndarray, tmp_path: Path
) -> None:
    rareness = RarenessConfig(estimator=name).with_estimator_settings(**CHANGED[name])
    est = estimator_for(rareness)
    assert type(est) is ESTIMATOR_CLASSES[name]
    assert est.config == ESTIMATOR_SETTINGS[name]().changed(**CHANGED[name])
    est.fit(data[:200])
    if name == "gmm":  # the settings reach the fitted model
        assert (est.mixture_.n_components, est.mixture_.covariance_type) == (2, "diag")
        assert est.mixture_.random_state == 4
    if name == "knn":
        assert est._nn.n_neighbors == 3
    est.save(tmp_path)
    assert load_estimator(tmp_path).config == est.config


#: ``density.json`` settings as the estimators wrote them before their settings classes.
SAVED_BEFORE = {
    "gaussian": {"reg": 1e-6},
    "gmm": {"n_components": 3, "covariance_type": "full", "reg_covar": 1e-6, "max_iter": 200,
            "n_init": 1, "seed": 0},
    "knn": {"k": 5},
    "realnvp": {"n_layers": 4, "hidden": 16, "lr": 1e-3, "weight_decay": 0.0,
                "batch_size": 256, "max_epochs": 5, "patience": 10, "val_fraction": 0.1,
                "seed": 0, "device": "cpu"},
}  # fmt: skip


def test_saved_settings_are_written_as_before(
    fitted: tuple[str, DensityEstimator], tmp_path: Path
) -> None:
    """Models saved before the settings classes load, and new saves read the same."""
    name, est = fitted
    est.save(tmp_path)
    info = json.loads((tmp_path / "density.json").read_text())
    if name in SAVED_BEFORE:
        assert info["settings"] == SAVED_BEFORE[name]
    else:
        assert info["settings"] == json.loads(json.dumps(dataclasses.asdict(est.config)))


def test_load_rejects_the_wrong_kind(data: np.ndarray, tmp_path: Path) -> None:
    GaussianDensity().fit(data).save(tmp_path)
    with pytest.raises(ValueError, match="gaussian"):
        KNNDensity.load(tmp_path)
    with pytest.raises(ValueError, match="not a saved density estimator"):
        GaussianDensity.load(tmp_path / "missing")


def test_gaussian_matches_scipy(data: np.ndarray) -> None:
    data = data.astype(np.float64)
    est = GaussianDensity(reg=0.0).fit(data)
    ref = multivariate_normal(data.mean(0), np.cov(data.T, bias=True))
    np.testing.assert_allclose(est.score_samples(data[:20]), ref.logpdf(data[:20]), rtol=1e-10)


def test_knn_matches_a_uniform_density() -> None:
    """On a uniform square of area 4 the kNN estimate is about log(1/4) in the interior."""
    X = np.random.default_rng(1).uniform(-1, 1, size=(20000, 2))
    scores = KNNDensity(k=50).fit(X).score_samples(np.zeros((1, 2)))
    assert abs(scores[0] - math.log(0.25)) < 0.2
