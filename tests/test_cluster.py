"""The executor switch: a stage on a Dask cluster gives what it gives in process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rem_core.cluster import SCHEDULER_ENV, cluster_spec, dask_client, map_in_order
from rem_core.config import WorldConfig
from rem_core.dataset import Dataset
from rem_core.world import write_world


def test_cluster_spec_reads_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert cluster_spec(None) is None and cluster_spec("") is None
    assert cluster_spec("local:3") == ("local", 3)
    assert cluster_spec("local")[0] == "local"
    assert cluster_spec("tcp://host:8786") == ("address", "tcp://host:8786")
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://elsewhere:8786")
    assert cluster_spec(None) == ("address", "tcp://elsewhere:8786")
    assert cluster_spec("none") is None  # the flag wins over the environment
    for bad in ("local:0", "local:x", "my-cluster"):
        with pytest.raises(ValueError, match=repr(bad)):
            cluster_spec(bad)


def _square_plus(x: int, offset: int, *, table: np.ndarray) -> int:
    return int(x * x + offset + table.sum())


@pytest.fixture(scope="module")
def client():
    with dask_client("local:2") as client:
        yield client


def test_map_in_order_keeps_the_order_and_sends_shared_values_once(client):
    out = list(
        map_in_order(client, _square_plus, range(20), 1, ahead=3, shared={"table": np.ones(4)})
    )
    assert out == [x * x + 1 + 4 for x in range(20)]


def _same_world(a: Dataset, b: Dataset) -> None:
    for name in ("segments", "frames", "boxes"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    for segment in a.segments["segment_id"]:
        for frame in range(int((a.frames["segment_id"] == segment).sum())):
            np.testing.assert_array_equal(a.points(segment, frame), b.points(segment, frame))


def test_the_world_on_a_cluster_is_the_world_in_process(client, tmp_path: Path):
    config = WorldConfig.tiny()
    here = write_world(config, tmp_path / "here")
    there = write_world(config, tmp_path / "there", client=client)
    _same_world(here, there)


def test_a_worker_killed_mid_stage_does_not_change_the_world(client, tmp_path: Path):
    config = WorldConfig.tiny()
    pids = client.run(os.getpid)  # worker address -> process id
    killed = []

    def kill_one(done: int, total: int) -> None:
        # After the first segment: kill a worker that is simulating one now.
        busy = [address for address, keys in client.processing().items() if keys]
        if done == 1 and busy and not killed:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    there = write_world(config, tmp_path / "there", progress=kill_one, client=client)
    assert killed
    _same_world(write_world(config, tmp_path / "here"), there)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_detection_stage_on_a_cluster_is_the_one_in_process(
    client, tiny_world: Dataset, tmp_path: Path
):
    import shutil

    from rem_core.config import RemConfig
    from rem_core.pipeline import ensure_detections
    from rem_core.sources.detector import detector_entry, ensure_detectors

    config = RemConfig.tiny()
    here, there = tmp_path / "here", tmp_path / "there"
    ensure_detectors(config, tiny_world, root=here)
    # The same trained ensemble in both caches: only the detection stage differs.
    shutil.copytree(
        detector_entry(config, tiny_world, here).path,
        detector_entry(config, tiny_world, there).path,
    )
    a = ensure_detections(config, tiny_world, root=here)
    b = ensure_detections(config, tiny_world, root=there, client=client)
    pd.testing.assert_frame_equal(a.detections, b.detections)
    pd.testing.assert_frame_equal(a.gt, b.gt)
    pd.testing.assert_frame_equal(a.autolabels, b.autolabels)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.gt_features, b.gt_features)
    np.testing.assert_array_equal(a.scores, b.scores)
