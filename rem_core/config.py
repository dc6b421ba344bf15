"""Frozen configuration of every stage, nested in one :class:`RemConfig`.

Each stage's settings are a frozen, keyword-only dataclass validated in ``__post_init__``;
a bad value raises ``ValueError`` naming the field. ``config_hash`` gives a stable key for
the disk cache: it changes whenever any setting that shapes a stage's output changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AutoLabelConfig",
    "TrackerConfig",
    "DEFAULT_VEHICLE_MIX",
    "OTHER_REGION_VEHICLE_MIX",
    "VEHICLE_SUBTYPES",
    "DensityConfig",
    "DetectorConfig",
    "DomainConfig",
    "EXPERIMENT_ROW_NAMES",
    "ExperimentConfig",
    "FEATURE_SOURCES",
    "FeatureConfig",
    "LidarConfig",
    "MINING_METHODS",
    "MiningConfig",
    "RarenessConfig",
    "RemConfig",
    "ScoreConfig",
    "WorldConfig",
    "config_hash",
    "config_to_dict",
]

#: Vehicle subtypes and the family each belongs to. "regular" and "large" name the usual
#: size ranges of the subtype; "irregular" subtypes have an unusual shape or stand where
#: vehicles do not, at any size: a roof box, a tall load in a pickup's bed, open doors and a
#: car riding on a tow truck's bed keep a regular car's size, so only their shape or their
#: surroundings tell them apart.
VEHICLE_SUBTYPES: dict[str, str] = {
    "sedan": "regular",
    "hatchback": "regular",
    "suv": "regular",
    "pickup": "regular",
    "van": "regular",
    "bus": "large",
    "box_truck": "large",
    "tractor_trailer": "large",
    "car_carrier": "large",
    "tow_truck": "large",
    "roof_load": "irregular",
    "flatbed_ramp": "irregular",
    "microcar": "irregular",
    "roof_box": "irregular",
    "tall_load": "irregular",
    "open_door": "irregular",
    "towed_car": "irregular",
}

#: Share of vehicle tracks per subtype: 94.3% regular, 3.7% large, 2.0% irregular. Large
#: vehicles are seen from further away, and a flatbed with a ramp is large too, so about
#: 4.5-5% of the *labelled* vehicle tracks measure >= 7 m (the paper's Waymo: 3-5%). The
#: large subtypes had 2.7% until the source pool of the demo world held too few distinct
#: long vehicles for any detector to learn them from (docs/detector.md). Every tow truck
#: carries a ``towed_car`` (not drawn from the mix); ``open_door`` cars are only parked, so
#: each rare subtype of regular size is 0.2-0.4% of the vehicle tracks.
DEFAULT_VEHICLE_MIX: tuple[tuple[str, float], ...] = (
    ("sedan", 0.35542),
    ("hatchback", 0.11750),
    ("suv", 0.24480),
    ("pickup", 0.10771),
    ("van", 0.11750),
    ("bus", 0.01246),
    ("box_truck", 0.00996),
    ("tractor_trailer", 0.0083),
    ("car_carrier", 0.00415),
    ("tow_truck", 0.0025),
    ("roof_load", 0.00395),
    ("flatbed_ramp", 0.00277),
    ("microcar", 0.00198),
    ("roof_box", 0.003),
    ("tall_load", 0.003),
    ("open_door", 0.005),
)

#: The "other region" (out-of-distribution) mix: more work vehicles, fewer small cars.
OTHER_REGION_VEHICLE_MIX: tuple[tuple[str, float], ...] = (
    ("sedan", 0.22),
    ("hatchback", 0.04),
    ("suv", 0.24),
    ("pickup", 0.24),
    ("van", 0.15),
    ("bus", 0.02),
    ("box_truck", 0.03),
    ("tractor_trailer", 0.025),
    ("car_carrier", 0.005),
    ("tow_truck", 0.005),
    ("roof_load", 0.01),
    ("flatbed_ramp", 0.01),
    ("microcar", 0.005),
)


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {message}")


def _check_mix(mix: tuple[tuple[str, float], ...], name: str) -> None:
    _check(len(mix) > 0, name, "the vehicle mix is empty")
    seen = set()
    for entry in mix:
        _check(
            isinstance(entry, tuple) and len(entry) == 2,
            name,
            f"entries must be (subtype, weight) pairs, got {entry!r}",
        )
        subtype, weight = entry
        _check(
            subtype in VEHICLE_SUBTYPES,
            name,
            f"unknown subtype {subtype!r}; known: {', '.join(VEHICLE_SUBTYPES)}",
        )
        _check(subtype not in seen, name, f"subtype {subtype!r} appears twice")
        _check(weight >= 0, name, f"weight of {subtype!r} must be >= 0, got {weight}")
        seen.add(subtype)
    _check(sum(w for _, w in mix) > 0, name, "the weights sum to zero")


@dataclass(frozen=True, kw_only=True)
class LidarConfig:
    """A spinning LiDAR on the roof, simulated by ray casting.

    Beams are spread uniformly in elevation; azimuth columns start at 0 (straight ahead,
    +x of the vehicle frame) and turn counter-clockwise. The sensor sits at
    ``(0, 0, sensor_height_m)`` in the vehicle frame.
    """

    n_beams: int = 64
    elevation_min_deg: float = -25.0
    elevation_max_deg: float = 3.0
    azimuth_step_deg: float = 0.2
    max_range_m: float = 75.0
    sensor_height_m: float = 2.0
    range_noise_m: float = 0.02
    dropout: float = 0.03

    def __post_init__(self) -> None:
        _check(
            1 <= self.n_beams <= 256, "lidar.n_beams", f"must be in [1, 256], got {self.n_beams}"
        )
        _check(
            -90 < self.elevation_min_deg < self.elevation_max_deg < 90,
            "lidar.elevation_min_deg",
            "need -90 < elevation_min_deg < elevation_max_deg < 90, got "
            f"{self.elevation_min_deg} and {self.elevation_max_deg}",
        )
        _check(
            0.01 <= self.azimuth_step_deg <= 10 and (360 / self.azimuth_step_deg) % 1 < 1e-6,
            "lidar.azimuth_step_deg",
            f"must divide 360 and lie in [0.01, 10], got {self.azimuth_step_deg}",
        )
        _check(
            1 <= self.max_range_m <= 500,
            "lidar.max_range_m",
            f"must be in [1, 500] m, got {self.max_range_m}",
        )
        _check(
            0.5 <= self.sensor_height_m <= 5,
            "lidar.sensor_height_m",
            f"must be in [0.5, 5] m, got {self.sensor_height_m}",
        )
        _check(
            0 <= self.range_noise_m <= 1,
            "lidar.range_noise_m",
            f"must be in [0, 1] m, got {self.range_noise_m}",
        )
        _check(0 <= self.dropout < 1, "lidar.dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def n_columns(self) -> int:
        """Azimuth columns per revolution."""
        return round(360 / self.azimuth_step_deg)


@dataclass(frozen=True, kw_only=True)
class DomainConfig:
    """Conditions of a region: its weather's effects on the LiDAR, its roadside and its
    vehicle mix.

    ``vehicle_mix=None`` keeps the world's mix. Clutter is spurious returns from rain or
    spray between 1 and 10 m from the sensor. Rain also dims every return: water films make
    surfaces reflect less diffusely (``surface_reflectivity`` scales every surface's
    reflectivity) and drops scatter the beam on its way out and back (two-way Beer-Lambert
    extinction, intensity times ``exp(-2 * extinction_per_m * range)``; heavy rain at 905 nm
    is of the order of 0.01 per metre). A wet road mirrors the beam away: ground returns are
    lost with probability ``ground_dropout * min(1, range / 30 m)`` and reflect
    ``ground_reflectivity``. Moving vehicles throw up spray, a cloud behind and around their
    rear wheels that returns a ray with probability ``1 - exp(-spray_per_m * path)``.

    The roadside: each stretch of frontage holds a building (``building_share``), a wall
    or fence (``wall_share``), a hedge (``hedge_share``) or nothing; a tree follows a lamp
    post with probability ``tree_share``. Hills: the ground rises and falls as the sum of
    two waves, along and across the main road, of ``hill_amplitude_m`` each and
    ``hill_wavelength_m`` long with random phases (0: flat ground). The sensor stays level
    (the vehicle frame does not pitch with the road), so the ground and everything on it
    rise ahead on an uphill stretch.
    """

    name: str = "clear"
    extra_dropout: float = 0.0
    extra_range_noise_m: float = 0.0
    clutter_fraction: float = 0.0
    surface_reflectivity: float = 1.0
    extinction_per_m: float = 0.0
    ground_dropout: float = 0.0
    ground_reflectivity: float = 0.08
    spray_per_m: float = 0.0
    building_share: float = 0.75
    wall_share: float = 0.15
    hedge_share: float = 0.0
    tree_share: float = 0.4
    hill_amplitude_m: float = 0.0
    hill_wavelength_m: float = 200.0
    vehicle_mix: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        _check(bool(self.name), "domain.name", "must not be empty")
        _check(
            0 <= self.extra_dropout < 1,
            "domain.extra_dropout",
            f"must be in [0, 1), got {self.extra_dropout}",
        )
        _check(
            0 <= self.extra_range_noise_m <= 1,
            "domain.extra_range_noise_m",
            f"must be in [0, 1] m, got {self.extra_range_noise_m}",
        )
        _check(
            0 <= self.clutter_fraction < 0.5,
            "domain.clutter_fraction",
            f"must be in [0, 0.5), got {self.clutter_fraction}",
        )
        _check(
            0 < self.surface_reflectivity <= 1,
            "domain.surface_reflectivity",
            f"must be in (0, 1], got {self.surface_reflectivity}",
        )
        _check(
            0 <= self.extinction_per_m <= 0.1,
            "domain.extinction_per_m",
            f"must be in [0, 0.1] per metre, got {self.extinction_per_m}",
        )
        for name in (
            "ground_dropout",
            "ground_reflectivity",
            "building_share",
            "wall_share",
            "hedge_share",
            "tree_share",
        ):
            value = getattr(self, name)
            _check(0 <= value <= 1, f"domain.{name}", f"must be in [0, 1], got {value}")
        _check(
            self.building_share + self.wall_share + self.hedge_share <= 1 + 1e-9,
            "domain.building_share",
            "building_share + wall_share + hedge_share must be <= 1, got "
            f"{self.building_share + self.wall_share + self.hedge_share:g}",
        )
        _check(
            0 <= self.hill_amplitude_m <= 10,
            "domain.hill_amplitude_m",
            f"must be in [0, 10] m, got {self.hill_amplitude_m}",
        )
        _check(
            50 <= self.hill_wavelength_m <= 5000,
            "domain.hill_wavelength_m",
            f"must be in [50, 5000] m, got {self.hill_wavelength_m}",
        )
        _check(
            0 <= self.spray_per_m <= 5,
            "domain.spray_per_m",
            f"must be in [0, 5] per metre, got {self.spray_per_m}",
        )
        if self.vehicle_mix is not None:
            _check_mix(self.vehicle_mix, "domain.vehicle_mix")

    @classmethod
    def rain(cls) -> DomainConfig:
        """Another region in heavy rain: the held-out out-of-distribution set.

        Hilly, semi-rural streets (few buildings, hedges and trees along the road), a wet
        road that returns few ground points, spray behind moving vehicles, dimmed and noisier
        returns, and a mix with more work vehicles.
        """
        return cls(
            name="rain",
            extra_dropout=0.25,
            extra_range_noise_m=0.05,
            clutter_fraction=0.01,
            surface_reflectivity=0.6,
            extinction_per_m=0.01,
            ground_dropout=0.7,
            ground_reflectivity=0.03,
            spray_per_m=0.6,
            building_share=0.15,
            wall_share=0.1,
            hedge_share=0.55,
            tree_share=0.85,
            hill_amplitude_m=2.5,
            hill_wavelength_m=220.0,
            vehicle_mix=OTHER_REGION_VEHICLE_MIX,
        )


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """The synthetic LiDAR world: segments, traffic, the sensor and the splits.

    Segments ``0 .. n_segments - 1`` form the training pool: the first
    ``max(1, round(source_fraction * n_segments))`` are the labelled source pool and the
    rest the unlabelled pool. Then come ``n_val_segments`` validation segments in the same
    domain and ``n_ood_segments`` segments of ``ood_domain`` (the "other region").
    """

    seed: int = 0
    n_segments: int = 20
    n_val_segments: int = 4
    n_ood_segments: int = 2
    frames_per_segment: int = 200
    frame_rate_hz: float = 10.0
    source_fraction: float = 0.1
    vehicle_mix: tuple[tuple[str, float], ...] = DEFAULT_VEHICLE_MIX
    parked_occupancy: float = 0.55
    moving_vehicles_per_km_lane: float = 14.0
    pedestrians_per_km_sidewalk: float = 30.0
    cyclists_per_km_lane: float = 3.0
    label_noise_fraction: float = 0.01
    min_label_points: int = 1
    lidar: LidarConfig = field(default_factory=LidarConfig)
    ood_domain: DomainConfig = field(default_factory=DomainConfig.rain)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.seed, int) and self.seed >= 0,
            "world.seed",
            f"must be an int >= 0, got {self.seed!r}",
        )
        _check(
            1 <= self.n_segments <= 10_000,
            "world.n_segments",
            f"must be in [1, 10000], got {self.n_segments}",
        )
        _check(
            0 <= self.n_val_segments <= 10_000,
            "world.n_val_segments",
            f"must be in [0, 10000], got {self.n_val_segments}",
        )
        _check(
            0 <= self.n_ood_segments <= 10_000,
            "world.n_ood_segments",
            f"must be in [0, 10000], got {self.n_ood_segments}",
        )
        _check(
            1 <= self.frames_per_segment <= 2_000,
            "world.frames_per_segment",
            f"must be in [1, 2000], got {self.frames_per_segment}",
        )
        _check(
            0.5 <= self.frame_rate_hz <= 100,
            "world.frame_rate_hz",
            f"must be in [0.5, 100] Hz, got {self.frame_rate_hz}",
        )
        _check(
            0 < self.source_fraction < 1,
            "world.source_fraction",
            f"must be in (0, 1), got {self.source_fraction}",
        )
        _check(
            self.n_segments >= 2,
            "world.n_segments",
            f"needs >= 2 segments for a source and an unlabelled pool, got {self.n_segments}",
        )
        _check_mix(self.vehicle_mix, "world.vehicle_mix")
        _check(
            0 <= self.parked_occupancy <= 1,
            "world.parked_occupancy",
            f"must be in [0, 1], got {self.parked_occupancy}",
        )
        for name in (
            "moving_vehicles_per_km_lane",
            "pedestrians_per_km_sidewalk",
            "cyclists_per_km_lane",
        ):
            value = getattr(self, name)
            _check(0 <= value <= 200, f"world.{name}", f"must be in [0, 200], got {value}")
        _check(
            0 <= self.label_noise_fraction <= 0.5,
            "world.label_noise_fraction",
            f"must be in [0, 0.5], got {self.label_noise_fraction}",
        )
        _check(
            0 <= self.min_label_points <= 10_000,
            "world.min_label_points",
            f"must be in [0, 10000], got {self.min_label_points}",
        )
        _check(
            isinstance(self.lidar, LidarConfig),
            "world.lidar",
            "must be a LidarConfig",
        )
        _check(
            isinstance(self.ood_domain, DomainConfig),
            "world.ood_domain",
            "must be a DomainConfig",
        )

    @property
    def n_source_segments(self) -> int:
        """Segments in the labelled source pool."""
        return min(self.n_segments - 1, max(1, round(self.source_fraction * self.n_segments)))

    @property
    def n_total_segments(self) -> int:
        """All segments: training pool, validation and out-of-distribution."""
        return self.n_segments + self.n_val_segments + self.n_ood_segments

    @classmethod
    def tiny(cls, **overrides: Any) -> WorldConfig:
        """Seconds to build: for tests."""
        settings: dict[str, Any] = dict(
            n_segments=4, n_val_segments=1, n_ood_segments=1, frames_per_segment=8
        )
        return cls(**(settings | overrides))

    @classmethod
    def demo(cls, **overrides: Any) -> WorldConfig:
        """The app's default: 216 segments of 10 frames, ~8,300 vehicle tracks, ~400 large.

        Many short segments rather than few long ones: the source pool (10% of the 160
        training segments) then holds about 20-25 distinct long vehicles, where 6 segments
        of 20 frames held 8, too few to learn them from (docs/detector.md). Validation has
        48 segments (about 85 Large vehicle tracks), so one of them found or missed moves
        a model's Large AP by about a point.
        """
        settings: dict[str, Any] = dict(
            n_segments=160, n_val_segments=48, n_ood_segments=8, frames_per_segment=10
        )
        return cls(**(settings | overrides))

    @classmethod
    def full(cls, **overrides: Any) -> WorldConfig:
        """Waymo-like 20 s segments, for long experiments."""
        settings: dict[str, Any] = dict(
            n_segments=100, n_val_segments=20, n_ood_segments=10, frames_per_segment=200
        )
        return cls(**(settings | overrides))


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """A compact bird's-eye-view detector of vehicles (CenterPoint-like) and its training.

    The BEV grid covers ``[-range_m, range_m)`` in x and y with ``cell_m`` cells; the
    backbone halves it once, so the feature map and the heads have ``2 * cell_m`` cells.
    Ensemble members differ only by their initialisation seed (``seed + member``); data
    order and augmentation follow ``data_seed`` for all of them. ``precision`` is that of
    training: ``fp32`` (the default), ``bf16`` (bfloat16 autocast of the network; fp32
    weights, losses and optimiser), or ``auto`` (bf16 where the device computes it natively:
    a CPU with AVX512-BF16 or AMX, a CUDA GPU that supports it; else fp32). bf16 halved the
    Large AP of a source-pool detector (docs/detector.md), so it is not the default.
    Inference is always fp32.

    Long vehicles (docs/detector.md measures each of these): ``paste_large`` objects at
    least 7 m long, with their points, are pasted into every training frame from the
    labelled frames (ground-truth sampling), each stretched along its length by a factor in
    ``paste_stretch``; the regression of long boxes weighs ``long_weight`` times a car's, and
    with ``dense_long_targets`` every output cell inside a long box regresses it (not only
    the 3 x 3 cells at its centre). Training runs on square crops of ``crop_m`` metres (0, or
    at least the grid's side: whole frames), built by a worker process (``loader =
    "process"``, where the platform can fork; ``"thread"``: a thread of the training process).
    """

    range_m: float = 76.8
    cell_m: float = 0.8
    channels: tuple[int, int] = (32, 64)
    feature_channels: int = 64
    epochs: int = 48
    batch_size: int = 4
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    min_train_points: int = 5
    augment: bool = True
    score_threshold: float = 0.05
    max_detections: int = 200
    ensemble_size: int = 5
    match_iou: float = 0.3
    seed: int = 0
    data_seed: int = 0
    device: str = "cpu"
    num_threads: int = 0
    precision: str = "fp32"
    loader: str = "process"
    crop_m: float = 76.8
    paste_large: int = 4
    paste_stretch: tuple[float, float] = (0.85, 1.3)
    long_weight: float = 3.0
    dense_long_targets: bool = True

    def __post_init__(self) -> None:
        _check(
            10 <= self.range_m <= 200,
            "detector.range_m",
            f"must be in [10, 200], got {self.range_m}",
        )
        _check(
            0.1 <= self.cell_m <= 2.0,
            "detector.cell_m",
            f"must be in [0.1, 2] m, got {self.cell_m}",
        )
        cells = 2 * self.range_m / self.cell_m
        _check(
            abs(cells - round(cells)) < 1e-6 and round(cells) % 4 == 0,
            "detector.cell_m",
            f"2 * range_m / cell_m must be a whole multiple of 4, got {cells:g}",
        )
        _check(
            len(self.channels) == 2 and all(c >= 4 for c in self.channels),
            "detector.channels",
            f"must be two widths >= 4, got {self.channels}",
        )
        _check(self.feature_channels >= 4, "detector.feature_channels", "must be >= 4")
        _check(
            0 <= self.epochs <= 1000, "detector.epochs", f"must be in [0, 1000], got {self.epochs}"
        )
        _check(
            1 <= self.batch_size <= 256,
            "detector.batch_size",
            f"must be in [1, 256], got {self.batch_size}",
        )
        _check(
            0 < self.learning_rate < 1,
            "detector.learning_rate",
            f"must be in (0, 1), got {self.learning_rate}",
        )
        _check(
            0 <= self.weight_decay < 1,
            "detector.weight_decay",
            f"must be in [0, 1), got {self.weight_decay}",
        )
        _check(self.min_train_points >= 0, "detector.min_train_points", "must be >= 0")
        _check(
            0 <= self.score_threshold < 1,
            "detector.score_threshold",
            f"must be in [0, 1), got {self.score_threshold}",
        )
        _check(self.max_detections >= 1, "detector.max_detections", "must be >= 1")
        _check(
            1 <= self.ensemble_size <= 20,
            "detector.ensemble_size",
            f"must be in [1, 20], got {self.ensemble_size}",
        )
        _check(
            0 < self.match_iou < 1, "detector.match_iou", f"must be in (0, 1), got {self.match_iou}"
        )
        _check(
            self.device in ("cpu", "cuda", "mps") or self.device.startswith("cuda:"),
            "detector.device",
            f"unknown device {self.device!r}",
        )
        _check(self.num_threads >= 0, "detector.num_threads", "must be >= 0 (0: torch's default)")
        _check(
            self.precision in PRECISIONS,
            "detector.precision",
            f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
        )
        _check(
            self.loader in ("process", "thread"),
            "detector.loader",
            f"must be 'process' or 'thread', got {self.loader!r}",
        )
        crop, multiple = self.crop_m / self.cell_m, 4  # the backbone's total stride
        _check(
            _is_number(self.crop_m)
            and (
                self.crop_m == 0
                or crop >= self.grid_size
                or (abs(crop - round(crop)) < 1e-6 and round(crop) % multiple == 0 and crop > 0)
            ),
            "detector.crop_m",
            f"must be 0 (whole frames), at least 2 * range_m (whole frames too) or a positive "
            f"multiple of {multiple} cells, got {self.crop_m}",
        )
        _check(
            _is_number(self.long_weight) and 0 < self.long_weight <= 100,
            "detector.long_weight",
            f"must be in (0, 100], got {self.long_weight!r}",
        )
        _check(
            _is_int(self.paste_large) and 0 <= self.paste_large <= 50,
            "detector.paste_large",
            f"must be an int in [0, 50], got {self.paste_large!r}",
        )
        _check(
            len(self.paste_stretch) == 2
            and all(_is_number(f) for f in self.paste_stretch)
            and 0.5 <= self.paste_stretch[0] <= self.paste_stretch[1] <= 2.0,
            "detector.paste_stretch",
            f"must be (low, high) with 0.5 <= low <= high <= 2, got {self.paste_stretch}",
        )

    @property
    def grid_size(self) -> int:
        """Cells along each side of the input grid."""
        return round(2 * self.range_m / self.cell_m)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Settings of ``track_detections``.

    Attributes:
        max_match_distance_m: gate on the BEV distance between a track's predicted centre and
            a detection's centre, metres.
        gate_length_fraction: the gate of a long object grows to this fraction of its
            smoothed length (partial views of a bus move its box centre by metres).
        gate_sigmas: the gate also grows to this many standard deviations of the predicted
            centre (plus measurement noise): wide for young tracks of unknown velocity and
            for tracks coasting through missed frames.
        birth_score: detections scoring at least this start tracks and are matched first.
        min_score: detections scoring below this are ignored; those in
            ``[min_score, birth_score)`` may only extend existing tracks.
        max_missed: a track is dropped after this many consecutive frames without a match.
        accel_noise_mps2: standard deviation of the white acceleration of the
            constant-velocity model, m/s^2.
        measurement_noise_m: standard deviation of a detection's centre, metres.
        attribute_smoothing: weight of a new observation in the exponential smoothing of a
            track's heading and size, in (0, 1].
        class_aware: match detections only to tracks of their own class.
    """

    max_match_distance_m: float = 2.5
    gate_length_fraction: float = 0.25
    gate_sigmas: float = 3.0
    birth_score: float = 0.5
    min_score: float = 0.1
    max_missed: int = 3
    accel_noise_mps2: float = 3.0
    measurement_noise_m: float = 0.4
    attribute_smoothing: float = 0.3
    class_aware: bool = True

    def __post_init__(self) -> None:
        _check(
            _is_number(self.max_match_distance_m) and 0 < self.max_match_distance_m <= 50,
            "tracker.max_match_distance_m",
            f"must be in (0, 50] m, got {self.max_match_distance_m!r}",
        )
        _check(
            _is_number(self.gate_length_fraction) and 0 <= self.gate_length_fraction <= 2,
            "tracker.gate_length_fraction",
            f"must be in [0, 2], got {self.gate_length_fraction!r}",
        )
        _check(
            _is_number(self.gate_sigmas) and 0 <= self.gate_sigmas <= 10,
            "tracker.gate_sigmas",
            f"must be in [0, 10], got {self.gate_sigmas!r}",
        )
        _check(
            _is_number(self.birth_score) and 0 <= self.birth_score <= 1,
            "tracker.birth_score",
            f"must be in [0, 1], got {self.birth_score!r}",
        )
        _check(
            _is_number(self.min_score) and 0 <= self.min_score <= self.birth_score,
            "tracker.min_score",
            f"must be in [0, birth_score={self.birth_score}], got {self.min_score!r}",
        )
        _check(
            _is_int(self.max_missed) and 0 <= self.max_missed <= 1000,
            "tracker.max_missed",
            f"must be an int in [0, 1000] frames, got {self.max_missed!r}",
        )
        _check(
            _is_number(self.accel_noise_mps2) and 0 < self.accel_noise_mps2 <= 100,
            "tracker.accel_noise_mps2",
            f"must be in (0, 100] m/s^2, got {self.accel_noise_mps2!r}",
        )
        _check(
            _is_number(self.measurement_noise_m) and 0 < self.measurement_noise_m <= 10,
            "tracker.measurement_noise_m",
            f"must be in (0, 10] m, got {self.measurement_noise_m!r}",
        )
        _check(
            _is_number(self.attribute_smoothing) and 0 < self.attribute_smoothing <= 1,
            "tracker.attribute_smoothing",
            f"must be in (0, 1], got {self.attribute_smoothing!r}",
        )
        _check(
            isinstance(self.class_aware, bool),
            "tracker.class_aware",
            f"must be a bool, got {self.class_aware!r}",
        )


