from __future__ import annotations

import dataclasses

import pytest

from rem_core.config import (
    DEFAULT_VEHICLE_MIX,
    AutoLabelConfig,
    DensityConfig,
    DetectorConfig,
    DomainConfig,
    ExperimentConfig,
    FeatureConfig,
    GaussianConfig,
    GMMConfig,
    KNNConfig,
    LidarConfig,
    MiningConfig,
    RarenessConfig,
    RealNVPConfig,
    RemConfig,
    ScoreConfig,
    TrackerConfig,
    WorldConfig,
    config_hash,
    config_to_dict,
)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: LidarConfig(n_beams=0), "lidar.n_beams"),
        (lambda: LidarConfig(elevation_min_deg=5, elevation_max_deg=3), "lidar.elevation_min_deg"),
        (lambda: LidarConfig(azimuth_step_deg=0.7), "lidar.azimuth_step_deg"),
        (lambda: LidarConfig(max_range_m=-1), "lidar.max_range_m"),
        (lambda: LidarConfig(dropout=1.0), "lidar.dropout"),
        (lambda: DomainConfig(extra_dropout=-0.1), "domain.extra_dropout"),
        (lambda: DomainConfig(vehicle_mix=(("spaceship", 1.0),)), "domain.vehicle_mix"),
        (lambda: WorldConfig(n_segments=1), "world.n_segments"),
        (lambda: WorldConfig(frames_per_segment=0), "world.frames_per_segment"),
        (lambda: WorldConfig(source_fraction=1.5), "world.source_fraction"),
        (lambda: WorldConfig(seed=-3), "world.seed"),
        (lambda: WorldConfig(label_noise_fraction=0.9), "world.label_noise_fraction"),
        (lambda: WorldConfig(vehicle_mix=(("sedan", -1.0),)), "world.vehicle_mix"),
        (lambda: WorldConfig(vehicle_mix=(("sedan", 1.0), ("sedan", 2.0))), "world.vehicle_mix"),
        (lambda: WorldConfig(pedestrians_per_km_sidewalk=1e6), "world.pedestrians_per_km_sidewalk"),
    ],
)
def test_bad_settings_name_their_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_presets_are_valid_and_ordered_by_size():
    sizes = [RemConfig.preset(p).world for p in ("tiny", "demo", "full")]
    frames = [w.n_total_segments * w.frames_per_segment for w in sizes]
    assert frames == sorted(frames)
    with pytest.raises(ValueError, match="preset"):
        RemConfig.preset("huge")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WorldConfig().seed = 3  # type: ignore[misc]


def test_config_hash_is_stable_and_sensitive():
    a = WorldConfig.tiny()
    assert config_hash(a) == config_hash(WorldConfig.tiny())
    assert config_hash(a) != config_hash(WorldConfig.tiny(seed=1))
    assert config_hash(a) != config_hash(a, "upstream-key")
    lidar = dataclasses.replace(a, lidar=LidarConfig(dropout=0.1))
    assert config_hash(a) != config_hash(lidar)


def test_default_mix_matches_the_long_tail():
    from rem_core.config import VEHICLE_SUBTYPES

    share = {fam: 0.0 for fam in ("regular", "large", "irregular")}
    for subtype, weight in DEFAULT_VEHICLE_MIX:
        share[VEHICLE_SUBTYPES[subtype]] += weight
    assert sum(share.values()) == pytest.approx(1.0, abs=1e-4)  # weights of 5 decimals
    assert 0.93 <= share["regular"] <= 0.97
    assert 0.01 <= share["irregular"] <= 0.025
    # each rare subtype of regular size is a few tenths of a percent of the tracks
    mix = dict(DEFAULT_VEHICLE_MIX)
    assert all(0.002 <= mix[s] <= 0.006 for s in ("roof_box", "tall_load", "open_door"))
    assert 0.025 <= share["large"] <= 0.04


def test_source_pool_is_a_tenth():
    w = WorldConfig(n_segments=40)
    assert w.n_source_segments == 4
    assert WorldConfig.tiny().n_source_segments == 1


