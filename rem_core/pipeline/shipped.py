"""Detector ensembles that ship with the package, with their provenance.

The demo world is deterministic, and so is training on it: three trainings of the demo
ensemble on this project's reference machine (2 CPU cores, torch 2.13.0) wrote
byte-identical weights. Training them is the longest stage of the app's first start (about
4 min of its ten), so the demo ensemble ships in ``rem_core/weights/<name>/``: one folder per
member as the cache holds it, and ``provenance.json`` saying what made them:

- ``detector_key``: the cache key of the ensemble (the detector's settings, the world's
  settings and ``DETECTOR_VERSION``: see ``rem_core.pipeline.detector_key``);
- ``world_fingerprint``: a hash of the world's content (:func:`world_fingerprint`), so that
  a world simulated differently on another machine (another numpy, another CPU) is not
  given weights trained on a different one;
- ``commit``, ``trained_s``, ``members``, ``sha256`` of every weight file, and the settings.

``rem_core.pipeline.ensure_detectors`` copies them into the cache instead of training when
both the key and the fingerprint match and the files' hashes are intact; otherwise it
trains, as always. ``rem detect ship`` writes them (a maintainer's step, after a change of
the detector or the world: ``make weights``), and ``rem detect train --retrain`` (or Home's
*Retrain the detectors*) trains from scratch whatever ships; so does any command run with
``REM_SHIPPED_WEIGHTS=0`` in its environment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from rem_core.dataset import Dataset
from rem_core.files import publish_folder
from rem_core.provenance import file_sha256, git

__all__ = ["SHIPPED", "find_shipped", "ship_detectors", "world_fingerprint"]

log = logging.getLogger(__name__)

#: Where shipped ensembles live: one folder each, holding ``provenance.json``.
SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def world_fingerprint(dataset: Dataset) -> str:
    """A 16-hex-digit hash of what a data set holds: its segments and splits, every frame's
    point count, and every ground-truth box (ids, class, geometry, point count).

    Point coordinates are left out (gigabytes); a world simulated differently changes its
    boxes' ``num_points`` and its frames' point counts, so it is told apart all the same.
    """
    digest = hashlib.sha256()
    segments = dataset.segments.sort_values("segment_id")
    digest.update("\n".join(segments["segment_id"] + ":" + segments["split"]).encode())
    frames = dataset.frames.sort_values(["segment_id", "frame_index"])
    digest.update(frames["num_points"].to_numpy(np.int64).tobytes())
    boxes = dataset.boxes.sort_values(["segment_id", "frame_index", "track_id"])
    digest.update("\n".join(boxes["track_id"].astype(str) + boxes["class"]).encode())
    numeric = ["center_x", "center_y", "center_z", "length", "width", "height", "heading"]
    digest.update(boxes[numeric].to_numpy(np.float64).tobytes())
    digest.update(boxes["num_points"].to_numpy(np.int64).tobytes())
    return digest.hexdigest()[:16]


def find_shipped(key: str, dataset: Dataset, members: int) -> tuple[Path, dict] | None:
    """The shipped ensemble for detector cache key ``key`` on ``dataset``, and its
    provenance; ``None`` unless the key, the world's fingerprint, the member count and every
    file's hash match (a mismatch is logged, and the caller trains), or when the environment
    sets ``REM_SHIPPED_WEIGHTS=0`` (train everything here, e.g. ``REM_SHIPPED_WEIGHTS=0 make
    app``)."""
    if os.environ.get("REM_SHIPPED_WEIGHTS", "1").strip() == "0":
        return None
    for path in sorted(SHIPPED.glob("*/provenance.json")):
        provenance = json.loads(path.read_text())
        if provenance.get("detector_key") != key:
            continue
        folder = path.parent
        fingerprint = world_fingerprint(dataset)
        if provenance.get("world_fingerprint") != fingerprint:
            log.warning(
                "%s: trained on a world with fingerprint %s, this one has %s: training instead",
                folder,
                provenance.get("world_fingerprint"),
                fingerprint,
            )
            return None
        if provenance.get("members", 0) < members:
            return None
        for name, want in provenance.get("sha256", {}).items():
            if not (folder / name).is_file() or file_sha256(folder / name) != want:
                log.warning("%s: %s is missing or altered: training instead", folder, name)
                return None
        return folder, provenance
    return None


def ship_detectors(
    cached: Path,
    dataset: Dataset,
    key: str,
    out: Path,
    settings: dict,
    trained_s: float | None,
    detector_version: str,
) -> Path:
    """Copy a cached ensemble (``<cache>/detector/<key>``) to ``out`` with its provenance
    (``commit``: the commit it was shipped from; the code that trained
    it is pinned by ``detector_version`` and the key).

    Written to a temporary sibling and renamed, so ``out`` is whole or absent.
    """
    members = sorted(p.name for p in cached.glob("member-*") if (p / "model.pt").is_file())
    if not members:
        raise FileNotFoundError(f"{cached}: no trained member to ship")
    commit = git("rev-parse", "--short", "HEAD") or "unknown"

    def write(tmp: Path) -> None:
        hashes = {}
        for member in members:
            (tmp / member).mkdir()
            shutil.copyfile(cached / member / "model.pt", tmp / member / "model.pt")
            info = json.loads((cached / member / "model.json").read_text())
            info.pop("dataset", None)  # a path on the machine that trained it
            (tmp / member / "model.json").write_text(json.dumps(info, indent=2) + "\n")
            hashes[f"{member}/model.pt"] = file_sha256(tmp / member / "model.pt")
        provenance = {
            "detector_key": key,
            "world_fingerprint": world_fingerprint(dataset),
            "world_config_hash": dataset.manifest.get("config_hash"),
            "members": len(members),
            "detector_version": detector_version,
            "commit": commit,
            "trained_s": trained_s,
            "sha256": hashes,
            "settings": settings,
        }
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")

    out = Path(out)
    publish_folder(out, write)  # whole or absent: written beside it, then renamed
    return out
