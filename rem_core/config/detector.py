"""Settings of the detector, the tracker and the offboard auto-labeler."""

from __future__ import annotations

from dataclasses import dataclass

from rem_core.config.names import PRECISIONS
from rem_core.config.rules import (
    Check,
    Settings,
    flag,
    integer,
    is_int,
    is_number,
    number,
    one_of,
    require,
    setting,
)

__all__ = ["DEVICE", "AutoLabelConfig", "DetectorConfig", "TrackerConfig"]

#: A torch device name: ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``.
DEVICE = Check(
    lambda v: v in ("cpu", "cuda", "mps") or v.startswith("cuda:"), "must be cpu, cuda[:n] or mps"
)


def _channels(value: tuple[int, int]) -> bool:
    return len(value) == 2 and all(is_int(c) and c >= 4 for c in value)


def _stretch(value: tuple[float, float]) -> bool:
    return (
        len(value) == 2 and all(is_number(f) for f in value) and 0.5 <= value[0] <= value[1] <= 2.0
    )


@dataclass(frozen=True, kw_only=True)
class DetectorConfig(Settings):
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

    section = "detector"

    range_m: float = number(76.8, "[10, 200]", "m")
    cell_m: float = number(0.8, "[0.1, 2]", "m")
    channels: tuple[int, int] = setting((32, 64), Check(_channels, "must be two widths >= 4"))
    feature_channels: int = integer(64, "[4, inf)")
    epochs: int = integer(48, "[0, 1000]")
    batch_size: int = integer(4, "[1, 256]")
    learning_rate: float = number(1e-2, "(0, 1)")
    weight_decay: float = number(1e-4, "[0, 1)")
    min_train_points: int = integer(5, "[0, inf)")
    augment: bool = flag(True)
    score_threshold: float = number(0.05, "[0, 1)")
    max_detections: int = integer(200, "[1, inf)")
    ensemble_size: int = integer(5, "[1, 20]")
    match_iou: float = number(0.3, "(0, 1)")
    seed: int = integer(0, "[0, inf)")
    data_seed: int = integer(0, "[0, inf)")
    device: str = setting("cpu", DEVICE)
    num_threads: int = integer(0, "[0, inf)")  # 0: torch's default
    precision: str = one_of("fp32", PRECISIONS)
    loader: str = one_of("process", ("process", "thread"))
    crop_m: float = number(76.8, "[0, inf)", "m")
    paste_large: int = integer(4, "[0, 50]")
    paste_stretch: tuple[float, float] = setting(
        (0.85, 1.3), Check(_stretch, "must be (low, high) with 0.5 <= low <= high <= 2")
    )
    long_weight: float = number(3.0, "(0, 100]")
    dense_long_targets: bool = flag(True)

    def _validate(self) -> None:
        cells = 2 * self.range_m / self.cell_m
        require(
            abs(cells - round(cells)) < 1e-6 and round(cells) % 4 == 0,
            "detector.cell_m",
            f"2 * range_m / cell_m must be a whole multiple of 4, got {cells:g}",
        )
        crop, multiple = self.crop_m / self.cell_m, 4  # the backbone's total stride
        require(
            self.crop_m == 0
            or crop >= self.grid_size
            or (abs(crop - round(crop)) < 1e-6 and round(crop) % multiple == 0),
            "detector.crop_m",
            f"must be 0 (whole frames), at least 2 * range_m (whole frames too) or a positive "
            f"multiple of {multiple} cells, got {self.crop_m}",
        )

    @property
    def grid_size(self) -> int:
        """Cells along each side of the input grid."""
        return round(2 * self.range_m / self.cell_m)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig(Settings):
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

    section = "tracker"

    max_match_distance_m: float = number(2.5, "(0, 50]", "m")
    gate_length_fraction: float = number(0.25, "[0, 2]")
    gate_sigmas: float = number(3.0, "[0, 10]")
    birth_score: float = number(0.5, "[0, 1]")
    min_score: float = number(0.1, "[0, 1]")
    max_missed: int = integer(3, "[0, 1000]", "frames")
    accel_noise_mps2: float = number(3.0, "(0, 100]", "m/s^2")
    measurement_noise_m: float = number(0.4, "(0, 10]", "m")
    attribute_smoothing: float = number(0.3, "(0, 1]")
    class_aware: bool = flag(True)

    def _validate(self) -> None:
        require(
            self.min_score <= self.birth_score,
            "tracker.min_score",
            f"must be in [0, birth_score={self.birth_score}], got {self.min_score!r}",
        )


@dataclass(frozen=True, kw_only=True)
class AutoLabelConfig(Settings):
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

    section = "auto_label"

    min_track_length: int = integer(3, "[1, 10000]", "frames")
    min_track_score: float = number(0.5, "[0, 1]")
    max_gap: int = integer(3, "[0, 1000]", "frames")
    size_quantile: float = number(0.75, "[0, 1]")
    accel_noise_mps2: float = number(2.0, "(0, 100]", "m/s^2")
    measurement_noise_m: float = number(0.4, "(0, 10]", "m")
    static_max_displacement_m: float = number(1.0, "[0, 100]", "m")
    moving_min_speed_mps: float = number(1.0, "[0, 100]", "m/s")
    smoothing_sigma_frames: float = number(2.0, "(0, 100]", "frames")
    score_blend: float = number(0.5, "[0, 1]")