SETTINGS = [LidarConfig, DomainConfig, WorldConfig, DetectorConfig, TrackerConfig,
            AutoLabelConfig, DensityConfig, GaussianConfig, GMMConfig, KNNConfig,
            RealNVPConfig, RarenessConfig, ScoreConfig, MiningConfig, ExperimentConfig,
            FeatureConfig]  # fmt: skip


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_setting_declares_its_rule(cls):
    # declared once: a field without a rule would go unchecked
    unruled = [f.name for f in dataclasses.fields(cls) if f.metadata.get("rule") is None]
    assert unruled == []
    cls()  # the defaults obey the rules


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_numbers_refuse_bools_and_strings(cls):
    from rem_core.config import Interval

    for f in dataclasses.fields(cls):
        if isinstance(f.metadata["rule"], Interval):
            for bad in (True, "1", float("nan")):
                with pytest.raises(ValueError, match=rf"^{cls.section}\.{f.name}: must be "):
                    cls(**{f.name: bad})


def test_interval_rules_say_what_they_want():
    from rem_core.config import Interval

    assert Interval.parse("[0, 1)").problem(1.0) == "must be a number in [0, 1), got 1.0"
    assert Interval.parse("(0, inf)", unit="m").problem(0) == "must be a number > 0 m, got 0"
    ints = Interval.parse("[1, 10]", integer=True, optional=True)
    assert ints.problem(None) is None and ints.problem(2.0) is not None
    assert ints.describe() == "an int in [1, 10] or None"
    np = pytest.importorskip("numpy")
    assert ints.problem(np.int64(3)) is None  # numpy scalars are numbers too
    with pytest.raises(ValueError, match="interval"):
        Interval.parse("0..1")


def test_rules_across_fields_still_name_their_field():
    with pytest.raises(ValueError, match=r"^tracker\.min_score"):
        TrackerConfig(birth_score=0.2, min_score=0.3)
    with pytest.raises(ValueError, match=r"^detector\.cell_m"):
        DetectorConfig(cell_m=0.7)
    with pytest.raises(ValueError, match=r"^experiment\.rows: unknown row 'best'"):
        ExperimentConfig(rows=("partial", "best"))
    with pytest.raises(ValueError, match=r"^domain\.building_share"):
        DomainConfig(building_share=0.9, wall_share=0.2)


def test_shared_names_are_one_vocabulary():
    from rem_core import config
    from rem_core.config import names

    for name in ("SPLITS", "PRESETS", "ESTIMATORS", "EXPERIMENT_ROW_NAMES", "MINING_METHODS"):
        assert getattr(config, name) is getattr(names, name)
    assert all(hasattr(RemConfig, p) for p in names.PRESETS)
    from rem_core.experiment import EXPERIMENT_ROWS

    assert tuple(EXPERIMENT_ROWS) == names.EXPERIMENT_ROW_NAMES


def test_numpy_numbers_are_kept_as_python_numbers():
    np = pytest.importorskip("numpy")
    a = DetectorConfig(epochs=np.int64(12), learning_rate=np.float64(0.02))
    b = DetectorConfig(epochs=12, learning_rate=0.02)
    assert type(a.epochs) is int and type(a.learning_rate) is float
    assert config_hash(a) == config_hash(b)


# --- cache keys -------------------------------------------------------------------------------

#: ``config_hash`` of every preset and each of its sections, recorded before the baselines'
#: settings joined ``RarenessConfig`` (issue 18). These feed every cache key and the shipped
#: reference table: a change here invalidates every user's cache. Change them only on purpose.
PRESET_HASHES = {
    "tiny": {"all": "c5c01e2d5d74f285", "world": "66e6a69b2131aa1f",
             "detector": "da2f5a8ca6b21038", "tracker": "6696dde086950f82",
             "auto_label": "98ebbead313286d9", "rareness": "a6515a69e4416c5e",
             "score": "aca484a06b9f5fbe", "mining": "c6c3494a2df2123c",
             "features": "79db3e87de2f2c4f", "experiment": "abea0628eea609c8"},
    "demo": {"all": "e3e2b2d605dad677", "world": "b927bce02a5fb9e1",
             "detector": "1fb4977fcd7c75fc", "tracker": "6696dde086950f82",
             "auto_label": "98ebbead313286d9", "rareness": "e9d80f0829342511",
             "score": "aca484a06b9f5fbe", "mining": "c6c3494a2df2123c",
             "features": "79db3e87de2f2c4f", "experiment": "1b0670fff1c413db"},
    "full": {"all": "a0094e0961518e0f", "world": "e3a4d6dcfca3a6fe",
             "detector": "f4044ea6801ec58c", "tracker": "6696dde086950f82",
             "auto_label": "98ebbead313286d9", "rareness": "e9d80f0829342511",
             "score": "aca484a06b9f5fbe", "mining": "c6c3494a2df2123c",
             "features": "79db3e87de2f2c4f", "experiment": "abea0628eea609c8"},
}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(PRESET_HASHES))
def test_preset_cache_keys_are_unchanged(preset):
    config = RemConfig.preset(preset)
    found = {"all": config_hash(config)}
    found |= {f.name: config_hash(getattr(config, f.name)) for f in dataclasses.fields(config)}
    assert found == PRESET_HASHES[preset]
    assert config_hash(RemConfig.tiny().rareness.density) == "f1076d7056f70bd4"


