"""The science of REM under test: checks that fail when Rare Example Mining stops working,
not only when it crashes.

One small world (``SCIENCE_WORLD``: 30 training segments of 10 frames, 3 of them the
labelled source pool, and 8 validation segments; no other region) runs the pipeline twice,
each once for the whole module:

* ``geometry``: geometric box descriptors as features (no detector), a Gaussian density.
  Rare groups (check 1), D-REM against Random (check 2), MD-REM against D-REM (check 4).
* ``detector``: a small BEV detector (``SCIENCE_DETECTOR``: one member, 192 steps on the
  source pool, one torch thread) and a Gaussian on its ROI features. Large vehicles
  (check 1) and recall by rareness (check 3), the paper's Fig. 2.

The thresholds come from measurements of this module's own functions on world seeds 0 to 4
(``tests/test_science.py`` at seed 0 is what runs); each test's docstring gives the values.
Each check was also run with rareness replaced by seeded random numbers and fails then.
The retraining experiment (paper Table 3: mined tracks raise Large AP over partial
supervision) is not here: retrained at a size the default suite can afford (800 steps on
this world), even full supervision's Large AP moves from 0.05 to 0.26 with the seed
(docs/mining.md, *Science tests*); ``rem verify`` checks it on the demo world.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from rem_core.analysis import EVAL_SPLITS, RecallCurve, auroc, recall_by_rareness, regular_vehicles
from rem_core.config import (
    VEHICLE_SUBTYPES,
    DetectorConfig,
    FeatureConfig,
    MiningConfig,
    RarenessConfig,
    RemConfig,
    WorldConfig,
)
from rem_core.dataset import Dataset
from rem_core.evaluation import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.geometry import size_subset
from rem_core.mining import Composition, MiningPool, mine
from rem_core.pipeline import (
    DetectionRun,
    RarenessRun,
    ensure_detections,
    ensure_mining_pool,
    ensure_rareness,
    ensure_world,
)

log = logging.getLogger(__name__)

#: The smallest world on which every check holds with a clear margin at seeds 0 to 4:
#: about 1,050 ground-truth vehicle tracks in the unlabelled pool (a 3% budget is 31-32
#: tracks) and 450-650 Large boxes in validation and the pool.
SCIENCE_WORLD = WorldConfig(
    seed=0, n_segments=30, n_val_segments=8, n_ood_segments=0, frames_per_segment=10
)

#: A detector trained in about half a minute: recall still falls with rareness, and its
#: features still rank Large vehicles rare. One torch thread: on two shared cores, two
#: threads made inference seven times slower.
SCIENCE_DETECTOR = DetectorConfig(
    epochs=24, ensemble_size=1, channels=(16, 32), feature_channels=32, num_threads=1
)

#: Random's shares are averaged over these mining seeds.
RANDOM_SEEDS = range(10)


def science_config(source: str, world: WorldConfig = SCIENCE_WORLD) -> RemConfig:
    """The settings of the pipeline of feature source ``source`` on ``world``."""
    return RemConfig(
        world=world,
        detector=SCIENCE_DETECTOR,
        rareness=RarenessConfig(estimator="gaussian"),
        features=FeatureConfig(source=source),
        mining=MiningConfig(budget="3%"),
    )


@dataclass(frozen=True)
class Pipeline:
    """One run of the pipeline on the science world, every stage's output."""

    config: RemConfig
    dataset: Dataset
    detections: DetectionRun
    rareness: RarenessRun
    pool: MiningPool


def build_pipeline(config: RemConfig, root: Path) -> Pipeline:
    """The world and every stage of ``config``, cached under ``root``."""
    dataset = ensure_world(config.world, root=root)
    return Pipeline(
        config=config,
        dataset=dataset,
        detections=ensure_detections(config, dataset, root=root),
        rareness=ensure_rareness(config, dataset, root=root),
        pool=ensure_mining_pool(config, dataset, root=root),
    )


