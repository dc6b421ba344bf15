"""Settings of the density estimators: FFJORD's (``DensityConfig``) and each baseline's.

Each estimator of ``rem_core.density`` takes its settings as keywords, checked by its class
here (``GMMConfig(n_components=0)`` and ``make_estimator("gmm", n_components=0)`` both say
``gmm.n_components: must be an int >= 1, got 0``); :class:`~rem_core.config.RarenessConfig`
carries one of each, and ``ESTIMATOR_SETTINGS`` maps an estimator's short name to its class.
The defaults are the estimators' defaults.

>>> GMMConfig(n_components=4).covariance_type
'full'
>>> ESTIMATOR_SETTINGS["knn"](k=0)
Traceback (most recent call last):
    ...
rem_core.errors.InputError: knn.k: must be an int >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from rem_core.config.detector import DEVICE
from rem_core.config.names import Estimator
from rem_core.config.rules import Check, Settings, integer, is_int, number, one_of, setting

__all__ = [
    "ACTIVATIONS",
    "COVARIANCE_TYPES",
    "ESTIMATOR_SETTINGS",
    "SOLVERS",
    "DensityConfig",
    "GMMConfig",
    "GaussianConfig",
    "KNNConfig",
    "RealNVPConfig",
]

#: torchdiffeq's methods that ``DensityConfig.solver`` may name.
SOLVERS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2", "rk4", "midpoint", "euler")
#: Smooth activations of the flow's dynamics (the trace needs a smooth ``f``).
ACTIVATIONS = ("softplus", "tanh")


def _widths(value: tuple[int, ...]) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) >= 1
        and all(is_int(h) and 1 <= h <= 4096 for h in value)
    )


#: Covariance structures of ``GMMConfig.covariance_type`` (scikit-learn's).
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True, kw_only=True)
class DensityConfig(Settings):
    """Settings of :class:`FFJORD`: dynamics, ODE solver, training and scoring.

    Attributes:
        hidden: widths of the hidden layers of the dynamics MLP ``f(t, z)``; time is
            concatenated to the input of every layer.
        activation: ``"softplus"`` or ``"tanh"`` (smooth, so the trace is well defined).
        t1: integration end time.
        solver: a torchdiffeq method (``"dopri5"`` by default).
        rtol, atol: solver tolerances for scoring (``score_samples``).
        train_rtol, train_atol: solver tolerances while training and for the validation NLL.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: training mini-batch size.
        max_epochs: upper bound on training epochs.
        patience: epochs without a better validation NLL before stopping early.
        val_fraction: share of ``X`` held out for early stopping (0 disables it).
        score_batch_size: rows per ODE solve when scoring.
        max_nfe: most function evaluations one ODE solve may take. A solve that needs more
            (the learned dynamics turned stiff) stops: training keeps the best weights so
            far, scoring raises an error.
        seed: seed of initialisation, split, shuffling and Hutchinson noise.
        device: torch device, ``"cpu"`` by default.
        kinetic_weight: RNODE weight ``lambda_K`` of the kinetic energy
            ``integral_0^t1 ||f(t, z)||^2 dt`` added to the training loss (RNODE: Finlay et
            al. 2020, "How to train your neural ODE"), summed over the ``D`` dimensions and
            averaged over rows; 0 disables it. Training only: scoring is unchanged.
        jacobian_weight: RNODE weight ``lambda_J`` of the Jacobian's squared Frobenius norm
            ``integral_0^t1 ||eps^T df/dz||^2 dt`` (Hutchinson, the probe of the trace
            estimate); 0 disables it. Both default to 0.1, chosen by held-out NLL on the
            demo worlds (docs/density.md, "What was tried").
    """

    section = "density"

    hidden: tuple[int, ...] = setting(
        (64, 64), Check(_widths, "must be a non-empty tuple of ints in [1, 4096]")
    )
    activation: str = one_of("softplus", ACTIVATIONS)
    t1: float = number(1.0, "(0, 100]")
    solver: str = one_of("dopri5", SOLVERS)
    rtol: float = number(1e-5, "(0, 1]")
    atol: float = number(1e-5, "(0, 1]")
    train_rtol: float = number(1e-4, "(0, 1]")
    train_atol: float = number(1e-4, "(0, 1]")
    lr: float = number(3e-3, "(0, 1]")
    weight_decay: float = number(0.0, "[0, inf)")
    batch_size: int = integer(1024, "[1, inf)")
    max_epochs: int = integer(100, "[1, inf)")
    patience: int = integer(10, "[1, inf)")
    val_fraction: float = number(0.1, "[0, 0.5)")
    score_batch_size: int = integer(8192, "[1, inf)")
    max_nfe: int = integer(5000, "[10, inf)")
    seed: int = integer(0, "[0, inf)")
    device: str = setting("cpu", DEVICE)
    kinetic_weight: float = number(0.1, "[0, 100]")
    jacobian_weight: float = number(0.1, "[0, 100]")


@dataclass(frozen=True, kw_only=True)
class GaussianConfig(Settings):
    """Settings of :class:`~rem_core.density.GaussianDensity`.

    Attributes:
        reg: added to the covariance's diagonal for numerical stability (variance units).
    """

    section = "gaussian"

    reg: float = number(1e-6, "[0, inf)")


@dataclass(frozen=True, kw_only=True)
class GMMConfig(Settings):
    """Settings of :class:`~rem_core.density.GaussianMixtureDensity` (scikit-learn's EM).

    Attributes:
        n_components: mixture components.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        reg_covar: added to the covariances' diagonals.
        max_iter: EM iterations.
        n_init: EM restarts (the best is kept).
        seed: seed of the k-means initialisation.
    """

    section = "gmm"

    n_components: int = integer(8, "[1, inf)")
    covariance_type: str = one_of("full", COVARIANCE_TYPES)
    reg_covar: float = number(1e-6, "[0, inf)")
    max_iter: int = integer(200, "[1, inf)")
    n_init: int = integer(1, "[1, inf)")
    seed: int = integer(0, "[0, inf)")


@dataclass(frozen=True, kw_only=True)
class KNNConfig(Settings):
    """Settings of :class:`~rem_core.density.KNNDensity`.

    Attributes:
        k: the neighbour whose distance gives the score (a training point is its own first).
    """

    section = "knn"

    k: int = integer(10, "[1, inf)")


@dataclass(frozen=True, kw_only=True)
class RealNVPConfig(Settings):
    """Settings of :class:`~rem_core.density.RealNVP` (trained as FFJORD is, by Adam with
    early stopping on a held-out share).

    Attributes:
        n_layers: affine coupling layers.
        hidden: width of each coupling network's two hidden layers.
        lr, weight_decay, batch_size, max_epochs, patience, val_fraction, seed, device: as in
            :class:`DensityConfig`.
    """

    section = "realnvp"

    n_layers: int = integer(8, "[1, inf)")
    hidden: int = integer(64, "[1, inf)")
    lr: float = number(1e-3, "(0, 1]")
    weight_decay: float = number(0.0, "[0, inf)")
    batch_size: int = integer(1024, "[1, inf)")
    max_epochs: int = integer(200, "[1, inf)")
    patience: int = integer(10, "[1, inf)")
    val_fraction: float = number(0.1, "[0, 0.5)")
    seed: int = integer(0, "[0, inf)")
    device: str = setting("cpu", DEVICE)


#: Each estimator's settings class, by the estimator's short name (``ESTIMATORS``).
ESTIMATOR_SETTINGS: dict[Estimator, type[Settings]] = {
    "ffjord": DensityConfig,
    "gaussian": GaussianConfig,
    "gmm": GMMConfig,
    "knn": KNNConfig,
    "realnvp": RealNVPConfig,
}