BASELINE_CHANGES = {
    "gaussian": {"reg": 1e-3},
    "gmm": {"n_components": 4},
    "knn": {"k": 5},
    "realnvp": {"n_layers": 4},
}


@pytest.mark.parametrize("name", sorted(BASELINE_CHANGES))
def test_baseline_settings_enter_the_key_once_changed(name):
    base = RemConfig.demo().rareness
    assert name not in config_to_dict(base)  # at its default: left out of the key
    changed = base.with_estimator_settings(name, **BASELINE_CHANGES[name])
    assert config_hash(changed) != config_hash(base)
    assert config_to_dict(changed)[name] == config_to_dict(getattr(changed, name))
    # the chosen estimator does not matter: every estimator's settings are in the key
    back = changed.with_estimator_settings(name, **config_to_dict(getattr(base, name)))
    assert config_hash(back) == config_hash(base)
    whole = dataclasses.replace(RemConfig.demo(), rareness=changed)
    assert config_hash(whole) != config_hash(RemConfig.demo())


def test_only_the_late_fields_are_left_out():
    late = [f.name for f in dataclasses.fields(RarenessConfig) if f.metadata["omit_default"]]
    assert late == ["gaussian", "gmm", "knn", "realnvp"]
    for cls in SETTINGS:  # no other field is left out of the keys
        if cls is not RarenessConfig:
            assert not any(f.metadata["omit_default"] for f in dataclasses.fields(cls))


def test_estimator_settings_follow_the_chosen_estimator():
    rareness = RarenessConfig(estimator="gmm")
    assert rareness.estimator_settings() == dataclasses.asdict(GMMConfig())
    assert rareness.estimator_settings("ffjord") == dataclasses.asdict(rareness.density)
    # the defaults seed the baselines as the pipeline did (with density.seed, 0)
    assert RarenessConfig().estimator_settings("gmm")["seed"] == RarenessConfig().density.seed
    ffjord = RarenessConfig().with_estimator_settings(max_epochs=3, hidden=(8,))
    assert (ffjord.density.max_epochs, ffjord.density.hidden) == (3, (8,))
    with pytest.raises(ValueError, match=r"^gmm: unknown setting hidden; known: n_components"):
        rareness.with_estimator_settings(hidden=8)
    with pytest.raises(ValueError, match=r"^gmm\.n_components: must be an int >= 1, got 0"):
        rareness.with_estimator_settings(n_components=0)
    with pytest.raises(ValueError, match=r"^rareness\.estimator: unknown 'flow'"):
        rareness.estimator_settings("flow")
    with pytest.raises(ValueError, match=r"^rareness\.knn: must be a KNNConfig"):
        RarenessConfig(knn=GMMConfig())


# --- settings read back from JSON (a job's spec.json) -------------------------------------------


def _tiny_with(**sections) -> RemConfig:
    return dataclasses.replace(RemConfig.tiny(), **sections)


