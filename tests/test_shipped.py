"""Shipped detector weights: used only for their own recipe, world and code, intact; retrain.

``test_the_demo_weights_that_ship_are_this_codes`` fails when the detector's code (its
fingerprint: ``rem_core.pipeline.code``) or the demo's recipe changed since the weights were
shipped: `make weights` re-ships them (a few minutes)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rem_core import pipeline
from rem_core.cli import main
from rem_core.config import RemConfig, config_hash, config_to_dict
from rem_core.dataset import Dataset
from rem_core.experiment import read_verification, verify
from rem_core.files import file_sha256
from rem_core.pipeline import (
    clear_pipeline,
    code_fingerprint,
    dataset_key,
    detector_key,
    detector_origin,
    ensure_detectors,
    ship_detectors,
    shipped,
)
from rem_core.pipeline.sources import detector as detector_source
from rem_core.world import write_world


@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory) -> Path:
    """A cache holding the tiny ensemble, trained."""
    root = tmp_path_factory.mktemp("cache")
    ensure_detectors(RemConfig.tiny(), tiny_world, root=root, shipped=False)
    return root


@pytest.fixture
def weights(trained, tiny_world, tmp_path, monkeypatch) -> Path:
    """The tiny ensemble shipped into a package weights folder of the test's own."""
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "weights")
    key = detector_key(RemConfig.tiny(), tiny_world)
    return ship_detectors(
        trained / "detector" / key, tiny_world, key, tmp_path / "weights" / "tiny", {}
    )


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(detector_source, "train_detectors", boom)


def test_the_data_sets_key_is_its_content(tiny_world, tiny_config, tmp_path):
    again = write_world(tiny_config, tmp_path / "again")
    assert dataset_key(again) == dataset_key(tiny_world)
    # one box moved by a millimetre is another world
    boxes = tmp_path / "again" / "boxes.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(boxes).to_pandas()
    table.loc[0, "center_x"] += 0.001
    table.to_parquet(boxes)
    assert dataset_key(Dataset.open(tmp_path / "again")) != dataset_key(tiny_world)


def test_shipped_weights_are_copied_instead_of_training(
    weights, trained, tiny_world, tmp_path, monkeypatch
):
    _no_training(monkeypatch)
    root = tmp_path / "cache"
    reported = []
    ensure_detectors(
        RemConfig.tiny(), tiny_world, root=root, progress=lambda *a: reported.append(a)
    )
    key = detector_key(RemConfig.tiny(), tiny_world)
    for member in range(RemConfig.tiny().detector.ensemble_size):
        name = f"member-{member}/model.pt"
        assert (root / "detector" / key / name).read_bytes() == (
            trained / "detector" / key / name
        ).read_bytes()
    origin = detector_origin(RemConfig.tiny(), tiny_world, root)
    assert origin["origin"] == "shipped" and origin["commit"]
    assert reported[-1] == ("detectors shipped with the app", 2, 2)
    provenance = json.loads((weights / "provenance.json").read_text())
    assert provenance["dataset_key"] == dataset_key(tiny_world)
    assert provenance["code"] == code_fingerprint("detector")
    # what the bytes depend on besides the code and the data: where and how they were trained
    assert provenance["trained_s"] > 0 and provenance["kernels"]["threads"] >= 1
    assert provenance["machine"]["cpus"] >= 1 and provenance["kernels"]["capability"]


@pytest.mark.parametrize("change", ["code", "altered", "settings", "environment"])
def test_shipped_weights_for_anything_else_are_not_used(
    change, weights, tiny_world, tmp_path, monkeypatch
):
    config = RemConfig.tiny()
    if change == "code":  # shipped by another version of the detector's code
        path = weights / "provenance.json"
        provenance = json.loads(path.read_text())
        provenance["detector_key"] = config_hash(config.detector, dataset_key(tiny_world), "old")
        path.write_text(json.dumps(provenance))
    elif change == "altered":
        with open(weights / "member-1" / "model.pt", "ab") as f:
            f.write(b"\0")
    elif change == "settings":
        config = replace(config, detector=replace(config.detector, learning_rate=0.02))
    else:
        monkeypatch.setenv("REM_SHIPPED_WEIGHTS", "0")
    key = detector_key(config, tiny_world)
    assert shipped.find_shipped(key, tiny_world, config.detector.ensemble_size) is None
    trained_here = []
    real = detector_source.train_detectors
    monkeypatch.setattr(
        detector_source, "train_detectors", lambda *a, **k: trained_here.append(1) or real(*a, **k)
    )
    ensure_detectors(config, tiny_world, root=tmp_path / "cache")
    assert trained_here
    assert detector_origin(config, tiny_world, tmp_path / "cache")["origin"] == "trained"


