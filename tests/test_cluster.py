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
from rem_core.schema import BOX_COLUMNS
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
    from rem_core.pipeline import detector_entry, ensure_detections, ensure_detectors

    config = RemConfig.tiny()
    here, there = tmp_path / "here", tmp_path / "there"
    ensure_detectors(config, tiny_world, root=here)
    # The same trained ensemble in both caches: only the detection stage differs.
    shutil.copytree(
        detector_entry(config, tiny_world, here).path,
        detector_entry(config, tiny_world, there).path,
    )
    # The workers run torch on one thread; so does the run here, for the same sums.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = ensure_detections(config, tiny_world, root=here)
    finally:
        torch.set_num_threads(threads)
    b = ensure_detections(config, tiny_world, root=there, client=client)
    pd.testing.assert_frame_equal(a.detections, b.detections)
    pd.testing.assert_frame_equal(a.gt, b.gt)
    pd.testing.assert_frame_equal(a.autolabels, b.autolabels)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.gt_features, b.gt_features)
    np.testing.assert_array_equal(a.scores, b.scores)

    # The stages after it: the density fitted in the client (one thread both times), the
    # detections scored by it (on the workers past one batch), and D-REM's mining over
    # partitions of segments.
    from rem_core.mining import mine
    from rem_core.pipeline import ensure_mining_pool

    torch.set_num_threads(1)
    try:
        pools = [
            ensure_mining_pool(config, tiny_world, root=here),
            ensure_mining_pool(config, tiny_world, root=there, client=client),
        ]
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(pools[0].log_prob, pools[1].log_prob)
    np.testing.assert_array_equal(pools[0].gt_log_prob, pools[1].gt_log_prob)
    mined = [mine(pools[0], "d_rem", config), mine(pools[1], "d_rem", config, client=client)]
    assert len(mined[0].result.tracks) > 0
    pd.testing.assert_frame_equal(mined[0].result.tracks, mined[1].result.tracks)
    pd.testing.assert_frame_equal(mined[0].labels, mined[1].labels)


