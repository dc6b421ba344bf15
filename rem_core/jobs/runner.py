"""The job process itself: ``python -m rem_core.jobs FOLDER`` runs :func:`main`.

It runs what the folder's ``spec.json`` asks for (its settings rebuilt by
``rem_core.config.config_from_dict``), on the Dask cluster it names if any
(``rem_core.cluster``), and reports the cluster's dashboard and each stage's progress in the
folder's ``status.json`` (``rem_core.jobs.status``), then how it ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rem_core.cluster import dask_client
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.jobs.status import _read_spec, _write_json

__all__ = [
    "STATUS_INTERVAL_S",
    "run_job_process",
]

log = logging.getLogger(__name__)

#: Seconds between two writes of ``status.json`` within a stage.
STATUS_INTERVAL_S = 0.5


class _Reporter:
    """The job process's progress callback: records each stage and writes the status."""

    def __init__(self, folder: Path, status: dict[str, Any]) -> None:
        self.folder = folder
        self.status = status
        self.stages: dict[str, list] = {}
        self.t0 = time.monotonic()
        self.written = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic() - self.t0
        entry = self.stages.setdefault(stage, [done, total, now, None])
        if entry[3] is not None and done < total:  # the same stage again (an experiment's runs)
            entry[2], entry[3] = now, None
        entry[0], entry[1] = int(done), int(total)
        first = entry[3] is None and done >= total
        if first:
            entry[3] = now
        if first or done == 0 or now - self.written >= STATUS_INTERVAL_S:
            self.write()

    def write(self, **changes: Any) -> None:
        self.status.update(changes, stages=list(self.stages.items()))
        _write_json(self.folder / "status.json", self.status)
        self.written = time.monotonic() - self.t0


@contextlib.contextmanager
def _client(cluster: str | None, report: _Reporter) -> Iterator[Any]:
    """The Dask client of the job's cluster (``None``: none, in this process), its dashboard
    in the status as soon as it is connected.

    Raises:
        ConnectionError: naming the cluster, when its scheduler cannot be reached or a local
            cluster cannot start.
    """

    # "none", not None: the job runs where its spec says, whatever $REM_DASK_SCHEDULER says
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(dask_client(cluster or "none"))
        except (OSError, RuntimeError) as exc:
            if "://" in cluster:  # an address (cluster_spec)
                raise ConnectionError(f"cannot reach the Dask scheduler {cluster}: {exc}") from exc
            raise ConnectionError(f"cannot start the Dask cluster {cluster}: {exc}") from exc
        if client is not None:
            log.info("job on the Dask cluster %s, dashboard %s", cluster, client.dashboard_link)
            report.write(cluster=cluster, dashboard=client.dashboard_link)
        yield client


def _run(spec: dict[str, Any], report: _Reporter) -> None:
    with _client(spec["cluster"], report) as client:
        _run_on(spec, report, client)


def _run_on(spec: dict[str, Any], report: _Reporter, client: Any) -> None:
    # Imported here, once the stop handler is installed: the stages load torch, which takes
    # seconds, and a job stopped meanwhile must still say it was stopped on request.
    from rem_core.experiment import run_experiment
    from rem_core.pipeline import clear_pipeline, ensure_world, run_pipeline

    root = Path(spec["root"])
    config: RemConfig = spec["config"]
    if spec["world"] is not None:
        world = spec["world"]
        stage = "building the world"
        dataset = ensure_world(
            world,
            root=root,
            progress=lambda done, total: report(stage, done, total),
            client=client,
        )
    else:
        dataset = Dataset.open(spec["data"])
    if spec["kind"] == "pipeline":
        if spec.get("retrain"):
            for path in clear_pipeline(config, dataset, root):
                log.info("retrain: removed %s", path)
        run_pipeline(
            config,
            dataset,
            root=root,
            progress=report,
            shipped=not spec.get("retrain"),
            client=client,
        )
    else:
        run_experiment(config, dataset, root=root, progress=report, client=client)


def run_job_process(argv: list[str] | None = None) -> int:
    """The job process: ``python -m rem_core.jobs FOLDER`` (started by :func:`start_job`,
    which holds the folder's lock for it)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rem_core.jobs FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    status = json.loads((folder / "status.json").read_text())
    report = _Reporter(folder, status)
    report.write()
    try:
        spec = _read_spec(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        error = f"{folder / 'spec.json'}: not a job spec ({exc})"
        report.write(state="failed", error=error, finished=time.time())
        return 1

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    log.info("job %s: %s", folder.name, spec["label"])
    try:
        _run(spec, report)
    except SystemExit:
        report.write(state="stopped", error="stopped on request", finished=time.time())
        return 1
    except BaseException as exc:  # noqa: BLE001 - recorded for the app, traceback in the log
        traceback.print_exc()
        report.write(state="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())
        return 1
    report.write(state="done", finished=time.time())
    log.info("job %s: done", folder.name)
    return 0
