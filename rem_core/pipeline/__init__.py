"""The pipeline: REM's stages in order, each a cache entry, and what they hand each other.

world (``world``: the built-in world, simulated once) -> detection stage (by feature source:
``sources``: our detector ensemble trained on the source pool, shipped weights when they
match (``shipped``), geometric descriptors, or a researcher's imported features) ->
rareness stage (the PCA reducer and the density model fitted on the pools, log p of every
detection and ground-truth box) -> the unlabelled pool as mining sees it
(``ensure_mining_pool``; mining itself is fast and not cached). ``run_pipeline`` runs them in
the order that gives a whole analysis first: the main model's detections, a fast density
(``FIRST_DENSITY``), then the ensemble members and the configured density.

* ``keys``: every stage's cache key, assembled in one place.
* ``outputs``: what the stages hand each other (``StageCall``, ``DetectionRun``,
  ``RarenessRun``) and the one writer and reader of each.
* ``detection``: the detection stage, published in two parts (the main model's, then the
  ensemble members' scores).
* ``stages``: ``PipelineStage``, the rareness stage, the mining pool, ``pipeline_status``,
  ``clear_pipeline``, ``run_pipeline`` (the stages' order).
* ``sources``: the feature sources and the choice among them.
* ``shipped``: the detector ensembles that ship with the package, and their provenance.
* ``world``: ``ensure_world``, the world's cache entry.

Each stage is a cache entry ``<cache>/<stage>/<key>/`` (``rem_core.cache.CacheEntry``),
computed by one process at a time and published whole; a second run reads it.
"""

from rem_core.pipeline.code import (
    STAGE_CODE,
    code_fingerprint,
    code_fingerprints,
    import_closure,
)
from rem_core.pipeline.detection import (
    DETECTION_STAGE,
    DetectionStage,
    ensure_detections,
    ensure_main_detections,
)
from rem_core.pipeline.keys import (
    SOURCE_FILES,
    dataset_key,
    detections_key,
    detector_key,
    experiment_key,
    rareness_key,
    world_key,
)
from rem_core.pipeline.outputs import (
    MEMBERS_STAGE,
    DetectionRun,
    Progress,
    StageCall,
    load_detections,
    write_detections,
    write_member_scores,
)
from rem_core.pipeline.rareness import (
    RarenessRun,
    load_rareness,
    write_rareness,
)
from rem_core.pipeline.shipped import (
    SHIPPED,
    find_shipped,
    ship_detectors,
    shipped_folder,
)
from rem_core.pipeline.sources import (
    MIN_DETECTOR_FRAMES,
    DetectorFeatures,
    FeatureChoice,
    FeatureSource,
    GeometryFeatures,
    ImportedFeatures,
    choose_features,
    detector_entry,
    detector_origin,
    ensure_detectors,
    feature_source,
    features_for,
)
from rem_core.pipeline.stages import (
    FIRST_DENSITY,
    PIPELINE_STAGES,
    RARENESS_STAGE,
    PipelineStage,
    clear_pipeline,
    ensure_mining_pool,
    ensure_rareness,
    fit_rareness,
    fitting_stage,
    mining_pool,
    pipeline_status,
    run_pipeline,
    scoring_stage,
    with_estimator,
)
from rem_core.pipeline.world import (
    ensure_world,
    world_path,
)

__all__ = [
    "DETECTION_STAGE",
    "FIRST_DENSITY",
    "MEMBERS_STAGE",
    "MIN_DETECTOR_FRAMES",
    "PIPELINE_STAGES",
    "RARENESS_STAGE",
    "SHIPPED",
    "SOURCE_FILES",
    "STAGE_CODE",
    "DetectionRun",
    "DetectionStage",
    "DetectorFeatures",
    "FeatureChoice",
    "FeatureSource",
    "GeometryFeatures",
    "ImportedFeatures",
    "PipelineStage",
    "Progress",
    "RarenessRun",
    "StageCall",
    "choose_features",
    "clear_pipeline",
    "code_fingerprint",
    "code_fingerprints",
    "dataset_key",
    "detections_key",
    "detector_entry",
    "detector_key",
    "detector_origin",
    "ensure_detections",
    "ensure_main_detections",
    "ensure_detectors",
    "ensure_mining_pool",
    "ensure_rareness",
    "ensure_world",
    "experiment_key",
    "feature_source",
    "features_for",
    "find_shipped",
    "fit_rareness",
    "fitting_stage",
    "import_closure",
    "mining_pool",
    "load_detections",
    "load_rareness",
    "pipeline_status",
    "rareness_key",
    "run_pipeline",
    "scoring_stage",
    "ship_detectors",
    "shipped_folder",
    "with_estimator",
    "world_key",
    "world_path",
    "write_detections",
    "write_member_scores",
    "write_rareness",
]
