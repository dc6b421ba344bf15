"""Jobs: REM's pipeline in a process of its own, one per key, surviving whoever started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rem_core.config import RemConfig
from rem_core.jobs import job_folder, job_key, read_job, start_job, stop_job
from rem_core.jobs.status import _read_spec, _write_spec
from rem_core.pipeline import pipeline_status, world_path

ROOT = Path(__file__).resolve().parents[1]


def _wait(key: str, root: Path, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while (status := read_job(key, root)).running:
        assert time.monotonic() < deadline, f"job {key} still running after {timeout} s"
        time.sleep(0.2)
    return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped) counts as ended, and so does one reaped meanwhile
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _light() -> RemConfig:
    """The tiny preset on its boxes' geometry with a Gaussian (no detector to train, no flow
    to fit): for the tests of a job's life, not of what it computes (about 20 s less each)."""
    tiny = RemConfig.tiny()
    return replace(
        tiny,
        features=replace(tiny.features, source="geometry"),
        rareness=replace(tiny.rareness, estimator="gaussian"),
    )


def _start_tiny(root: Path, cluster: str | None = None, light: bool = False):
    config = _light() if light else RemConfig.tiny()
    data = world_path(config.world, root)
    key = job_key("pipeline", config, data)
    started = start_job(key, "pipeline", config, world=config.world, root=root, cluster=cluster)
    return key, config, started


def test_a_job_builds_the_world_runs_the_pipeline_and_records_each_stage(tmp_path: Path):
    key, config, started = _start_tiny(tmp_path)
    assert started.running and started.pid != os.getpid()
    status = _wait(key, tmp_path)
    assert status.state == "done", status.error
    assert list(status.stages)[0] == "building the world"
    assert any(name.startswith("fitting ffjord") for name in status.stages)
    ends = [stage.ended for stage in status.stages.values()]
    assert all(end is not None for end in ends) and ends == sorted(ends)
    assert status.finished >= status.started
    from rem_core.dataset import Dataset

    world = Dataset.open(world_path(config.world, tmp_path))
    assert pipeline_status(config, world, tmp_path)["rareness"]
    # nothing pickled: the spec is JSON, read back as the same settings
    assert [p for p in tmp_path.rglob("*") if p.suffix == ".pkl"] == []
    spec = _read_spec(job_folder(key, tmp_path))
    assert spec["config"] == config and spec["world"] == config.world


def test_a_second_start_while_it_runs_starts_nothing(tmp_path: Path):
    key, config, first = _start_tiny(tmp_path, light=True)
    second = start_job(key, "pipeline", config, world=config.world, root=tmp_path)
    assert second.running
    assert read_job(key, tmp_path).pid == first.pid
    _wait(key, tmp_path)
    assert len(list((tmp_path / "jobs").iterdir())) == 1


