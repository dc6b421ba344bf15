"""A pool kept in parts: fitted on a sample, scored and mined part by part, on a cluster or
here, with the same result as Algorithm 1 on the whole pool."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rem_core.cluster import dask_client
from rem_core.config import RemConfig
from rem_core.density import fit_density
from rem_core.mining import select_tracks
from rem_core.pool import (
    Pool,
    SyntheticPool,
    parts_from,
    sample_features,
    score_and_mine,
    write_pool,
)

SPEC = SyntheticPool(parts=3, segments=4, tracks=100, detections=4000, features=12)


@pytest.fixture(scope="module")
def client():
    with dask_client("local:2") as client:
        yield client


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Pool:
    return write_pool(tmp_path_factory.mktemp("pool") / "pool", SPEC, SPEC.parts)


@pytest.fixture(scope="module")
def models(pool):
    X = sample_features(pool, 3000)
    return fit_density(X, RemConfig.tiny().rareness)  # a small FFJORD


@pytest.fixture
def one_thread():
    """Torch on one thread here, as on the workers: the same sums."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _whole(pool: Pool, out: Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    parts = range(len(pool.parts))
    det = pd.concat([pool.read(p, features=False)[0] for p in parts], ignore_index=True)
    gt = pd.concat([pool.read_gt(p) for p in parts], ignore_index=True)
    tables = [pq.read_table(out / f"part-{p:05d}.parquet").to_pandas() for p in parts]
    scores = pd.concat(tables, ignore_index=True)
    return det, scores["rareness"].to_numpy(), gt, scores["discarded_by"].to_numpy()


def _same_folder(a: Path, b: Path) -> None:
    names = sorted(x.name for x in a.iterdir())
    assert names == sorted(x.name for x in b.iterdir())
    for name in names:
        if name.endswith(".parquet"):
            assert pq.read_table(a / name).equals(pq.read_table(b / name)), name


def test_a_pool_written_on_a_cluster_is_the_pool_written_here(client, pool, tmp_path):
    there = write_pool(tmp_path / "pool", SPEC, SPEC.parts, client=client)
    assert there.parts == pool.parts and there.tracked and there.features == SPEC.features
    _same_folder(pool.folder, there.folder)
    assert pool.detections == SPEC.parts * SPEC.detections
    assert pool.tracks == SPEC.parts * SPEC.segments * SPEC.tracks
    # The sample is drawn part by part with seeds of their own: the same anywhere.
    np.testing.assert_array_equal(
        sample_features(pool, 1000, min_score=0.2),
        sample_features(there, 1000, min_score=0.2, client=client),
    )
    assert len(sample_features(pool, 1000)) == 1000


@pytest.mark.parametrize("rank_by", ["track", "detection"])
def test_scored_and_mined_by_parts_is_algorithm_1_on_the_whole_pool(
    client, pool, models, one_thread, tmp_path, rank_by
):
    reducer, estimator = models
    here = score_and_mine(pool, reducer, estimator, "3%", tmp_path / "here", rank_by=rank_by)
    there = score_and_mine(
        pool, reducer, estimator, "3%", tmp_path / "there", rank_by=rank_by, client=client
    )
    _same_folder(here.path, there.path)
    det, rareness, gt, discarded_by = _whole(pool, here.path)
    whole = select_tracks(det, rareness, gt, here.budget)
    assert here.budget == round(0.03 * pool.tracks) and len(whole.tracks) == here.budget
    for result in (here, there):
        pd.testing.assert_frame_equal(result.tracks, whole.tracks)
        np.testing.assert_array_equal(result.checked, whole.checked)
        np.testing.assert_array_equal(result.hit, whole.hit)
    np.testing.assert_array_equal(discarded_by, whole.discarded_at)
    # D-REM finds the rare kind: long vehicles are 3% of the tracks, many times that of the
    # mined ones (even by this small flow).
    long = gt.drop_duplicates(["segment_id", "track_id"]).set_index(["segment_id", "track_id"])
    mined = long.loc[pd.MultiIndex.from_frame(whole.tracks[["segment_id", "track_id"]])]
    assert (mined["length"] > 7).mean() > 5 * (long["length"] > 7).mean()
    if rank_by == "track":  # a track's detections share its rareness
        tracked = det["track_id"].notna().to_numpy()
        keys = det.loc[tracked, ["segment_id", "track_id"]].assign(r=rareness[tracked])
        assert keys.groupby(["segment_id", "track_id"])["r"].nunique().max() == 1


