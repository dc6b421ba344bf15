"""Settings of rareness (the feature space and its density), the easy-object filter and
track-level mining."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from rem_core.config.density import (
    DensityConfig,
    GaussianConfig,
    GMMConfig,
    KNNConfig,
    RealNVPConfig,
)
from rem_core.config.names import ESTIMATORS, SPLITS
from rem_core.config.rules import (
    Check,
    Settings,
    flag,
    integer,
    is_int,
    number,
    one_of,
    setting,
)
from rem_core.errors import InputError

__all__ = [
    "MiningConfig",
    "RarenessConfig",
    "ScoreConfig",
]


def _splits(value: tuple[str, ...]) -> bool:
    return len(value) > 0 and set(value) <= set(SPLITS)


def _budget(value: int | str) -> bool:
    """A count (>= 0) or a share of at most 100% (``"3%"``), as ``resolve_budget`` reads it."""
    if is_int(value):
        return value >= 0
    if not isinstance(value, str):
        return False
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return True
    share = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", text)
    return share is not None and float(share.group(1)) <= 100


def _settings_of(cls: type[Settings]) -> Any:
    """A field holding the settings of one baseline estimator. It came after the rareness
    cache keys were fixed: left out of the key while at its default (``omit_default``)."""
    return setting(
        rule=Check(lambda v: isinstance(v, cls), f"must be a {cls.__name__}"),
        default_factory=cls,
        omit_default=True,
    )


@dataclass(frozen=True, kw_only=True)
class RarenessConfig(Settings):
    """The feature space and density model of D-REM (paper section 3.1).

    Features of the main detector's detections scoring at least ``min_score`` in the
    ``fit_splits`` are reduced to ``k`` standardised components and the ``estimator``
    (``ffjord`` or a baseline: ``gaussian``, ``gmm``, ``knn``, ``realnvp``) is fitted on them.
    ``k = 32`` components: chosen with the flow's regularisation by held-out NLL
    (docs/density.md, "What was tried").

    Each estimator's settings travel here, whichever is chosen: ``density`` (FFJORD's),
    ``gaussian``, ``gmm``, ``knn`` and ``realnvp``; :meth:`estimator_settings` gives the
    chosen one's as keywords (``rem_core.density.estimator_for`` builds it from them). The
    baselines' fields enter the cache key only once changed from their defaults, so the
    keys of configurations made before they existed hold.

    >>> cfg = RarenessConfig(estimator="gmm").with_estimator_settings(n_components=4)
    >>> cfg.gmm.n_components, cfg.estimator_settings()["n_components"]
    (4, 4)
    """

    section = "rareness"

    #: The field holding each estimator's settings.
    SETTINGS_FIELDS: ClassVar[dict[str, str]] = {
        "ffjord": "density",
        "gaussian": "gaussian",
        "gmm": "gmm",
        "knn": "knn",
        "realnvp": "realnvp",
    }

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
    gaussian: GaussianConfig = _settings_of(GaussianConfig)
    gmm: GMMConfig = _settings_of(GMMConfig)
    knn: KNNConfig = _settings_of(KNNConfig)
    realnvp: RealNVPConfig = _settings_of(RealNVPConfig)

    def estimator_settings(self, name: str | None = None) -> dict[str, Any]:
        """The keyword settings of estimator ``name`` (default: the chosen ``estimator``),
        ready for ``make_estimator(name, **settings)``."""
        return dataclasses.asdict(getattr(self, self._settings_field(name)))

    def with_estimator_settings(self, name: str | None = None, **changes: Any) -> RarenessConfig:
        """A copy with settings of estimator ``name`` (default: the chosen one) changed.

        Raises:
            ValueError: a setting the estimator does not have, or a bad value (naming it).
        """
        field = self._settings_field(name)
        return dataclasses.replace(self, **{field: getattr(self, field).changed(**changes)})

    def _settings_field(self, name: str | None) -> str:
        name = self.estimator if name is None else name
        if name not in self.SETTINGS_FIELDS:
            raise InputError(
                f"rareness.estimator: unknown {name!r}; known: {', '.join(ESTIMATORS)}"
            )
        return self.SETTINGS_FIELDS[name]


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

    budget: int | str = setting(
        "3%", Check(_budget, "must be a count >= 0 or a share like '3%' (at most 100%)")
    )
    check_iou: float = number(0.0, "[0, 1)")
    fp_costs_budget: bool = flag(False)
    rank_by: str = one_of("track", ("track", "detection"))
    seed: int = integer(0, "[0, inf)")