def group_auroc(p: Pipeline, group: str) -> float:
    """AUROC of rareness (``-log p``) of a rare group's ground-truth vehicle boxes against
    the regular vehicles' (``regular_vehicles``), on the validation split and the unlabelled
    pool (``EVAL_SPLITS``); label-noise boxes are in neither.

    ``group`` is ``"large"`` (largest dimension at least 7 m) or ``"irregular"`` (a subtype
    of family ``irregular``: roof loads, open doors, towed cars ...).
    """
    gt = p.detections.gt
    lp = p.rareness.gt_log_prob
    measured = gt["segment_id"].isin(p.dataset.split_ids(*EVAL_SPLITS)).to_numpy()
    clean = (gt["class"] == "vehicle").to_numpy() & ~gt["label_noise"].to_numpy(bool) & measured
    if group == "large":
        member = size_subset(gt["length"], gt["width"], gt["height"]) == "large"
    else:
        member = gt["subtype"].astype(str).map(VEHICLE_SUBTYPES).to_numpy() == group
    reference = regular_vehicles(gt) & measured
    return auroc(-lp[clean & member], -lp[reference])


def compositions(p: Pipeline, method: str) -> list[Composition]:
    """What ``method`` mines from the pool under the budget: one composition, or one per
    seed of ``RANDOM_SEEDS`` for Random."""
    seeds = RANDOM_SEEDS if method == "random" else [p.config.mining.seed]
    configs = [replace(p.config, mining=replace(p.config.mining, seed=s)) for s in seeds]
    return [mine(p.pool, method, c).composition for c in configs]


def mean_share(p: Pipeline, method: str, share: str) -> float:
    """``method``'s mean ``large_share`` or ``hard_share`` (``Composition``) over its seeds."""
    return float(np.mean([getattr(c, share) for c in compositions(p, method)]))