def test_the_job_outlives_the_process_that_started_it(tmp_path: Path):
    # A "server" starts the job, then dies by SIGKILL to its whole process group, as a
    # terminal's Ctrl-C or a crash would take it; the job runs on to the end.
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from pathlib import Path
        from test_jobs import _start_tiny
        key, config, status = _start_tiny(Path({str(tmp_path)!r}), light=True)
        print(status.pid, flush=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)
        """
    )
    server = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, start_new_session=True
    )
    assert server.returncode == -signal.SIGKILL
    pid = int(server.stdout.split()[0])
    (folder,) = (tmp_path / "jobs").iterdir()
    status = read_job(folder.name, tmp_path)
    assert status.pid == pid
    status = _wait(folder.name, tmp_path)
    assert status.state == "done", status.error


def test_a_killed_job_reads_as_stopped_and_can_start_again(tmp_path: Path):
    key, config, started = _start_tiny(tmp_path, light=True)
    os.killpg(started.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(started.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = read_job(key, tmp_path)
    assert status.state == "stopped"
    assert "ended without a word" in status.error and "log.txt" in status.error
    again = start_job(key, "pipeline", config, world=config.world, root=tmp_path)
    assert again.pid != started.pid
    assert _wait(key, tmp_path).state == "done"


def test_stop_job_ends_it_and_says_so(tmp_path: Path):
    key, config, started = _start_tiny(tmp_path)
    time.sleep(1.0)  # usually past installing its stop handler (the next test: before it)
    assert stop_job(key, tmp_path)
    status = read_job(key, tmp_path)
    assert status.state in ("stopped", "done")  # done: it beat the signal
    if status.state == "stopped":
        assert status.error == "stopped on request"
    assert not stop_job(key, tmp_path)  # nothing runs now
    # no temporary folder left (the entry's lock file stays: it is reused, never stale)
    left = job_folder(key, tmp_path).parent.parent.glob("world/.*")
    assert [p.name for p in left if not p.name.endswith(".lock")] == []


def test_a_job_stopped_before_it_can_say_so_reads_as_stopped_on_request(tmp_path: Path):
    # Stopped at once, the process dies by the signal before its handler is installed; the
    # stop request left in its folder still says what happened. A new start clears it.
    key, config, started = _start_tiny(tmp_path, light=True)
    assert stop_job(key, tmp_path)
    status = read_job(key, tmp_path)
    assert (status.state, status.error) == ("stopped", "stopped on request")
    again = start_job(key, "pipeline", config, world=config.world, root=tmp_path)
    os.killpg(again.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(again.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "ended without a word" in read_job(key, tmp_path).error


def test_a_failing_job_records_why(tmp_path: Path):
    config = RemConfig.tiny()
    missing = tmp_path / "no-such-data"
    key = job_key("pipeline", config, missing)
    start_job(key, "pipeline", config, data=missing, root=tmp_path)
    status = _wait(key, tmp_path, timeout=60)
    assert status.state == "failed"
    assert str(missing) in status.error
    assert "Traceback" in status.log.read_text()


def test_start_job_checks_its_arguments(tmp_path: Path):
    config = RemConfig.tiny()
    with pytest.raises(ValueError, match="job kind: unknown 'train'"):
        job_key("train", config, tmp_path)
    with pytest.raises(ValueError, match="exactly one of data= and world="):
        start_job("k", "pipeline", config, root=tmp_path)
    assert read_job("never-started", tmp_path) is None


def test_an_unreadable_status_is_an_error_that_names_the_file(tmp_path: Path):
    folder = job_folder("k", tmp_path)
    folder.mkdir(parents=True)
    (folder / "status.json").write_text("{half")
    with pytest.raises(RuntimeError, match=r"status\.json: unreadable job status"):
        read_job("k", tmp_path)


def test_a_job_that_cannot_start_says_why_and_frees_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from rem_core.jobs import start
    from rem_core.jobs.status import _holds_lock

    def fail(*args, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(start, "_spawn", fail)  # where start_job looks it up
    config = RemConfig.tiny()
    key = job_key("pipeline", config, tmp_path / "data")
    with pytest.raises(OSError, match="no such interpreter"):
        start_job(key, "pipeline", config, data=tmp_path / "data", root=tmp_path)
    status = read_job(key, tmp_path)
    assert status.state == "failed"
    assert status.error == "cannot start the job: no such interpreter"
    assert not _holds_lock(job_folder(key, tmp_path))


def test_a_stage_that_runs_again_is_timed_afresh(tmp_path: Path):
    import json

    from rem_core.jobs.runner import _Reporter

    (tmp_path / "status.json").write_text("{}")
    report = _Reporter(tmp_path, {"state": "running"})
    report("training", 0, 2)
    report("training", 2, 2)
    first_end = report.stages["training"][3]
    assert first_end is not None
    time.sleep(0.01)
    report("training", 0, 2)  # the next run's training
    assert report.stages["training"][3] is None
    assert report.stages["training"][2] >= first_end
    stages = dict(json.loads((tmp_path / "status.json").read_text())["stages"])
    assert stages["training"][:2] == [0, 2]


def test_the_spec_is_json_and_reads_back_as_the_same_settings(tmp_path: Path):
    import json
    from dataclasses import replace

    from rem_core.config import RarenessConfig, config_hash

    config = RemConfig.tiny()
    config = replace(config, rareness=RarenessConfig(estimator="knn").with_estimator_settings(k=5))
    (tmp_path / "spec.pkl").write_bytes(b"left by an older version")
    spec = {"kind": "pipeline", "label": "tiny", "config": config, "data": "/data/x"}
    spec |= {"world": None, "root": str(tmp_path), "retrain": True, "cluster": None}
    _write_spec(tmp_path, spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]
    assert json.loads((tmp_path / "spec.json").read_text())["config"]["rareness"]["knn"] == {"k": 5}
    back = _read_spec(tmp_path)
    assert back == spec and config_hash(back["config"]) == config_hash(config)
    _write_spec(tmp_path, spec | {"world": config.world, "data": None})
    assert _read_spec(tmp_path)["world"] == config.world


def test_a_job_whose_spec_is_not_valid_fails_naming_the_setting(tmp_path: Path):
    import json

    from rem_core.config import config_to_dict
    from rem_core.jobs import run_job_process

    raw = config_to_dict(RemConfig.tiny())
    raw["world"]["seed"] = -1
    spec = {"kind": "pipeline", "label": "bad", "config": raw, "data": None, "world": None}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "status.json").write_text(json.dumps({"kind": "pipeline", "label": "bad"}))
    assert run_job_process([str(tmp_path)]) == 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed"
    assert "spec.json: not a job spec (world.seed: must be an int >= 0, got -1)" in status["error"]
