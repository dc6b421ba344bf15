"""Experiments (paper Tables 2 and 3): mine, label, retrain, and compare AP.

Each row mines the unlabelled pool with a method, labels the rest of the pool with self-labels
or the auto-labeler, retrains the detector from scratch and evaluates it on the validation
split. Runs take minutes each on the demo world, so they run in the background,
are cached one by one, and the page fills in as they finish. Until the user's own runs are as
many, the page shows the reference run that ships with the package (rem_core.experiment.reference).
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from pages._pipeline import app_config, experiment_job, start_experiment
from pages._shared import count, require_data, run_in_app
from rem_core.config import EXPERIMENT_ROW_NAMES, RemConfig
from rem_core.dataset import Dataset
from rem_core.experiment import (
    EXPERIMENT_ROWS,
    ExperimentIntervals,
    ExperimentPlan,
    ExperimentResult,
    Reference,
    experiment_intervals,
    load_reference,
    paper_claims,
    plan_experiment,
    read_experiment,
    reference_root,
    reference_status,
    with_intervals,
)
from rem_core.viz import experiment_ap_figure, mean_recall_curve, recall_figure

METRICS = {"ap_large": "Large", "ap_regular": "Regular", "ap_all": "All"}
DEFAULT_CURVES = ["partial", "full", "random", "md-rem++"]
VERDICT_ICONS = {
    "holds": ":material/check_circle:",
    "does not hold": ":material/cancel:",
    "not settled": ":material/help:",
    "not enough runs": ":material/hourglass_empty:",
}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _stamp(result: ExperimentResult) -> tuple:
    """What the intervals depend on: every run's files and when they were written."""
    paths = [
        result.path / "runs" / f"{row}-seed{seed}{ext}"
        for row, seed in zip(result.runs["row"], result.runs["seed"], strict=True)
        for ext in (".json", ".npz")
    ]
    return tuple((p.name, p.stat().st_mtime_ns if p.is_file() else 0) for p in paths)


@st.cache_data(show_spinner="Bootstrapping 95% intervals...", max_entries=8)
def _intervals(folder: str, stamp: tuple, _result: ExperimentResult) -> ExperimentIntervals:
    return experiment_intervals(_result)


@st.cache_data(show_spinner=False, max_entries=8)
def _reference(
    folder: str,
    stamp: int,
    key: str,
    world: str,
    _config: RemConfig,
    _dataset: Dataset,
    _plan: ExperimentPlan,
) -> tuple[Reference | None, str]:
    """The shipped reference for these settings (``rem_core.experiment.load_reference``), read
    once per folder, version of it, experiment key and world."""
    return load_reference(_config, _dataset, folder, plan=_plan)


def _span(low: pd.Series, high: pd.Series, fmt: str) -> pd.Series:
    """``low to high`` as text, empty where there is no interval."""
    text = low.map(fmt.format) + " to " + high.map(fmt.format)
    return text.where(low.notna() & high.notna(), "")


run_in_app()
st.title("Experiments")
st.caption(
    "The paper's active-learning experiment. Each row mines the unlabelled pool with a "
    "method under a budget, has the mined tracks labelled, fills in the rest of the pool "
    "with the main model's detections (SL) or the auto-labeler (AL, the ++ rows), retrains "
    "the detector from scratch with the same number of steps, and measures AP at 3D IoU 0.5 "
    "on the validation split."
)

# --- config ----------------------------------------------------------------------------------
data = require_data()
base = app_config(data)
c1, c2, c3 = st.columns([4, 1, 1])
rows = c1.multiselect(
    "Rows",
    list(EXPERIMENT_ROW_NAMES),
    default=list(EXPERIMENT_ROW_NAMES),
    format_func=lambda r: EXPERIMENT_ROWS[r].label,
    key="exp_rows",
)
seeds = c2.number_input("Seeds", 1, 10, base.experiment.seeds, key="exp_seeds")
budget = c3.selectbox(
    "Budget",
    ["3%", "6%", "9%"],
    key="exp_budget",
    help="Of the pool's tracks, for every mined row but the 6% and 9% ones.",
)
config = dataclasses.replace(
    base,
    experiment=dataclasses.replace(base.experiment, rows=tuple(rows), seeds=int(seeds)),
    mining=dataclasses.replace(base.mining, budget=budget),
)
if not rows:
    st.info("Pick at least one row.", icon=":material/info:")
    st.stop()

# --- the shipped reference, or the user's runs ------------------------------------------------
# The measured tables ship with the package (rem_core/reference_results): the page opens on
# them until the user's own runs for these settings are as many.
folder = reference_root()
provenance = folder / "provenance.json"
stamp = provenance.stat().st_mtime_ns if provenance.is_file() else 0
plan = plan_experiment(config, data.dataset)
shipped, why = _reference(
    str(folder), stamp, plan.key, str(data.dataset.root), config, data.dataset, plan
)
reference = shipped.for_rows(rows) if shipped is not None else None
if shipped is not None and reference is None:
    why = "The shipped reference has none of these rows."
