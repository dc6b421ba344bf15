"""Frozen configuration of every stage, nested in one :class:`RemConfig`.

Each stage's settings are a frozen, keyword-only dataclass whose fields declare their rule
beside their default (``rem_core.config.rules``); a bad value raises ``ValueError`` naming the
field. ``config_hash`` gives a stable key for the disk cache: it changes whenever any setting
that shapes a stage's output changes. ``config_to_dict`` writes settings as JSON-ready dicts
and ``config_from_dict`` (``config/rebuild.py``) reads them back into the same dataclasses.

The settings live by stage: ``world`` (the synthetic world), ``detector`` (the detector, the
tracker, the auto-labeler), ``rareness`` (the density, the easy-object filter, mining) and
``experiment`` (the active-learning experiment, the feature source). The density
estimators' settings (FFJORD's ``DensityConfig`` and the baselines' ``GaussianConfig``,
``GMMConfig``, ``KNNConfig``, ``RealNVPConfig``) are in ``config/density.py``, carried by
``RarenessConfig``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rem_core.config.density import (
    ACTIVATIONS,
    COVARIANCE_TYPES,
    ESTIMATOR_SETTINGS,
    SOLVERS,
    DensityConfig,
    GaussianConfig,
    GMMConfig,
    KNNConfig,
    RealNVPConfig,
)
from rem_core.config.detector import (
    DEVICE,
    AutoLabelConfig,
    DetectorConfig,
    TrackerConfig,
)
from rem_core.config.experiment import (
    ExperimentConfig,
    FeatureConfig,
)
from rem_core.config.names import (
    ESTIMATORS,
    EXPERIMENT_ROW_NAMES,
    FEATURE_CHOICES,
    FEATURE_SOURCES,
    MINING_METHODS,
    PRECISIONS,
    PRESETS,
    SPLITS,
    Estimator,
    ExperimentRowName,
    FeatureSourceName,
    MiningMethod,
    Precision,
    Preset,
    Split,
)
from rem_core.config.rareness import (
    MiningConfig,
    RarenessConfig,
    ScoreConfig,
)
from rem_core.config.rebuild import config_from_dict
from rem_core.config.rules import (
    Check,
    Interval,
    OneOf,
    Rule,
    Settings,
    flag,
    integer,
    is_int,
    is_number,
    number,
    one_of,
    require,
    setting,
    settings_dict,
)
from rem_core.config.world import (
    DEFAULT_VEHICLE_MIX,
    OTHER_REGION_VEHICLE_MIX,
    VEHICLE_SUBTYPES,
    DomainConfig,
    LidarConfig,
    VehicleMix,
    WorldConfig,
)
from rem_core.errors import InputError

__all__ = [
    "ACTIVATIONS",
    "COVARIANCE_TYPES",
    "DEFAULT_VEHICLE_MIX",
    "DEVICE",
    "ESTIMATORS",
    "ESTIMATOR_SETTINGS",
    "EXPERIMENT_ROW_NAMES",
    "FEATURE_CHOICES",
    "FEATURE_SOURCES",
    "MINING_METHODS",
    "OTHER_REGION_VEHICLE_MIX",
    "PRECISIONS",
    "PRESETS",
    "SOLVERS",
    "SPLITS",
    "VEHICLE_SUBTYPES",
    "AutoLabelConfig",
    "Check",
    "DensityConfig",
    "DetectorConfig",
    "DomainConfig",
    "Estimator",
    "ExperimentConfig",
    "ExperimentRowName",
    "FeatureConfig",
    "FeatureSourceName",
    "GMMConfig",
    "GaussianConfig",
    "Interval",
    "KNNConfig",
    "LidarConfig",
    "MiningConfig",
    "MiningMethod",
    "OneOf",
    "Precision",
    "Preset",
    "RarenessConfig",
    "RealNVPConfig",
    "RemConfig",
    "Rule",
    "ScoreConfig",
    "Settings",
    "Split",
    "TrackerConfig",
    "VehicleMix",
    "WorldConfig",
    "config_from_dict",
    "config_hash",
    "config_to_dict",
    "flag",
    "integer",
    "is_int",
    "is_number",
    "number",
    "one_of",
    "require",
    "setting",
    "settings_dict",
]


@dataclass(frozen=True, kw_only=True)
class RemConfig:
    """Every stage's settings. Later stages add their own nested configs here."""

    world: WorldConfig = field(default_factory=WorldConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    auto_label: AutoLabelConfig = field(default_factory=AutoLabelConfig)
    rareness: RarenessConfig = field(default_factory=RarenessConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    @classmethod
    def tiny(cls) -> RemConfig:
        return cls(
            world=WorldConfig.tiny(),
            detector=DetectorConfig(
                epochs=2, channels=(8, 16), feature_channels=16, ensemble_size=2
            ),
            rareness=RarenessConfig(
                k=4, min_score=0.0, density=DensityConfig(max_epochs=2, hidden=(16, 16))
            ),
        )

    @classmethod
    def demo(cls) -> RemConfig:
        # The experiment mines with the app's own pipeline, and every retraining takes 4,800
        # steps: the fully supervised model's Large AP still rises past it (0.69 at 4,800,
        # 0.74 at 6,720; docs/detector.md measures the curve), but a one-seed table of 15
        # rows stays within the hour.
        return cls(world=WorldConfig.demo(), experiment=ExperimentConfig(steps=4800, seeds=1))

    @classmethod
    def full(cls) -> RemConfig:
        return cls(world=WorldConfig.full(), detector=DetectorConfig(epochs=12))

    @classmethod
    def preset(cls, name: str) -> RemConfig:
        """The preset called ``name``, one of ``PRESETS``: ``tiny``, ``demo`` or ``full``."""
        if name not in PRESETS:
            raise InputError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return getattr(cls, name)()


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass.

    Every field, except those declared ``omit_default`` (added after the cache keys were
    fixed) while they hold their default: see ``rem_core.config.settings_dict``.
    :func:`config_from_dict` rebuilds the config from it (``config_from_dict(RemConfig,
    config_to_dict(config)) == config``).
    """
    return json.loads(json.dumps(settings_dict(config)))


def config_hash(config: Any, *upstream: str) -> str:
    """A 16-hex-digit key of a config and the keys of the stages it depends on.

    The config enters as :func:`config_to_dict` gives it: a field declared ``omit_default``
    changes the key only once it leaves its default, so keys made before it existed hold.
    """
    payload = json.dumps(
        {"type": type(config).__name__, "config": settings_dict(config), "up": upstream},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
