"""Long computations in a process of their own: the app's pipeline and its experiment.

The app must not run REM's stages in its server: a thread there shares the server's GIL
and event loop, dies with the server, and is invisible to a second server. A *job* runs
in its own Python process instead, in its own session (a restart of the server, or
Ctrl-C on ``make app``, does not stop it), and leaves everything it knows in its folder
``<cache>/jobs/<key>/``:

- ``lock``: an exclusive ``flock`` held by the job process for its whole life. The
  starter takes it *before* it spawns the process and hands the open file to it, so
  between two starters (two browser tabs, two servers) exactly one wins; a job whose lock
  is free is not running, however it ended (the kernel releases the lock of a killed
  process).
- ``status.json``: what it runs, its stages with their progress and times, the Dask
  cluster it runs on and that cluster's dashboard (``start_job(..., cluster=)``; none: in
  its own process), how it ended; replaced atomically, at most twice a second, so a reader
  never sees half of it.
- ``spec.json``: what to run (kind, label, settings as ``rem_core.config.config_to_dict``
  writes them, data set or world, cache root, cluster, retrain), read back by
  ``rem_core.config.config_from_dict``: nothing is pickled; ``pid``: its process id, written
  by the starter; ``log.txt``: its output.

:func:`start_job` starts one unless it runs already; :func:`read_job` tells how far it got
(a small file read: cheap enough for a page that refreshes every few seconds);
:func:`stop_job` ends it. ``python -m rem_core.jobs FOLDER`` is the job process itself.

The package's modules: ``status`` (what a job is and how far it got: :func:`read_job`),
``start`` (:func:`start_job`, :func:`stop_job`), ``runner`` (the job process itself, run by
``__main__``).

Examples:
    >>> from rem_core.config import RemConfig
    >>> config = RemConfig.tiny()
    >>> key = job_key("pipeline", config, "/data/tiny-world")
    >>> status = start_job(key, "pipeline", config, world=config.world)  # doctest: +SKIP
    >>> read_job(key).stages  # doctest: +SKIP
    {'building the world': StageStatus(done=3, total=16, ...)}
"""

from rem_core.jobs.runner import (
    STATUS_INTERVAL_S,
    run_job_process,
)
from rem_core.jobs.start import (
    start_job,
    stop_job,
)
from rem_core.jobs.status import (
    KINDS,
    JobStatus,
    StageStatus,
    State,
    job_folder,
    job_key,
    read_job,
)

__all__ = [
    "KINDS",
    "STATUS_INTERVAL_S",
    "JobStatus",
    "StageStatus",
    "State",
    "job_folder",
    "job_key",
    "read_job",
    "run_job_process",
    "start_job",
    "stop_job",
]
