"""Settings of rareness (the feature space and its density), the easy-object filter and
track-level mining."""

from __future__ import annotations

from dataclasses import dataclass

from rem_core.config.detector import DEVICE
from rem_core.config.names import ESTIMATORS, SPLITS
from rem_core.config.rules import Check, Settings, flag, integer, is_int, number, one_of, setting

__all__ = [
    "ACTIVATIONS",
    "SOLVERS",
    "DensityConfig",
    "MiningConfig",
    "RarenessConfig",
    "ScoreConfig",
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


def _splits(value: tuple[str, ...]) -> bool:
    return len(value) > 0 and set(value) <= set(SPLITS)


def _budget(value: int | str) -> bool:
    return is_int(value) or (isinstance(value, str) and bool(value.strip()))


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
class RarenessConfig(Settings):
    """The feature space and density model of D-REM (paper section 3.1).

    Features of the main detector's detections scoring at least ``min_score`` in the
    ``fit_splits`` are reduced to ``k`` standardised components and the ``estimator``
    (``ffjord`` or a baseline: ``gaussian``, ``gmm``, ``knn``, ``realnvp``) is fitted on them.
    ``k = 32`` components: chosen with the flow's regularisation by held-out NLL
    (docs/density.md, "What was tried").
    """

    section = "rareness"

    k: int = integer(32, "[1, 512]")
    estimator: str = one_of("ffjord", ESTIMATORS)
    min_score: float = number(0.3, "[0, 1)")
    fit_splits: tuple[str, ...] = setting(
        ("source", "unlabelled"), Check(_splits, f"must name splits among {', '.join(SPLITS)}")
    )
    density: DensityConfig = setting(
        rule=Check(lambda v: isinstance(v, DensityConfig), "must be a DensityConfig"),
        default_factory=lambda: DensityConfig(max_epochs=40),
    )


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(Settings):
    """The hard-example filter of M-REM and MD-REM (paper eqs. 10-11).

    An object is *easy* (kept) when it has more than ``min_points`` points and lies closer
    than ``max_distance_m``; rare-but-easy objects are what REM mines, not merely hard ones.
    """

    section = "score"

    min_points: int = integer(200, "[0, inf)")
    max_distance_m: float = number(50.0, "(0, inf)", "m")


@dataclass(frozen=True, kw_only=True)
class MiningConfig(Settings):
    """Track-level mining (paper Algorithm 1): the budget and the simulated labeller.

    Attributes:
        budget: tracks to have labelled: a count (``1500``) or a share of the pool's
            ground-truth tracks (``"3%"``).
        check_iou: the simulated labeller finds an object at a detection when some
            ground-truth box of its frame overlaps it with BEV IoU above this (0: any overlap).
        fp_costs_budget: whether a check that finds nothing (a false positive) uses one unit
            of the budget.
        rank_by: ``"track"`` (default): a detection ranks by its predicted track's mean value
            (the per-track aggregation of paper section 4.1; Random and the oracles rank
            each detection by its own value regardless); ``"detection"``: by its own value.
        seed: seed of the Random method.
    """

    section = "mining"

    budget: int | str = setting("3%", Check(_budget, "must be a count or a share like '3%'"))
    check_iou: float = number(0.0, "[0, 1)")
    fp_costs_budget: bool = flag(False)
    rank_by: str = one_of("track", ("track", "detection"))
    seed: int = integer(0, "[0, inf)")