def _random_pool(seed: int, segments: int = 40) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Tracks moving along a lane, noisy detections of them plus false positives, and
    rareness with ties and -inf."""
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for s in range(segments):
        for t in range(8):
            x0, y0 = rng.uniform(-40, 40, 2)
            for f in range(6):
                box = (x0 + 1.5 * f, y0, 0.0, 4.5, 2.0, 1.6, 0.0)
                gt_rows.append((f"seg{s}", f, f"T{t}", *box))
                if rng.random() < 0.9:
                    noisy = (box[0] + rng.normal(0, 0.3), box[1] + rng.normal(0, 0.3), *box[2:])
                    det_rows.append((f"seg{s}", f, *noisy))
            det_rows.append(
                (f"seg{s}", int(rng.integers(6)), *rng.uniform(-40, 40, 2), 0.0, 4.5, 2.0, 1.6, 0.0)
            )
    gt = pd.DataFrame(gt_rows, columns=["segment_id", "frame_index", "track_id", *BOX_COLUMNS])
    det = pd.DataFrame(det_rows, columns=["segment_id", "frame_index", *BOX_COLUMNS])
    rareness = rng.choice([0.0, 0.5, 1.0, 2.0, -np.inf], len(det)) + rng.integers(0, 3, len(det))
    return det, rareness, gt


@pytest.mark.parametrize("fp_costs", [False, True])
def test_mining_partitions_on_the_cluster_is_exact(client, fp_costs):
    from rem_core.mining import select_tracks, select_tracks_partitioned

    det, rareness, gt = _random_pool(seed=int(fp_costs))
    whole = select_tracks(det, rareness, gt, 60, check_iou=0.1, fp_costs_budget=fp_costs)
    parts = select_tracks_partitioned(
        det, rareness, gt, 60, check_iou=0.1, fp_costs_budget=fp_costs, partitions=4, client=client
    )
    assert len(whole.tracks) > 20 and whole.tracks["segment_id"].nunique() > 4
    pd.testing.assert_frame_equal(parts.tracks, whole.tracks, check_dtype=False)
    np.testing.assert_array_equal(parts.checked, whole.checked)
    np.testing.assert_array_equal(parts.hit, whole.hit)
    np.testing.assert_array_equal(parts.discarded_at, whole.discarded_at)
    assert parts.spent == whole.spent


def test_rem_world_takes_a_cluster(tmp_path: Path, monkeypatch, capsys):
    from rem_core.cli import main

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert main(["world", "--preset", "tiny", "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    argv = ["world", "--preset", "tiny", "--out", str(tmp_path / "b"), "--cluster", "local:2"]
    assert main(argv) == 0
    _same_world(Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b"))
    assert main([*argv[:-1], "no-such-cluster"]) == 2
    assert "--cluster 'no-such-cluster'" in capsys.readouterr().err


def test_tracks_and_auto_labels_on_a_cluster_are_the_ones_in_process(client, tiny_world: Dataset):
    from rem_core.config import RemConfig
    from rem_core.track import auto_label, simulate_detections, track_detections

    config = RemConfig.tiny()
    detections = simulate_detections(tiny_world.boxes, seed=0)
    here = track_detections(detections, tiny_world.frames, config.tracker)
    there = track_detections(detections, tiny_world.frames, config.tracker, client)
    pd.testing.assert_frame_equal(here, there)
    assert here["track_id"].notna().sum() > 100
    labels = auto_label(here, tiny_world.frames, config.auto_label)
    pd.testing.assert_frame_equal(
        labels, auto_label(here, tiny_world.frames, config.auto_label, client)
    )
    assert labels["interpolated"].any() and len(labels) > 100


def test_a_flow_scores_the_same_on_a_cluster(client, monkeypatch):
    import torch

    import rem_core.density.spread as spread
    from rem_core.density import FFJORD, GaussianDensity

    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 3))
    flow = FFJORD(hidden=(16,), max_epochs=2, score_batch_size=64, seed=0).fit(X)
    monkeypatch.setattr(spread, "CHUNK_ROWS", 128)  # 6 chunks of 2 batches
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run
    try:
        here = flow.score_samples(X)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(spread.score_on_cluster(flow, X, client), here)
    gaussian = GaussianDensity().fit(X)  # a baseline: scored in the client
    np.testing.assert_array_equal(
        spread.score_on_cluster(gaussian, X, client), gaussian.score_samples(X)
    )


def test_imported_detections_are_tracked_on_a_cluster_as_in_process(
    client, tiny_world: Dataset, tmp_path: Path
):
    """The feature sources without our detector track (and auto-label) a data set's own
    detections on the cluster too, with the same tracks."""
    import shutil
    from dataclasses import replace

    from rem_core.config import FeatureConfig, RemConfig
    from rem_core.io import attach_detections
    from rem_core.pipeline import ensure_detections

    root = tmp_path / "with-detections"
    shutil.copytree(tiny_world.root, root)
    rng = np.random.default_rng(0)
    boxes = Dataset.open(root).boxes
    boxes = boxes[boxes["class"] == "vehicle"]
    table = boxes[["segment_id", "frame_index", "class", *BOX_COLUMNS]].assign(
        score=rng.uniform(0.3, 1.0, len(boxes)).astype(np.float32)
    )
    table["center_x"] += rng.normal(0, 0.2, len(table))
    attach_detections(root, table, rng.normal(size=(len(table), 4)).astype(np.float32))
    ds = Dataset.open(root)
    config = replace(RemConfig.tiny(), features=FeatureConfig(source="imported"))
    here = ensure_detections(config, ds, root=tmp_path / "here")
    there = ensure_detections(config, ds, root=tmp_path / "there", client=client)
    assert here.detections["track_id"].notna().mean() > 0.5  # tracked
    pd.testing.assert_frame_equal(here.detections, there.detections)
    pd.testing.assert_frame_equal(here.autolabels, there.autolabels)
    np.testing.assert_array_equal(here.features, there.features)