def test_retrain_clears_the_ensemble_and_what_was_computed_from_it(
    weights, tiny_world, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "cache"
    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    config = RemConfig.tiny()
    pipeline.run_pipeline(config, tiny_world, root=root)
    assert detector_origin(config, tiny_world, root)["origin"] == "shipped"
    gaussian = replace(config, rareness=replace(config.rareness, estimator="gaussian"))
    other = pipeline.ensure_rareness(gaussian, tiny_world, root=root)
    unrelated = root / "rareness" / "unrelated"
    unrelated.mkdir()
    (unrelated / "meta.json").write_text('{"detections": "elsewhere"}')
    args = ["detect", "train", "--preset", "tiny", "--data", str(tiny_world.root), "--retrain"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("removed ") == 4  # ensemble, detections, two density models
    assert str(other.path) in out
    assert "(trained;" in out
    assert unrelated.is_dir()
    status = pipeline.pipeline_status(config, tiny_world, root)
    assert status["detectors"] and not status["detections"] and not status["rareness"]
    assert detector_origin(config, tiny_world, root)["origin"] == "trained"
    assert clear_pipeline(config, tiny_world, root) == [
        root / "detector" / detector_key(config, tiny_world)
    ]


def test_the_demo_weights_that_ship_are_this_codes():
    # Changing the detector's code (not its docstrings or comments) or the demo's detector
    # settings without `make weights` would leave the shipped ensemble unused, and the app's
    # first start 4 minutes longer.
    demo = RemConfig.demo()
    folder = shipped.SHIPPED / "demo"
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance.get("code") == code_fingerprint("detector"), (
        "the detector's code changed since the demo weights were shipped: `make weights`"
    )
    assert provenance["settings"]["detector"] == config_to_dict(demo.detector)
    # the key this code gives for these settings on the world the weights were trained on
    key = config_hash(demo.detector, provenance["dataset_key"], code_fingerprint("detector"))
    assert provenance["detector_key"] == key
    assert provenance["world_config_hash"] == config_hash(demo.world)
    assert provenance["members"] == demo.detector.ensemble_size
    for name, digest in provenance["sha256"].items():
        assert file_sha256(folder / name) == digest, name


def test_shipping_a_shipped_copy_is_refused(weights, tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    ensure_detectors(RemConfig.tiny(), tiny_world, root=tmp_path / "cache")
    args = ["detect", "ship", "--preset", "tiny", "--data", str(tiny_world.root)]
    with pytest.raises(SystemExit, match="is itself a shipped copy"):
        main([*args, "--out", str(tmp_path / "out")])
    shutil.rmtree(tmp_path / "cache")
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "provenance.json").is_file()


def test_verify_retrains_a_shipped_member_and_finds_the_same_bytes(
    weights, tiny_world, tmp_path, monkeypatch
):
    monkeypatch.setattr(shipped, "SHIPPED", weights.parent)
    root = tmp_path / "cache"
    found = verify(RemConfig.tiny(), None, runs=0, root=root)
    w = found.weights
    assert w["same"] and w["max_abs_diff"] == 0 and w["code_matches"] and w["member"] == 0
    assert found.reproduced and found.passed
    assert read_verification(root) == found
    assert found.summary().startswith("`rem verify` reproduced the shipped weights' bytes on ")
    assert "weights, member 0 on" in found.table() and "identical" in found.table()

    # weights trained elsewhere (here: nudged by 1e-6) are found to differ, and by how much
    member = weights / "member-0"
    state = torch.load(member / "model.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1e-6
    torch.save(state, member / "model.pt")
    found = verify(RemConfig.tiny(), None, runs=0, root=root)
    assert not found.weights["same"] and 5e-7 < found.weights["max_abs_diff"] < 2e-6
    assert not found.passed  # weights alone cannot show that the paper's claims hold
    assert "differ (max |diff| 1e-06)" in found.table() and found.table().endswith("FAILED")
