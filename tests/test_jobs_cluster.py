"""A job on a Dask cluster: the scheduler checked before anything starts, the job's status
naming its cluster and dashboard, an unreachable scheduler a failure that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_jobs import _start_tiny, _wait

from rem_core.cluster import SCHEDULER_ENV
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.jobs import job_folder, job_key, read_job, start_job
from rem_core.pipeline import pipeline_status, world_path


@pytest.mark.parametrize("bad", ["my-cluster", "local:0", "local:x"])
def test_a_bad_scheduler_is_refused_naming_it_before_anything_starts(tmp_path: Path, bad: str):
    config = RemConfig.tiny()
    key = job_key("pipeline", config, tmp_path / "data")
    with pytest.raises(ValueError, match=f"start_job: cluster {bad!r}"):
        start_job(key, "pipeline", config, data=tmp_path / "data", root=tmp_path, cluster=bad)
    assert not (tmp_path / "jobs").exists()


def test_a_job_on_a_local_cluster_runs_the_pipeline_and_links_its_dashboard(tmp_path: Path):
    key, config, started = _start_tiny(tmp_path, cluster="local:1", light=True)
    assert started.cluster == "local:1"
    # the key names the computation, not where it runs
    assert key == job_key("pipeline", config, world_path(config.world, tmp_path))
    assert read_job(key, tmp_path).cluster == "local:1"  # said before the job connects
    status = _wait(key, tmp_path)
    assert status.state == "done", status.error
    assert status.cluster == "local:1"
    assert status.dashboard.startswith("http"), status.dashboard
    assert "local cluster of 1 workers" in status.log.read_text()
    world = Dataset.open(world_path(config.world, tmp_path))
    assert pipeline_status(config, world, tmp_path)["rareness"]


def test_a_job_whose_scheduler_cannot_be_reached_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "2s")  # the job's env
    config = RemConfig.tiny()
    data = tmp_path / "no-such-data"  # never opened: the scheduler comes first
    key = job_key("pipeline", config, data)
    address = "tcp://127.0.0.1:1"
    start_job(key, "pipeline", config, data=data, root=tmp_path, cluster=address)
    status = _wait(key, tmp_path, timeout=60)
    assert status.state == "failed"
    assert status.error.startswith(f"ConnectionError: cannot reach the Dask scheduler {address}")
    assert status.cluster == address and status.dashboard is None


def test_a_job_without_a_cluster_ignores_the_environments_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The app passes $REM_DASK_SCHEDULER on (Home's field) or not (empty field): a job
    # started without a cluster runs in its own process whatever the environment says.
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.1:1")
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "2s")
    config = RemConfig.tiny()
    data = tmp_path / "no-such-data"
    key = job_key("pipeline", config, data)
    assert start_job(key, "pipeline", config, data=data, root=tmp_path).cluster is None
    status = _wait(key, tmp_path, timeout=60)
    assert status.state == "failed"
    assert str(data) in status.error and "scheduler" not in status.error
    assert status.cluster is None and status.dashboard is None


def test_a_status_written_before_clusters_reads_as_in_process(tmp_path: Path):
    folder = job_folder("k", tmp_path)
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(
        '{"kind": "pipeline", "label": "tiny", "state": "done", "stages": [], "started": 0}'
    )
    status = read_job("k", tmp_path)
    assert status.state == "done" and status.cluster is None and status.dashboard is None