#: Settings that must come back from JSON as they went: the presets, and changed nested
#: fields of every kind (a baseline's settings, left out of the dict at their default;
#: experiment rows; an int budget; vehicle mixes of pairs; an optional field set and unset).
ROUND_TRIPS = {
    "tiny": RemConfig.tiny,
    "demo": RemConfig.demo,
    "full": RemConfig.full,
    "knn k=5": lambda: _tiny_with(
        rareness=RarenessConfig(estimator="knn").with_estimator_settings(k=5)
    ),
    "ffjord hidden, gmm": lambda: _tiny_with(
        rareness=RarenessConfig(fit_splits=("source",))
        .with_estimator_settings(hidden=(8, 8, 8), max_epochs=3)
        .with_estimator_settings("gmm", n_components=4, covariance_type="diag")
    ),
    "experiment rows": lambda: _tiny_with(
        experiment=ExperimentConfig(
            rows=("partial", "md-rem++-6%"),
            seeds=2,
            steps=7,
            detector_epochs=3,
            detector_precision="bf16",
            ema_decay=0.999,
        ),
        mining=MiningConfig(budget=1500, fp_costs_budget=True),
    ),
    "world mixes": lambda: _tiny_with(
        world=WorldConfig.tiny(
            vehicle_mix=(("sedan", 1), ("bus", 0.25)),
            ood_domain=DomainConfig(name="plain"),  # vehicle_mix None: the world's
            lidar=LidarConfig(n_beams=16, azimuth_step_deg=1.0),
        )
    ),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_settings_come_back_from_json_as_they_went(name):
    import json

    from rem_core.config import config_from_dict

    config = ROUND_TRIPS[name]()
    back = config_from_dict(RemConfig, json.loads(json.dumps(config_to_dict(config))))
    assert back == config
    assert config_hash(back) == config_hash(config)
    assert all(config_hash(getattr(back, f)) == config_hash(getattr(config, f)) for f in
               ("world", "detector", "rareness", "experiment"))  # fmt: skip
    assert isinstance(back.rareness.fit_splits, tuple)
    assert all(isinstance(pair, tuple) for pair in back.world.vehicle_mix)
    assert isinstance(back.experiment.rows, tuple) and isinstance(back.detector.channels, tuple)
    # each section on its own too
    world = config_from_dict(WorldConfig, json.loads(json.dumps(config_to_dict(config.world))))
    assert world == config.world


def test_settings_from_a_dict_take_late_defaults_and_keep_none():
    from rem_core.config import config_from_dict

    raw = config_to_dict(RemConfig.demo())
    assert "gmm" not in raw["rareness"] and raw["experiment"]["detector_epochs"] is None
    back = config_from_dict(RemConfig, raw)
    assert back.rareness.gmm == GMMConfig() and back.experiment.detector_epochs is None
    assert back.world.ood_domain.vehicle_mix is not None
    plain = config_from_dict(DomainConfig, config_to_dict(DomainConfig()))
    assert plain.vehicle_mix is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.update(bogus=1), r"^config: unknown setting bogus; known: world, "),
        (lambda raw: raw["rareness"].update(kk=3), r"^rareness: unknown setting kk; known: k, "),
        (lambda raw: raw["world"]["lidar"].update(beams=3), r"^lidar: unknown setting beams"),
        (lambda raw: raw["world"].pop("seed"), r"^world: missing setting seed$"),
        (lambda raw: raw["world"].update(seed="0"), r"^world\.seed: must be an int, got '0'"),
        (lambda raw: raw["world"].update(n_segments=1), r"^world\.n_segments: needs >= 2"),
        (lambda raw: raw["world"].update(lidar=[]), r"^world\.lidar: must be a dict of settings"),
        (lambda raw: raw["detector"].update(channels=[8]), r"^detector\.channels: must be a list "),
        (lambda raw: raw["world"].update(vehicle_mix=[["car", 1]]), r"^world\.vehicle_mix: "),
        (lambda raw: raw["mining"].update(budget=None), r"^mining\.budget: must be an int or "),
        (lambda raw: raw["features"].update(source=3), r"^features\.source: must be a str, got 3"),
        (lambda raw: raw["rareness"].update(gmm={"n_components": 0}), r"^gmm: missing setting "),
        (lambda raw: raw["experiment"].update(rows=["best"]), r"^experiment\.rows: unknown row"),
    ],
)
def test_settings_from_a_bad_dict_name_what_is_wrong(change, message):
    from rem_core.config import config_from_dict
    from rem_core.errors import InputError

    raw = config_to_dict(RemConfig.tiny())
    change(raw)
    with pytest.raises(InputError, match=message):
        config_from_dict(RemConfig, raw)