@dataclass(frozen=True, kw_only=True)
class AutoLabelConfig:
    """Settings of ``auto_label``.

    Attributes:
        min_track_length: tracks with fewer detections than this are dropped, unless their
            track score reaches ``min_track_score``.
        min_track_score: see ``min_track_length``.
        max_gap: runs of at most this many missing frames inside a track are filled with
            interpolated boxes; longer gaps stay empty.
        size_quantile: the object's length, width and height are this score-weighted
            quantile of its detections' (a high one: partial views shrink boxes).
        accel_noise_mps2: white acceleration of the smoother's constant-velocity model.
        measurement_noise_m: centre noise of a detection scoring 1; a detection scoring
            ``s`` gets variance ``measurement_noise_m**2 / max(s, 0.1)``.
        static_max_displacement_m: a track whose smoothed centre moves less than this
            between its first and last frame is static and held at one pose, metres.
        moving_min_speed_mps: in frames where a moving object's smoothed speed reaches this,
            its heading is its direction of motion, m/s.
        smoothing_sigma_frames: standard deviation of the Gaussian window (frames) that
            smooths headings and box bottoms.
        score_blend: weight of the track score in a box's score; the rest is the frame's.
    """

    min_track_length: int = 3
    min_track_score: float = 0.5
    max_gap: int = 3
    size_quantile: float = 0.75
    accel_noise_mps2: float = 2.0
    measurement_noise_m: float = 0.4
    static_max_displacement_m: float = 1.0
    moving_min_speed_mps: float = 1.0
    smoothing_sigma_frames: float = 2.0
    score_blend: float = 0.5

    def __post_init__(self) -> None:
        _check(
            _is_int(self.min_track_length) and 1 <= self.min_track_length <= 10_000,
            "auto_label.min_track_length",
            f"must be an int in [1, 10000] frames, got {self.min_track_length!r}",
        )
        _check(
            _is_number(self.min_track_score) and 0 <= self.min_track_score <= 1,
            "auto_label.min_track_score",
            f"must be in [0, 1], got {self.min_track_score!r}",
        )
        _check(
            _is_int(self.max_gap) and 0 <= self.max_gap <= 1000,
            "auto_label.max_gap",
            f"must be an int in [0, 1000] frames, got {self.max_gap!r}",
        )
        _check(
            _is_number(self.size_quantile) and 0 <= self.size_quantile <= 1,
            "auto_label.size_quantile",
            f"must be in [0, 1], got {self.size_quantile!r}",
        )
        _check(
            _is_number(self.accel_noise_mps2) and 0 < self.accel_noise_mps2 <= 100,
            "auto_label.accel_noise_mps2",
            f"must be in (0, 100] m/s^2, got {self.accel_noise_mps2!r}",
        )
        _check(
            _is_number(self.measurement_noise_m) and 0 < self.measurement_noise_m <= 10,
            "auto_label.measurement_noise_m",
            f"must be in (0, 10] m, got {self.measurement_noise_m!r}",
        )
        _check(
            _is_number(self.static_max_displacement_m)
            and 0 <= self.static_max_displacement_m <= 100,
            "auto_label.static_max_displacement_m",
            f"must be in [0, 100] m, got {self.static_max_displacement_m!r}",
        )
        _check(
            _is_number(self.moving_min_speed_mps) and 0 <= self.moving_min_speed_mps <= 100,
            "auto_label.moving_min_speed_mps",
            f"must be in [0, 100] m/s, got {self.moving_min_speed_mps!r}",
        )
        _check(
            _is_number(self.smoothing_sigma_frames) and 0 < self.smoothing_sigma_frames <= 100,
            "auto_label.smoothing_sigma_frames",
            f"must be in (0, 100] frames, got {self.smoothing_sigma_frames!r}",
        )
        _check(
            _is_number(self.score_blend) and 0 <= self.score_blend <= 1,
            "auto_label.score_blend",
            f"must be in [0, 1], got {self.score_blend!r}",
        )