job = experiment_job(data, config)
result = read_experiment(config, data.dataset, plan=plan)
done = 0 if result is None else len(result.runs)
wanted = len(rows) * int(seeds)
show_reference = reference is not None and result is None
if reference is not None and result is not None:
    # The reference until the user's runs are as many, unless the user picked a view.
    picked = st.session_state.get("exp_reference_picked")
    if not picked or "exp_show_reference" not in st.session_state:
        st.session_state["exp_show_reference"] = done < len(reference.runs)
    show_reference = st.toggle(
        "Show the shipped reference",
        key="exp_show_reference",
        on_change=lambda: st.session_state.update(exp_reference_picked=True),
        help=f"On: the reference's {count(len(reference.runs), 'run')} of these rows; off: "
        f"your {count(done, 'run')} for these settings.",
    )
status = reference_status(shipped) if shipped is not None else None
if show_reference:
    about, run_box = st.columns([3, 2])
    about.info(reference.label, icon=":material/verified:")
    # How current it is: its code against this code, its machine against this one.
    if status.current and status.same_machine:
        about.caption(":material/history: " + " ".join(status.sentences()))
    else:
        about.warning("\n\n".join(status.sentences()), icon=":material/history:")
    run_box.subheader("Run it yourself")
else:
    run_box = st.container()
    if why:
        st.caption(f":material/info: {why}")
    elif status is not None and result is not None:
        st.caption(
            ":material/info: Your runs are shown on their own, never paired with the shipped "
            "reference's in one comparison. " + " ".join(status.sentences()[1:])
        )

with run_box:
    if job is not None and job.running:

        @st.fragment(run_every=5.0)
        def progress_view() -> None:
            job = experiment_job(data, config)  # read afresh: the job runs in its own process
            if job is None or not job.running:
                st.rerun(scope="app")
            minutes, seconds = divmod(int(job.elapsed), 60)
            st.markdown(
                f":material/hourglass_top: Running the {job.label} in a process of its own, "
                f"{minutes} min {seconds:02d} s so far; the table fills in as runs finish."
            )
            stages = job.stages
            for stage in [s for s in stages if s == "experiment runs"] + [
                s for s in stages if s != "experiment runs"
            ][-1:]:
                d, t = stages[stage].done, stages[stage].total
                st.progress(min(d / t if t else 1.0, 1.0), text=f"{stage}: {d} / {t}")

        progress_view()
    else:
        if job is not None and job.state in ("failed", "stopped"):
            st.error(
                f"The experiment {job.state}: {job.error} (log: `{job.log}`)",
                icon=":material/error:",
            )
        left = wanted - done
        if left:
            each = (
                f"about {_duration(result.runs['seconds'].mean())} each, as the cached ones took"
                if done
                else "about 3 min each on the demo world on 2 cores"
            )
            pipeline = (
                f"its own detector recipe ({plan.config.detector.epochs} epochs)"
                if plan.own_recipe
                else "the app's pipeline"
            )
            st.markdown(
                f"{count(done, 'run')} of {wanted} are cached for these rows and seeds. The "
                f"{count(left, 'run')} left take {each}. The experiment mines with {pipeline}; "
                "its ensemble, detections and density model are computed first if they are "
                "missing (about 10 min on the demo world)."
            )
        if left and st.button(f"Run {count(left, 'missing run')}", key="exp_run", type="primary"):
            start_experiment(data, config)
            st.rerun()

if result is None and not show_reference:
    st.info(
        "No run is cached yet for these settings. Start the experiment above, or from a "
        "terminal: `rem experiment --preset demo` (same cache).",
        icon=":material/info:",
    )
    st.stop()

# --- results ---------------------------------------------------------------------------------
if show_reference:
    intervals, table = reference.intervals, reference.table
    runs, curves_by_row = reference.runs, reference.curves
else:
    intervals = _intervals(str(result.path), _stamp(result), result)
    table = with_intervals(result.table, intervals)
    runs, curves_by_row = result.runs, result.curves
metric = st.radio("AP", list(METRICS), format_func=METRICS.get, horizontal=True, key="exp_metric")
st.plotly_chart(experiment_ap_figure(table, metric), width="stretch", theme=None,
                key="exp_ap_figure")  # fmt: skip
st.caption(
    "Whiskers: 95% intervals of the mean over seeds, from a bootstrap that draws the seeds "
    "and the validation segments again (docs/experiment.md, Intervals)."
    + (
        " Rows whose runs were cached before per-segment results were kept are resampled "
        "over seeds only (their Segments column is 0)."
        if (table["interval_segments"] == 0).any()
        else ""
    )
)
if table["gap_closed"].notna().any():
    best = table.loc[table["group"].isin(["ours", "budget"])]
    if not best.empty:
        top = best.loc[best["gap_closed"].idxmax()]
        st.caption(
            f"{top['label']} closes {top['gap_closed']:.0%} of the Large-AP gap between "
            "partial- and fully-supervised (the paper's MD-REM++ at 3%: 86%)."
        )