def test_a_worker_killed_while_scoring_changes_nothing(pool, models, one_thread, tmp_path):
    reducer, estimator = models
    here = score_and_mine(pool, reducer, estimator, 40, tmp_path / "here")
    # A cluster of its own: one of its workers dies, and no other test waits for the nanny
    # to bring it back (more than 240 s once, with another test file running beside it).
    with dask_client("local:2") as client:
        there, killed = _score_killing_a_worker(client, pool, reducer, estimator, tmp_path)
    assert killed
    assert sorted(x.name for x in tmp_path.iterdir()) == ["here", "there"]  # no temporary
    _same_folder(here.path, there.path)
    pd.testing.assert_frame_equal(here.tracks, there.tracks)


def _score_killing_a_worker(client, pool, reducer, estimator, tmp_path):
    """``score_and_mine`` on ``client``, killing the first worker seen scoring a part; its
    result, and the killed worker's address (empty: none was seen in 60 s)."""
    pids = client.run(os.getpid)
    killed: list[str] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for address, keys in client.processing().items():
                if any("_score_part" in str(k) for k in keys):
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append(address)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one)
    killer.start()
    there = score_and_mine(pool, reducer, estimator, 40, tmp_path / "there", client=client)
    killer.join()
    return there, killed


def _broken_part(p: int):
    det, features, gt = SPEC(p)
    if p == 1:
        det = det.copy()
        det.loc[0, "segment_id"] = "seg000000"  # a segment of part 0
    return det, features, gt


def test_bad_parts_are_refused_by_name_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="segment 'seg000000' lies in parts 0 and 1"):
        write_pool(tmp_path / "pool", _broken_part, 2)
    det, features, gt = SPEC(0)
    features = features.copy()
    features[3, 2] = np.nan
    with pytest.raises(ValueError, match="pool part 0: 1 detections have features"):
        write_pool(tmp_path / "pool", parts_from([(det, features, gt)]), 1)
    with pytest.raises(ValueError, match=r"lack the columns \['score'\]"):
        write_pool(tmp_path / "pool", parts_from([(det.drop(columns="score"), features, gt)]), 1)
    assert not any(tmp_path.iterdir())  # no folder, no temporary left
    with pytest.raises(ValueError, match="pool.json: not found"):
        Pool.open(tmp_path)
    (tmp_path / "pool.json").write_text('{"format": "rem-pool", "version": 1, "parts": []}')
    with pytest.raises(ValueError, match="'parts' must be a non-empty list"):
        Pool.open(tmp_path)


def test_rem_pool_synth_and_mine(tmp_path, capsys):
    from rem_core.cli import main

    folder = tmp_path / "pool"
    args = ["--parts", "2", "--segments", "4", "--tracks", "60", "--detections", "2000"]
    assert main(["pool", "synth", str(folder), *args]) == 0
    assert main(["pool", "synth", str(folder), *args]) == 2  # exists: needs --force
    assert "pass --force" in capsys.readouterr().err
    out = tmp_path / "mined"
    assert (
        main(
            [
                "pool",
                "mine",
                str(folder),
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--budget",
                "10",
                "--estimator",
                "gaussian",
            ]
        )
        == 0
    )
    tracks = pq.read_table(out / "tracks.parquet").to_pandas()
    assert len(tracks) == 10 and list(tracks["rank"]) == list(range(1, 11))
    assert "mined 10 tracks (budget 10) of 240" in capsys.readouterr().out