_SOLVERS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2", "rk4", "midpoint", "euler")
_ACTIVATIONS = ("softplus", "tanh")


@dataclass(frozen=True, kw_only=True)
class DensityConfig:
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

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "softplus"
    t1: float = 1.0
    solver: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    train_rtol: float = 1e-4
    train_atol: float = 1e-4
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    max_epochs: int = 100
    patience: int = 10
    val_fraction: float = 0.1
    score_batch_size: int = 8192
    max_nfe: int = 5000
    seed: int = 0
    device: str = "cpu"
    kinetic_weight: float = 0.1
    jacobian_weight: float = 0.1

    def __post_init__(self) -> None:
        _check(
            isinstance(self.hidden, tuple)
            and len(self.hidden) >= 1
            and all(isinstance(h, int) and 1 <= h <= 4096 for h in self.hidden),
            "density.hidden",
            f"must be a non-empty tuple of ints in [1, 4096], got {self.hidden!r}",
        )
        _check(
            self.activation in _ACTIVATIONS,
            "density.activation",
            f"must be one of {', '.join(_ACTIVATIONS)}, got {self.activation!r}",
        )
        _check(0 < self.t1 <= 100, "density.t1", f"must be in (0, 100], got {self.t1}")
        _check(
            self.solver in _SOLVERS,
            "density.solver",
            f"must be one of {', '.join(_SOLVERS)}, got {self.solver!r}",
        )
        for name in ("rtol", "atol", "train_rtol", "train_atol"):
            value = getattr(self, name)
            _check(0 < value <= 1, f"density.{name}", f"must be in (0, 1], got {value}")
        _check(0 < self.lr <= 1, "density.lr", f"must be in (0, 1], got {self.lr}")
        _check(
            self.weight_decay >= 0,
            "density.weight_decay",
            f"must be >= 0, got {self.weight_decay}",
        )
        _check(self.batch_size >= 1, "density.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.max_epochs >= 1, "density.max_epochs", f"must be >= 1, got {self.max_epochs}")
        _check(self.patience >= 1, "density.patience", f"must be >= 1, got {self.patience}")
        _check(
            0 <= self.val_fraction < 0.5,
            "density.val_fraction",
            f"must be in [0, 0.5), got {self.val_fraction}",
        )
        _check(
            self.score_batch_size >= 1,
            "density.score_batch_size",
            f"must be >= 1, got {self.score_batch_size}",
        )
        _check(self.max_nfe >= 10, "density.max_nfe", f"must be >= 10, got {self.max_nfe}")
        _check(isinstance(self.seed, int), "density.seed", f"must be an int, got {self.seed!r}")
        _check(
            self.device in ("cpu", "cuda", "mps") or self.device.startswith("cuda:"),
            "density.device",
            f"unknown device {self.device!r}",
        )
        for name in ("kinetic_weight", "jacobian_weight"):
            value = getattr(self, name)
            _check(
                _is_number(value) and 0 <= value <= 100,
                f"density.{name}",
                f"must be a number in [0, 100], got {value!r}",
            )


@dataclass(frozen=True, kw_only=True)
class RarenessConfig:
    """The feature space and density model of D-REM (paper section 3.1).

    Features of the main detector's detections scoring at least ``min_score`` in the
    ``fit_splits`` are reduced to ``k`` standardised components and the ``estimator``
    (``ffjord`` or a baseline: ``gaussian``, ``gmm``, ``knn``, ``realnvp``) is fitted on them.
    ``k = 32`` components: chosen with the flow's regularisation by held-out NLL
    (docs/density.md, "What was tried").
    """

    k: int = 32
    estimator: str = "ffjord"
    min_score: float = 0.3
    fit_splits: tuple[str, ...] = ("source", "unlabelled")
    density: DensityConfig = field(default_factory=lambda: DensityConfig(max_epochs=40))

    def __post_init__(self) -> None:
        _check(
            isinstance(self.k, int) and 1 <= self.k <= 512,
            "rareness.k",
            f"must be an int in [1, 512], got {self.k!r}",
        )
        _check(
            self.estimator in ("ffjord", "gaussian", "gmm", "knn", "realnvp"),
            "rareness.estimator",
            f"must be ffjord, gaussian, gmm, knn or realnvp, got {self.estimator!r}",
        )
        _check(
            0 <= self.min_score < 1,
            "rareness.min_score",
            f"must be in [0, 1), got {self.min_score}",
        )
        _check(
            len(self.fit_splits) > 0
            and set(self.fit_splits) <= {"source", "unlabelled", "validation", "ood"},
            "rareness.fit_splits",
            f"must name splits among source, unlabelled, validation, ood, got {self.fit_splits}",
        )


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    """The hard-example filter of M-REM and MD-REM (paper eqs. 10-11).

    An object is *easy* (kept) when it has more than ``min_points`` points and lies closer
    than ``max_distance_m``; rare-but-easy objects are what REM mines, not merely hard ones.
    """

    min_points: int = 200
    max_distance_m: float = 50.0

    def __post_init__(self) -> None:
        _check(
            isinstance(self.min_points, int) and self.min_points >= 0,
            "score.min_points",
            f"must be an int >= 0, got {self.min_points!r}",
        )
        _check(
            _is_number(self.max_distance_m) and self.max_distance_m > 0,
            "score.max_distance_m",
            f"must be > 0 m, got {self.max_distance_m!r}",
        )


#: Selection methods of track-level mining (paper Tables 1 and 3), in report order.
MINING_METHODS = (
    "random",
    "predict_size",
    "ensemble",
    "m_rem",
    "d_rem",
    "md_rem",
    "oracle_hard",
    "oracle_size",
)


@dataclass(frozen=True, kw_only=True)
class MiningConfig:
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

    budget: int | str = "3%"
    check_iou: float = 0.0
    fp_costs_budget: bool = False
    rank_by: str = "track"
    seed: int = 0

    def __post_init__(self) -> None:
        ok = (isinstance(self.budget, int) and not isinstance(self.budget, bool)) or (
            isinstance(self.budget, str) and bool(self.budget.strip())
        )
        _check(ok, "mining.budget", f"must be a count or a share like '3%', got {self.budget!r}")
        _check(
            _is_number(self.check_iou) and 0 <= self.check_iou < 1,
            "mining.check_iou",
            f"must be in [0, 1), got {self.check_iou!r}",
        )
        _check(
            self.rank_by in ("track", "detection"),
            "mining.rank_by",
            f"must be 'track' or 'detection', got {self.rank_by!r}",
        )
        _check(isinstance(self.seed, int), "mining.seed", f"must be an int, got {self.seed!r}")


#: Row keys of the active-learning experiment (``rem_core.experiment.EXPERIMENT_ROWS``).
EXPERIMENT_ROW_NAMES = (
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
)


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """The active-learning experiment (paper Tables 2 and 3; ``rem_core.experiment``).

    Attributes:
        rows: the table's rows to run (``EXPERIMENT_ROW_NAMES``).
        seeds: runs per row (seeds 0 .. seeds - 1 of the weights, the data order and Random).
        detector_epochs: the experiment's detector recipe: the pipeline's detector settings
            with this many epochs (``None``: the pipeline's own). The ensemble that mines,
            self-labels and auto-labels is trained with it on the source pool, and every
            retraining takes its number of optimiser steps, ``ceil(source frames /
            batch_size) * epochs``, whatever the row's label set: every row costs the same
            and gains only from what its labels hold.
        detector_precision: the training precision of that recipe (``detector.precision``;
            ``None``: the pipeline's own). ``auto`` (bfloat16 on this machine) costs Large
            AP (docs/detector.md measures it) and saves little time on crops.
        steps: the optimiser steps of every retraining, overriding the recipe's. The demo
            preset sets neither recipe field and ``steps=4800``: it mines with the app's
            pipeline and retrains every row for 4,800 steps in fp32.
        self_label_score: the main model's detections at least this sure become self-labels.
        auto_label_score: auto-labels at least this sure are kept.
        iou_threshold: IoU of a true positive in the evaluation (the paper's 0.5).
        iou: ``"3d"`` or ``"bev"`` IoU.
        curve_bin_width: percentile bins of the recall-by-rareness curves.
        ema_decay: each retraining returns the exponential moving average of its weights
            with this decay (0: the last step's weights; see ``train_detector``).
    """

    rows: tuple[str, ...] = EXPERIMENT_ROW_NAMES
    seeds: int = 3
    detector_epochs: int | None = None
    detector_precision: str | None = None
    steps: int | None = None
    self_label_score: float = 0.5
    auto_label_score: float = 0.5
    iou_threshold: float = 0.5
    iou: str = "3d"
    curve_bin_width: float = 5.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        for row in self.rows:
            _check(
                row in EXPERIMENT_ROW_NAMES,
                "experiment.rows",
                f"unknown row {row!r}; known: {', '.join(EXPERIMENT_ROW_NAMES)}",
            )
        _check(len(set(self.rows)) == len(self.rows), "experiment.rows", "a row appears twice")
        _check(
            isinstance(self.seeds, int) and 0 <= self.seeds <= 100,
            "experiment.seeds",
            f"must be in [0, 100], got {self.seeds!r}",
        )
        _check(
            self.detector_epochs is None
            or (isinstance(self.detector_epochs, int) and 1 <= self.detector_epochs <= 1000),
            "experiment.detector_epochs",
            f"must be in [1, 1000] or None, got {self.detector_epochs!r}",
        )
        _check(
            self.detector_precision is None or self.detector_precision in PRECISIONS,
            "experiment.detector_precision",
            f"must be one of {', '.join(PRECISIONS)} or None, got {self.detector_precision!r}",
        )
        _check(
            self.steps is None or (isinstance(self.steps, int) and self.steps >= 1),
            "experiment.steps",
            f"must be a positive count or None, got {self.steps!r}",
        )
        for name in ("self_label_score", "auto_label_score"):
            value = getattr(self, name)
            _check(0 <= value <= 1, f"experiment.{name}", f"must be in [0, 1], got {value}")
        _check(
            0 < self.iou_threshold < 1,
            "experiment.iou_threshold",
            f"must be in (0, 1), got {self.iou_threshold}",
        )
        _check(self.iou in ("3d", "bev"), "experiment.iou", f"'3d' or 'bev', got {self.iou!r}")
        _check(
            0 < self.curve_bin_width <= 100 and (100 / self.curve_bin_width) % 1 == 0,
            "experiment.curve_bin_width",
            f"must divide 100, got {self.curve_bin_width}",
        )
        _check(
            0 <= self.ema_decay < 1,
            "experiment.ema_decay",
            f"must be in [0, 1), got {self.ema_decay}",
        )


#: Where the features REM scores come from (``FeatureConfig.source``).
FEATURE_SOURCES = ("detector", "geometry", "imported")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """Where the features REM scores come from.

    Attributes:
        source: ``"detector"`` (the paper's: ROI-pooled features of our BEV detector
            ensemble, trained on the source pool) or ``"geometry"`` (geometric box
            descriptors, ``rem_core.descriptors``, for data without point clouds to train
            a detector on, such as imported labels: the ground-truth boxes stand in for
            detections, each with its own track and score 1), or ``"imported"`` (the
            features a researcher's own detector gave its detections, stored by ``rem
            import detections --features``; the density is fitted on them, and a
            ground-truth box takes the features of the detection that best overlaps it,
            none when missed).
    """

    source: str = "detector"

    def __post_init__(self) -> None:
        _check(
            self.source in FEATURE_SOURCES,
            "features.source",
            f"must be one of {', '.join(FEATURE_SOURCES)}, got {self.source!r}",
        )


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
        """The preset called ``name``: ``tiny``, ``demo`` or ``full``."""
        presets = {"tiny": cls.tiny, "demo": cls.demo, "full": cls.full}
        if name not in presets:
            raise ValueError(f"preset: unknown preset {name!r}; choose one of {sorted(presets)}")
        return presets[name]()


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any, *upstream: str) -> str:
    """A 16-hex-digit key of a config and the keys of the stages it depends on."""
    payload = json.dumps(
        {"type": type(config).__name__, "config": dataclasses.asdict(config), "up": upstream},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
