"""Cache keys from settings, content and code (``rem_core.pipeline.keys``, ``code``).

A change of a stage's logic changes its key and every key after it, and no other; a change
of its docstrings, comments or formatting changes none. A data set's key is its bytes: two
copies share it wherever they are, and one value changed gives another key, counts alike.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import rem_core
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import (
    STAGE_CODE,
    code_fingerprint,
    code_fingerprints,
    dataset_key,
    detections_key,
    detector_key,
    experiment_key,
    import_closure,
    rareness_key,
    world_key,
)
from rem_core.pipeline import code as code_module

SOURCE = Path(rem_core.__file__).resolve().parent


def _keys(config: RemConfig, world: Dataset) -> dict[str, str]:
    geometry = replace(config, features=replace(config.features, source="geometry"))
    return {
        "world": world_key(config.world),
        "dataset": dataset_key(world),
        "detector": detector_key(config, world),
        "detections": detections_key(config, world),
        "detections (geometry)": detections_key(geometry, world),
        "rareness": rareness_key(config, world),
        "experiment": experiment_key(config, world, 960),
    }


@pytest.fixture
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the package's source that the fingerprints read instead: edit it, then
    call ``changed()`` for every key as that code gives it."""
    copy = tmp_path / "rem_core"
    shutil.copytree(
        SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__", "weights", "reference_results")
    )

    def read_the_copy() -> None:
        for cached in (code_module._fingerprint, code_module._closure, code_module._parsed):
            cached.cache_clear()
        monkeypatch.setattr(code_module, "_SOURCE", copy)

    yield copy, read_the_copy
    for cached in (code_module._fingerprint, code_module._closure, code_module._parsed):
        cached.cache_clear()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def test_a_change_of_logic_changes_its_stage_key_and_every_key_after_it(tiny_world, source_copy):
    config = RemConfig.tiny()
    before = _keys(config, tiny_world)
    copy, read_the_copy = source_copy
    # one line of the detector's training logic
    _edit(copy / "detect" / "train.py", "return -(-frames // config.batch_size) * config.epochs",
          "return -(-frames // config.batch_size) * config.epochs + 1")  # fmt: skip
    read_the_copy()
    after = _keys(config, tiny_world)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"detector", "detections", "rareness", "experiment"}


def test_a_density_change_reaches_rareness_and_the_experiment_only(tiny_world, source_copy):
    config = RemConfig.tiny()
    before = _keys(config, tiny_world)
    copy, read_the_copy = source_copy
    _edit(copy / "density" / "reduce.py", "def transform(", "def transform(  # noqa\n")
    _edit(copy / "density" / "registry.py", "sample = features[:5000]", "sample = features[:4999]")
    read_the_copy()
    after = _keys(config, tiny_world)
    assert {name for name in before if before[name] != after[name]} == {"rareness", "experiment"}


def test_docstrings_comments_and_formatting_change_no_key(tiny_world, source_copy):
    config = RemConfig.tiny()
    before = _keys(config, tiny_world)
    fingerprints = code_fingerprints()
    copy, read_the_copy = source_copy
    train = copy / "detect" / "train.py"
    _edit(train, '"""Optimiser steps of', '"""The optimiser steps of')  # a docstring
    _edit(train, "def default_steps(", "# a comment\n\n\ndef default_steps(")
    _edit(train, "return -(-frames // config.batch_size) * config.epochs",
          "return (-(-frames // config.batch_size)\n            * config.epochs)")  # fmt: skip
    _edit(copy / "world" / "segment.py", '"""', '"""A new first line.\n\n')  # module docstring
    read_the_copy()
    assert code_fingerprints() == fingerprints
    assert _keys(config, tiny_world) == before


def test_an_inference_change_reaches_the_detections_not_the_weights(tiny_world, source_copy):
    config = RemConfig.tiny()
    before = _keys(config, tiny_world)
    copy, read_the_copy = source_copy
    _edit(copy / "detect" / "decode.py", "k = min(config.max_detections * 2, scores.numel())",
          "k = min(config.max_detections * 3, scores.numel())")  # fmt: skip
    read_the_copy()
    after = _keys(config, tiny_world)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"detections", "rareness", "experiment"}


def test_a_stages_code_is_its_import_closure():
    closure = import_closure(STAGE_CODE["detector"])
    assert "rem_core.detect.model" in closure and "rem_core.geometry.boxes" in closure
    assert "rem_core.detect.batches" in closure and "rem_core.detect.augment" in closure
    assert "rem_core.detect.infer" not in closure and "rem_core.detect.decode" not in closure
    assert not any(m.startswith(("rem_core.density", "rem_core.mining")) for m in closure)
    detections = import_closure(("rem_core.pipeline.sources.detector",))
    assert "rem_core.track.tracker" in detections and "rem_core.detect.infer" in detections
    assert not any(m.startswith("rem_core.density") for m in detections)
    assert code_fingerprint("detector") != code_fingerprint("world")
    with pytest.raises(ValueError, match="code: unknown stage 'nope'"):
        code_fingerprint("nope")


