"""The product's shared vocabularies, each written once: a ``Literal`` type for annotations
and the tuple of its values (in report order) for choices and checks.

>>> SPLITS
('source', 'unlabelled', 'validation', 'ood')
>>> "gmm" in ESTIMATORS
True
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ESTIMATORS",
    "EXPERIMENT_ROW_NAMES",
    "FEATURE_CHOICES",
    "FEATURE_SOURCES",
    "MINING_METHODS",
    "PRECISIONS",
    "PRESETS",
    "SPLITS",
    "Estimator",
    "ExperimentRowName",
    "FeatureSourceName",
    "MiningMethod",
    "Precision",
    "Preset",
    "Split",
]

#: The splits of a data set: the labelled source pool, the unlabelled pool mined from,
#: validation, and the out-of-distribution region (never trained on).
Split = Literal["source", "unlabelled", "validation", "ood"]
SPLITS: tuple[Split, ...] = get_args(Split)

#: Settings presets of ``RemConfig.preset``, smallest first.
Preset = Literal["tiny", "demo", "full"]
PRESETS: tuple[Preset, ...] = get_args(Preset)

#: Density estimators of ``RarenessConfig.estimator``: FFJORD, then the baselines.
Estimator = Literal["ffjord", "gaussian", "gmm", "knn", "realnvp"]
ESTIMATORS: tuple[Estimator, ...] = get_args(Estimator)

#: Where the features REM scores come from (``FeatureConfig.source``).
FeatureSourceName = Literal["detector", "geometry", "imported"]
FEATURE_SOURCES: tuple[FeatureSourceName, ...] = get_args(FeatureSourceName)
#: What ``--features`` accepts: a feature source, or ``"auto"`` (the one the data supports).
FEATURE_CHOICES: tuple[str, ...] = ("auto", *FEATURE_SOURCES)

#: Training precisions of ``DetectorConfig.precision``.
Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

#: Selection methods of track-level mining (paper Tables 1 and 3), in report order.
MiningMethod = Literal[
    "random", "predict_size", "ensemble", "m_rem", "d_rem", "md_rem", "oracle_hard", "oracle_size"
]
MINING_METHODS: tuple[MiningMethod, ...] = get_args(MiningMethod)

#: Row keys of the active-learning experiment (``rem_core.experiment.EXPERIMENT_ROWS``), in
#: the table's order.
ExperimentRowName = Literal[
    "partial",
    "semi-sl",
    "semi-al",
    "full",
    "oracle-hard",
    "oracle-size",
    "random",
    "predict-size",
    "ensemble",
    "m-rem",
    "d-rem",
    "d-rem++",
    "md-rem++",
    "md-rem++-6%",
    "md-rem++-9%",
]
EXPERIMENT_ROW_NAMES: tuple[ExperimentRowName, ...] = get_args(ExperimentRowName)
