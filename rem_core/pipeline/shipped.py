"""Detector ensembles that ship with the package, with their provenance.

Training the demo ensemble is the longest stage of the app's first start, so it ships in
``rem_core/weights/<name>/``: one folder per member as the cache holds it, and
``provenance.json`` saying what the bytes depend on:

- ``detector_key``: the ensemble's cache key (``rem_core.pipeline.detector_key``: the
  detector's settings, the data set's bytes and the detector's code fingerprint), by which
  ``rem_core.pipeline.ensure_detectors`` finds it; ``code``, ``dataset_key``: two of its parts;
- ``commit`` (and ``commit_dirty``), ``shipped``: the code it was shipped from, and when;
- ``trained_s``, ``machine`` and ``kernels``: how long training took, on which CPU, and what
  chose torch's kernels there (instruction set, threads, oneDNN, the pinning environment
  variables): another CPU or another thread count can train other bytes from the same code
  (docs/detector.md, "Reproducible bytes");
- ``sha256`` of every weight file, ``members`` and the settings.

``ensure_detectors`` copies them into the cache instead of training when the key matches and
the files are intact, and says why it trains instead when a shipped ensemble was made for
other code or other data. ``rem detect ship`` writes them (``make weights``, after a change of
the detector's code, settings or world: ``tests/test_shipped.py`` fails until then), and
``rem detect train --retrain`` (or Home's *Retrain the detectors*) trains from scratch
whatever ships; so does any command run with ``REM_SHIPPED_WEIGHTS=0`` in its environment.
``rem verify`` retrains a member and compares its bytes with the shipped ones.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from rem_core.config import PRESETS, DetectorConfig, RemConfig
from rem_core.dataset import Dataset
from rem_core.files import file_sha256, publish_folder
from rem_core.pipeline.code import code_fingerprint
from rem_core.provenance import git

__all__ = ["SHIPPED", "find_shipped", "ship_detectors", "shipped_folder"]

log = logging.getLogger(__name__)

#: Where shipped ensembles live: one folder each, holding ``provenance.json``.
SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def find_shipped(key: str, dataset: Dataset, members: int) -> tuple[Path, dict] | None:
    """The shipped ensemble for detector cache key ``key``, and its provenance; ``None``
    unless the key, the member count and every file's hash match, or when the environment
    sets ``REM_SHIPPED_WEIGHTS=0`` (train everything here, e.g. ``REM_SHIPPED_WEIGHTS=0 make
    app``). A shipped ensemble for the same data set but other code is logged (the caller
    trains)."""
    if os.environ.get("REM_SHIPPED_WEIGHTS", "1").strip() == "0":
        return None
    for path in sorted(SHIPPED.glob("*/provenance.json")):
        provenance = json.loads(path.read_text())
        folder = path.parent
        if provenance.get("detector_key") != key:
            if provenance.get("dataset_key") == dataset.content_key():
                log.warning(
                    "%s: shipped for this data set by other code or settings (commit %s, "
                    "detector key %s; here %s): training instead (`make weights` re-ships)",
                    folder,
                    provenance.get("commit"),
                    provenance.get("detector_key"),
                    key,
                )
            continue
        if provenance.get("members", 0) < members:
            return None
        for name, want in provenance.get("sha256", {}).items():
            if not (folder / name).is_file() or file_sha256(folder / name) != want:
                log.warning("%s: %s is missing or altered: training instead", folder, name)
                return None
        return folder, provenance
    return None


def shipped_folder(detector: DetectorConfig) -> Path:
    """The folder of the ensemble shipped for ``detector``'s settings (a preset's).

    Raises:
        FileNotFoundError: none ships for them.
    """
    for name in PRESETS:
        folder = SHIPPED / name
        if RemConfig.preset(name).detector == detector and (folder / "provenance.json").is_file():
            return folder
    raise FileNotFoundError(f"{SHIPPED}: no ensemble ships for these detector settings")


def ship_detectors(cached: Path, dataset: Dataset, key: str, out: Path, settings: dict) -> Path:
    """Copy a cached ensemble (``<cache>/detector/<key>``) to ``out`` with its provenance:
    the commit it is shipped from, the code fingerprint in its key, and what its members'
    training recorded (time, machine, kernels).

    Written to a temporary sibling and renamed, so ``out`` is whole or absent.
    """
    members = sorted(p.name for p in cached.glob("member-*") if (p / "model.pt").is_file())
    if not members:
        raise FileNotFoundError(f"{cached}: no trained member to ship")
    trained = json.loads((cached / members[0] / "model.json").read_text())
    commit = git("rev-parse", "HEAD")
    changes = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")

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
            "dataset_key": dataset.content_key(),
            "world_config_hash": dataset.manifest.get("config_hash"),
            "code": code_fingerprint("detector"),
            "members": len(members),
            "commit": commit or "unknown",
            "commit_dirty": bool(changes) if commit else None,
            "shipped": datetime.now(UTC).isoformat(timespec="seconds"),
            "trained_s": trained.get("trained_s"),
            "machine": trained.get("machine"),
            "kernels": trained.get("kernels"),
            "sha256": hashes,
            "settings": settings,
        }
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")

    out = Path(out)
    publish_folder(out, write)  # whole or absent: written beside it, then renamed
    return out