def test_two_copies_of_a_data_set_share_their_key_other_data_of_the_same_counts_do_not(
    tiny_world, tmp_path
):
    key = dataset_key(tiny_world)
    here, there = tmp_path / "here", tmp_path / "deep" / "there"
    shutil.copytree(tiny_world.root, here)
    shutil.copytree(tiny_world.root, there)
    assert dataset_key(Dataset.open(here)) == dataset_key(Dataset.open(there)) == key
    # written before the manifest recorded its content: every file read and hashed
    manifest = json.loads((there / "dataset.json").read_text())
    manifest.pop("content")
    (there / "dataset.json").write_text(json.dumps(manifest))
    assert dataset_key(Dataset.open(there)) == key
    # one box's centre moved by a millimetre: the same counts, other data
    boxes = pq.read_table(here / "boxes.parquet")
    table = boxes.to_pandas()
    table.loc[0, "center_x"] += 0.001
    pq.write_table(type(boxes).from_pandas(table, schema=boxes.schema), here / "boxes.parquet")
    other = Dataset.open(here)
    assert other.manifest["counts"] == tiny_world.manifest["counts"]
    assert dataset_key(other) != key
    # and so is one point of one frame
    points = sorted((there / "points").glob("*.parquet"))[0]
    cloud = pq.read_table(points).to_pandas()
    cloud.loc[0, "x"] += 0.001
    pq.write_table(pq.read_table(points).from_pandas(cloud, preserve_index=False), points)
    assert dataset_key(Dataset.open(there)) not in (key, dataset_key(other))


def test_a_detectors_own_detections_enter_the_key_by_their_bytes(tiny_world, tmp_path):
    config = replace(RemConfig.tiny(), features=replace(RemConfig.tiny().features,
                                                        source="geometry"))  # fmt: skip
    copies = [tmp_path / name for name in ("a", "b")]
    for copy in copies:
        shutil.copytree(tiny_world.root, copy)
        (copy / "detections.parquet").write_bytes(b"the same detections")
    a, b = (Dataset.open(c) for c in copies)
    assert detections_key(config, a) == detections_key(config, b)
    (copies[1] / "detections.parquet").write_bytes(b"other detections!!!")  # same size
    assert detections_key(config, a) != detections_key(config, Dataset.open(copies[1]))


def test_the_code_is_parsed_by_one_thread_at_a_time(tmp_path: Path, monkeypatch):
    # Two sessions of the app ask for a key at once; `ast.parse` in two threads at once
    # fails in CPython 3.11 ("AST constructor recursion depth mismatch", seen in the app).
    import threading
    import time

    source = tmp_path / "rem_core"
    shutil.copytree(SOURCE / "config", source / "config")
    (source / "__init__.py").write_text("")
    parse, active, most = code_module.ast.parse, [0], [0]

    def slow_parse(*args, **kwargs):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.002)
        try:
            return parse(*args, **kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(code_module.ast, "parse", slow_parse)
    threads = [threading.Thread(target=code_module._trees, args=(source,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def _fingerprint_afresh(source: Path) -> str:
    for cached in (code_module._fingerprint, code_module._closure, code_module._parsed):
        cached.cache_clear()
    return code_module._fingerprint(("rem_core.config",), source)


def test_the_parsed_code_is_kept_and_read_back_while_its_source_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Parsing the package costs each process about two seconds; each module's tree is kept
    # beside its bytecode and read back, and never once its source has changed.
    source = tmp_path / "rem_core"
    shutil.copytree(SOURCE / "config", source / "config")
    (source / "__init__.py").write_text("")
    parsed = _fingerprint_afresh(source)
    kept = sorted(source.rglob("*.ast.json"))
    assert {p.parent.name for p in kept} == {"__pycache__"}
    assert len(kept) == len(list(source.rglob("*.py")))

    parse = code_module.ast.parse
    monkeypatch.setattr(code_module.ast, "parse", lambda *a, **k: pytest.fail("parsed again"))
    assert _fingerprint_afresh(source) == parsed  # read back, not parsed

    # a change of logic: that module is parsed again, and the fingerprint is the one a
    # parse of every module gives
    monkeypatch.setattr(code_module.ast, "parse", parse)
    _edit(source / "config" / "world.py", "n_segments=4,", "n_segments=5,")
    changed = _fingerprint_afresh(source)
    assert changed != parsed
    for path in kept:
        path.unlink()
    assert _fingerprint_afresh(source) == changed

    # a kept file that cannot be read is parsed again; a folder that cannot be written is
    # no error
    for path in source.rglob("*.ast.json"):
        path.write_text("{not json")
    assert _fingerprint_afresh(source) == changed
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(code_module, "_kept_path", lambda path: tmp_path / "a-file" / "x.json")
    assert _fingerprint_afresh(source) == changed
    for cached in (code_module._fingerprint, code_module._closure, code_module._parsed):
        cached.cache_clear()