shown = table.assign(
    ap_large_ci=_span(table["ap_large_low"], table["ap_large_high"], "{:.3f}"),
    gap_closed_ci=_span(table["gap_closed_low"], table["gap_closed_high"], "{:.0%}"),
)[
    ["label", "human_labels", "seeds", "ap_all", "ap_regular", "ap_large", "ap_large_std",
     "ap_large_ci", "paper_ap_large", "gap_closed", "gap_closed_ci", "human_tracks",
     "pseudo_boxes", "interval_segments"]
]  # fmt: skip
number = st.column_config.NumberColumn
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    key="exp_table",
    column_config={
        "label": "Row",
        "human_labels": st.column_config.TextColumn(
            "Human labels", help="Share of the training pool labelled by people: source; mined"
        ),
        "ap_all": number("AP All", format="%.3f"),
        "ap_regular": number("AP Regular", format="%.3f"),
        "ap_large": number("AP Large", format="%.3f"),
        "ap_large_std": number("± Large", format="%.3f", help="Standard deviation over seeds"),
        "ap_large_ci": st.column_config.TextColumn(
            "Large 95%", help="95% interval of the Large AP's mean over seeds (bootstrap)"
        ),
        "paper_ap_large": number(
            "Paper Large", format="%.3f", help="The paper's Large AP, where the issue quotes it"
        ),
        "gap_closed": number(
            "Gap closed",
            format="percent",
            help="Share of the Large-AP gap between partial- and fully-supervised closed, "
            "on the seeds the row shares with both",
        ),
        "gap_closed_ci": st.column_config.TextColumn(
            "Gap closed 95%", help="95% interval of the share of the gap closed (bootstrap)"
        ),
        "human_tracks": number("Mined tracks"),
        "pseudo_boxes": number("Pseudo-labels", help="Self- or auto-labels trained on"),
        "interval_segments": number(
            "Segments",
            help="Validation segments the bootstrap draws again; 0: over seeds only (runs "
            "cached before their per-segment results were kept)",
        ),
    },
)
d1, d2 = st.columns(2)
d1.download_button("Download CSV", table.to_csv(index=False), "experiment.csv", "text/csv",
                   key="exp_csv")  # fmt: skip
d2.download_button("Download JSON", table.to_json(orient="records", indent=1),
                   "experiment.json", "application/json", key="exp_json")  # fmt: skip

st.subheader("The paper's claims, with 95% confidence")
for claim in paper_claims(intervals):
    st.markdown(f"{VERDICT_ICONS[claim.verdict]} {claim.sentence}")
st.caption(
    "A claim holds when the 95% interval of the paired difference (row minus other, seed "
    "by seed) lies on its side of 0, or of 70% for the gap closed; when the interval spans "
    "both sides the cached runs do not settle it. More seeds narrow the intervals."
)

st.subheader(f"Paired differences in {METRICS[metric]} AP")
labels = {name: row.label for name, row in EXPERIMENT_ROWS.items()}
diffs = intervals.comparisons[intervals.comparisons["metric"] == metric]
st.dataframe(
    diffs.assign(row=diffs["row"].map(labels), other=diffs["other"].map(labels))[
        ["row", "other", "diff", "low", "high", "verdict", "seeds", "segments"]
    ],
    hide_index=True,
    width="stretch",
    key="exp_diffs",
    column_config={
        "row": "Row",
        "other": "minus",
        "diff": number("Difference", format="%+.3f", help="Mean over the shared seeds"),
        "low": number("95% low", format="%+.3f"),
        "high": number("95% high", format="%+.3f"),
        "verdict": st.column_config.TextColumn(
            "With 95% confidence", help="above: the interval lies above 0; below: under 0"
        ),
        "seeds": number("Shared seeds"),
        "segments": number("Segments", help="0: resampled over seeds only"),
    },
)
st.download_button("Download comparisons CSV", intervals.comparisons.to_csv(index=False),
                   "comparisons.csv", "text/csv", key="exp_comparisons_csv")  # fmt: skip

st.subheader("Recall by rareness of the retrained models")
have = [r for r in rows if r in curves_by_row]
picked = st.multiselect(
    "Models",
    have,
    default=[r for r in DEFAULT_CURVES if r in have] or have[:3],
    format_func=lambda r: EXPERIMENT_ROWS[r].label,
    key="exp_curves",
)
if picked:
    curves = {EXPERIMENT_ROWS[r].label: mean_recall_curve(curves_by_row[r]) for r in picked}
    st.plotly_chart(recall_figure(curves), width="stretch", theme=None, key="exp_recall")
    st.caption(
        "Validation vehicles binned by the rareness the pipeline's density model gives them; "
        "counts pooled over seeds."
    )
with st.expander("Every run"):
    st.dataframe(
        pd.DataFrame(runs).drop(columns=["train_steps"], errors="ignore"),
        hide_index=True,
        width="stretch",
    )
