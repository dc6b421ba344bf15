"""Running segment-by-segment stages on a Dask cluster: an executor switch, not a second
pipeline.

Without a cluster every stage runs in process as before. With one, a stage that works
segment by segment submits its segments as Dask tasks and takes their results back in
segment order, so what it publishes is the same (each segment's randomness depends only on
the world's seed and the segment's index).

A cluster is named as on the command line (``--cluster``) or by ``$REM_DASK_SCHEDULER``:

- ``local`` or ``local:N``: a ``distributed.LocalCluster`` of ``N`` single-threaded worker
  processes on this machine (default: one per core), closed when the work is done;
- ``tcp://host:8786`` (any scheduler address): an existing cluster (``dask scheduler`` /
  ``dask worker``, dask-jobqueue on SLURM, dask-kubernetes), left running.

>>> cluster_spec("local:2"), cluster_spec("tcp://10.0.0.5:8786")
(('local', 2), ('address', 'tcp://10.0.0.5:8786'))
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rem_core.errors import InputError

__all__ = ["SCHEDULER_ENV", "cluster_spec", "dask_client", "map_in_order", "n_workers"]

log = logging.getLogger(__name__)

#: The environment variable naming a scheduler when ``--cluster`` is not given.
SCHEDULER_ENV = "REM_DASK_SCHEDULER"


def cluster_spec(spec: str | None) -> tuple[str, Any] | None:
    """``("local", n_workers)``, ``("address", address)`` or ``None`` (run in process) for a
    ``--cluster`` value; ``None`` reads ``$REM_DASK_SCHEDULER``.

    Raises:
        ValueError: naming the value, when it is neither ``local[:N]`` nor an address.
    """
    spec = (spec if spec is not None else os.environ.get(SCHEDULER_ENV, "")).strip()
    if not spec or spec == "none":
        return None
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if count and not (count.isdigit() and int(count) >= 1):
            raise InputError(f"--cluster {spec!r}: write local or local:N with N >= 1 workers")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        return ("local", int(count) if count else cores)
    if "://" in spec:
        return ("address", spec)
    raise InputError(
        f"--cluster {spec!r}: expected local, local:N or a scheduler address such as "
        "tcp://host:8786"
    )


@contextlib.contextmanager
def dask_client(spec: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (see :func:`cluster_spec`), or ``None`` when
    there is no cluster; a local cluster is started here and closed on exit."""
    parsed = cluster_spec(spec)
    if parsed is None:
        yield None
        return
    from distributed import Client, LocalCluster

    # The scheduler's and workers' start and stop lines are not the user's business.
    # (distributed sets its own loggers to INFO; keep them for `rem -v`, debug logging.)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    kind, value = parsed
    if kind == "address":
        with Client(value) as client:
            log.info("dask: attached to %s (dashboard %s)", value, client.dashboard_link)
            _prepare_workers(client)
            yield client
        return
    # Single-threaded workers in processes: a segment's work is Python and numpy, and torch
    # in each worker keeps to its one thread (the figures measure the engine).
    with (
        LocalCluster(
            n_workers=value,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("dask: local cluster of %d workers (dashboard %s)", value, client.dashboard_link)
        _prepare_workers(client)
        yield client


def _prepare_workers(client: Any) -> None:
    """Every worker, and every worker that joins or restarts later, keeps freed memory for
    the next task (``rem_core.memory``): Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_`` to 64
    KiB, which made a worker score a flow three times slower than the client."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class KeepFreedMemory(WorkerPlugin):
        name = "rem-keep-freed-memory"

        def setup(self, worker: Any) -> None:
            # Imported on the worker: this class travels to it by value.
            from rem_core.memory import keep_freed_memory

            keep_freed_memory()

    client.register_plugin(KeepFreedMemory())


def n_workers(client: Any) -> int:
    """Workers the cluster has now (at least 1)."""
    return max(1, len(client.scheduler_info()["workers"]))


def map_in_order(
    client: Any,
    fn: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    ahead: int | None = None,
    shared: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """``fn(item, *args, **shared)`` for every item, run as Dask tasks, yielded in the order of
    ``items``.

    At most ``ahead`` tasks (default: twice the workers) are submitted past the one the
    consumer waits for, so the client never holds the results of the whole stage (a
    segment holds a few million points). ``shared`` values (model weights, a fitted
    density) are sent once to every worker, not once per task. A task whose worker dies is
    run again on another (the scheduler's ``distributed.scheduler.allowed-failures``, 3 by
    default); a task that raises raises here, at once.
    """
    ahead = ahead or 2 * n_workers(client)
    kwargs = {}
    if shared:
        kwargs = {k: client.scatter(v, broadcast=True, hash=False) for k, v in shared.items()}
    pending: deque = deque()
    source = iter(items)
    exhausted = False
    while True:
        while not exhausted and len(pending) < ahead:
            try:
                item = next(source)
            except StopIteration:
                exhausted = True
                break
            pending.append(client.submit(fn, item, *args, pure=False, **kwargs))
        if not pending:
            return
        future = pending.popleft()
        yield future.result()
        future.release()