def recall_curve(p: Pipeline, bin_width: float = 5.0) -> RecallCurve:
    """Recall of the main detector per rareness bin (paper Fig. 2) over the vehicles of the
    validation split and the unlabelled pool (neither trained on): LEVEL_1 boxes, 3D IoU
    0.5, detections scoring at least ``rareness.min_score``."""
    gt, det = p.detections.gt, p.detections.detections
    ids = set(p.dataset.split_ids(*EVAL_SPLITS))
    rows = np.flatnonzero(gt["segment_id"].isin(ids).to_numpy() & (gt["class"] == "vehicle"))
    preds = det[det["segment_id"].isin(ids)].reset_index(drop=True)
    truth = gt.iloc[rows].reset_index(drop=True)
    result = evaluate_detections(preds, truth, min_points=LEVEL_1_MIN_POINTS)
    rareness = -p.rareness.gt_log_prob[rows][result.gt["gt_index"].to_numpy()]
    return recall_by_rareness(
        result, rareness, bin_width=bin_width, score_threshold=p.config.rareness.min_score
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("science")


@pytest.fixture(scope="module")
def geometry(root: Path) -> Pipeline:
    return build_pipeline(science_config("geometry"), root)


@pytest.fixture(scope="module")
def detector(root: Path) -> Pipeline:
    return build_pipeline(science_config("detector"), root)


@pytest.mark.parametrize(
    ("source", "group", "threshold"),
    [("geometry", "large", 0.85), ("geometry", "irregular", 0.62), ("detector", "large", 0.75)],
)
def test_rare_groups_rank_rarer_than_regular_vehicles(request, source, group, threshold):
    """Check 1 (paper Fig. 6): Large and irregular-subtype vehicles are rarer than regular
    ones, by the AUROC of ``-log p`` of their ground-truth boxes (0.5 at chance, about
    +-0.02 here).

    Measured at world seeds 0, 1, 2, 3, 4 (Large: 460-630 boxes; irregular: 230-250):
    geometry, Large: 0.938, 0.945, 0.943, 0.926, 0.920; geometry, irregular: 0.744, 0.793,
    0.797, 0.690, 0.754; detector, Large: 0.890, 0.915, 0.825, 0.903, 0.892. With random
    log p: 0.49 to 0.51. The detector's features do not rank the irregular subtypes above
    chance by a clear margin (0.613, 0.640, 0.561, 0.587, 0.614: most of them keep a
    regular car's size, docs/density.md), so that pair is not checked.
    """
    value = group_auroc(request.getfixturevalue(source), group)
    log.info("AUROC, %s features, %s: %.3f", source, group, value)
    assert value >= threshold, f"{group} vehicles, {source} features: AUROC {value:.3f}"


def test_d_rem_mines_more_large_tracks_than_random(geometry):
    """Check 2 (paper Table 1): under a 3% budget (29-34 tracks), D-REM's selection holds a
    far larger share of Large tracks than Random's (averaged over 10 mining seeds).

    Measured at world seeds 0, 1, 2, 3, 4, D-REM / Random: 0.469 / 0.028, 0.516 / 0.055,
    0.469 / 0.047, 0.559 / 0.050, 0.414 / 0.066 (a difference of 0.35 to 0.51; one draw of
    Random reached 0.161 at most). With random log p, D-REM mines what Random mines.
    """
    d_rem = mean_share(geometry, "d_rem", "large_share")
    random = mean_share(geometry, "random", "large_share")
    log.info("Large share: D-REM %.3f, Random %.3f", d_rem, random)
    assert d_rem >= random + 0.2, f"Large share: D-REM {d_rem:.3f}, Random {random:.3f}"


def test_recall_falls_with_rareness(detector):
    """Check 3 (paper Fig. 2): the rarer a vehicle, the less often the detector finds it.
    The Spearman correlation of recall against rareness over 20 bins of 5 percentiles is
    far below 0 (about 0 +- 0.23 with rareness unrelated to recall).

    Measured at world seeds 0, 1, 2, 3, 4: -0.992, -0.986, -0.973, -0.992, -0.989 (with
    bins of 2 percentiles: -0.94 to -0.98).
    """
    curve = recall_curve(detector)
    log.info("recall by rareness: Spearman %.3f\n%s", curve.spearman, curve.bins)
    assert curve.spearman <= -0.8, f"recall against rareness: Spearman {curve.spearman:.3f}"


def test_md_rem_mines_rare_but_easy_tracks(geometry):
    """Check 4 (paper Table 1): MD-REM's selection holds far fewer hard boxes (200 points or
    fewer, or 50 m away or more) than D-REM's, and still far more Large tracks than
    Random's: what it mines is rare but easy.

    Measured at world seeds 0, 1, 2, 3, 4, hard share MD-REM / D-REM: 0.073 / 0.683,
    0.097 / 0.711, 0.158 / 0.571, 0.134 / 0.535, 0.135 / 0.655 (a difference of 0.40 to
    0.61); Large share MD-REM / Random: 0.531 / 0.028, 0.484 / 0.055, 0.625 / 0.047,
    0.706 / 0.050, 0.828 / 0.066. With random log p the hard shares still differ (the
    filter does not read rareness) and MD-REM's Large share falls to Random's; without the
    filter MD-REM mines what D-REM mines.
    """
    md_hard = mean_share(geometry, "md_rem", "hard_share")
    d_hard = mean_share(geometry, "d_rem", "hard_share")
    md_large = mean_share(geometry, "md_rem", "large_share")
    random_large = mean_share(geometry, "random", "large_share")
    log.info(
        "hard share: MD-REM %.3f, D-REM %.3f; Large share: MD-REM %.3f, Random %.3f",
        md_hard, d_hard, md_large, random_large,
    )  # fmt: skip
    assert md_hard <= d_hard - 0.25, f"hard share: MD-REM {md_hard:.3f}, D-REM {d_hard:.3f}"
    assert md_large >= random_large + 0.2, (
        f"Large share: MD-REM {md_large:.3f}, Random {random_large:.3f}"
    )
