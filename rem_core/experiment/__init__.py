"""The paper's active-learning experiment (Tables 2 and 3): mine, label, retrain, evaluate;
its statistics, its claims and its shipped reference.

* ``rows``: the rows (``EXPERIMENT_ROWS``: a selection method and how the rest of the pool
  is labelled) and the AP a run reports (``AP_COLUMNS``).
* ``runs``: the experiment's plan (``plan_experiment``: its detector recipe, step count and
  cache key, computed once), each row's label set (``label_set``), the cached runs
  (``run_experiment``, ``read_experiment``).
* ``results``: the runs' table of AP by row over seeds, and the share of the Large gap closed.
* ``segments``: a run's per-segment results (``SegmentResults``), which recompute its AP on
  resampled validation sets.
* ``stats``: the paired two-level bootstrap (seeds and validation segments) of every row and
  every comparison.
* ``claims``: the paper's claims, said from the intervals (holds, does not, not settled).
* ``export``: the files ``rem experiment --out`` writes.
* ``reference``: the reference tables that ship with the package, read and shipped.
"""

from rem_core.experiment.claims import (
    VERDICTS,
    Claim,
    paper_claims,
)
from rem_core.experiment.export import write_experiment
from rem_core.experiment.labels import label_set
from rem_core.experiment.reference import (
    REFERENCE_RESULTS,
    Reference,
    load_reference,
    read_reference,
    reference_root,
    ship_reference,
)
from rem_core.experiment.results import (
    ExperimentResult,
    results_table,
    write_results,
)
from rem_core.experiment.rows import (
    AP_COLUMNS,
    EXPERIMENT_ROWS,
    ExperimentRow,
    experiment_rows,
)
from rem_core.experiment.runs import (
    ExperimentPlan,
    experiment_config,
    plan_experiment,
    read_experiment,
    redo_run,
    run_experiment,
)
from rem_core.experiment.segments import (
    SegmentResults,
    read_segment_results,
    resampled_ap,
    segment_results,
    write_segment_results,
)
from rem_core.experiment.staleness import (
    ReferenceStatus,
    reference_status,
)
from rem_core.experiment.stats import (
    BUDGET_STEPS,
    LEVEL,
    REFERENCES,
    RESAMPLES,
    ExperimentIntervals,
    bootstrap_intervals,
    experiment_intervals,
    load_segment_results,
    with_intervals,
)
from rem_core.experiment.verification import (
    Verification,
    read_verification,
    verify,
)

__all__ = [
    "AP_COLUMNS",
    "BUDGET_STEPS",
    "EXPERIMENT_ROWS",
    "LEVEL",
    "REFERENCES",
    "REFERENCE_RESULTS",
    "RESAMPLES",
    "VERDICTS",
    "Claim",
    "ExperimentIntervals",
    "ExperimentPlan",
    "ExperimentResult",
    "ExperimentRow",
    "Reference",
    "ReferenceStatus",
    "SegmentResults",
    "Verification",
    "bootstrap_intervals",
    "experiment_config",
    "experiment_intervals",
    "experiment_rows",
    "label_set",
    "load_reference",
    "load_segment_results",
    "paper_claims",
    "plan_experiment",
    "read_experiment",
    "read_reference",
    "read_segment_results",
    "read_verification",
    "redo_run",
    "reference_root",
    "reference_status",
    "resampled_ap",
    "results_table",
    "run_experiment",
    "segment_results",
    "ship_reference",
    "verify",
    "with_intervals",
    "write_experiment",
    "write_results",
    "write_segment_results",
]
