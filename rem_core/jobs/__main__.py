"""``python -m rem_core.jobs FOLDER``: the job process (see ``rem_core.jobs.runner``)."""

import sys

from rem_core.jobs.runner import run_job_process

if __name__ == "__main__":
    sys.exit(run_job_process())
