"""Experiments (paper Tables 2 and 3): mine, label, retrain, and compare AP.

Each row mines the unlabelled pool with a method, labels the rest of the pool with self-labels
or the auto-labeler, retrains the detector from scratch and evaluates it on the validation
split. Runs take minutes each on the demo world, so they run in the background,
are cached one by one, and the page fills in as they finish.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from pages._pipeline import app_config, experiment_job, start_experiment
from pages._shared import count, require_data, run_in_app
from rem_core.config import EXPERIMENT_ROW_NAMES
from rem_core.experiment import EXPERIMENT_ROWS, experiment_config, read_experiment
from rem_core.viz import experiment_ap_figure, mean_recall_curve, recall_figure

METRICS = {"ap_large": "Large", "ap_regular": "Regular", "ap_all": "All"}
DEFAULT_CURVES = ["partial", "full", "random", "md-rem++"]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


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

# --- run -------------------------------------------------------------------------------------
job = experiment_job(data, config)
own_recipe = experiment_config(config) != config
result = read_experiment(config, data.dataset)
done = 0 if result is None else len(result.runs)
wanted = len(rows) * int(seeds)
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
            f"The experiment {job.state}: {job.error} (log: `{job.log}`)", icon=":material/error:"
        )
    left = wanted - done
    if left:
        each = (
            f"about {_duration(result.runs['seconds'].mean())} each, as the cached ones took"
            if done
            else "about 3 min each on the demo world on 2 cores"
        )
        pipeline = (
            f"its own detector recipe ({experiment_config(config).detector.epochs} epochs)"
            if own_recipe
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

if result is None:
    st.info(
        "No run is cached yet for these settings. Start the experiment above, or from a "
        "terminal: `rem experiment --preset demo` (same cache).",
        icon=":material/info:",
    )
    st.stop()

# --- results ---------------------------------------------------------------------------------
table = result.table
metric = st.radio("AP", list(METRICS), format_func=METRICS.get, horizontal=True, key="exp_metric")
st.plotly_chart(experiment_ap_figure(table, metric), width="stretch", theme=None,
                key="exp_ap_figure")  # fmt: skip
if table["gap_closed"].notna().any():
    best = table.loc[table["group"].isin(["ours", "budget"])]
    if not best.empty:
        top = best.loc[best["gap_closed"].idxmax()]
        st.caption(
            f"{top['label']} closes {top['gap_closed']:.0%} of the Large-AP gap between "
            "partial- and fully-supervised (the paper's MD-REM++ at 3%: 86%)."
        )
shown = table[
    ["label", "human_labels", "seeds", "ap_all", "ap_regular", "ap_large", "ap_large_std",
     "paper_ap_large", "gap_closed", "human_tracks", "pseudo_boxes"]
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
        "paper_ap_large": number(
            "Paper Large", format="%.3f", help="The paper's Large AP, where the issue quotes it"
        ),
        "gap_closed": number(
            "Gap closed",
            format="percent",
            help="Share of the Large-AP gap between partial- and fully-supervised closed, "
            "on the seeds the row shares with both",
        ),
        "human_tracks": number("Mined tracks"),
        "pseudo_boxes": number("Pseudo-labels", help="Self- or auto-labels trained on"),
    },
)
d1, d2 = st.columns(2)
d1.download_button("Download CSV", table.to_csv(index=False), "experiment.csv", "text/csv",
                   key="exp_csv")  # fmt: skip
d2.download_button("Download JSON", table.to_json(orient="records", indent=1),
                   "experiment.json", "application/json", key="exp_json")  # fmt: skip

st.subheader("Recall by rareness of the retrained models")
have = [r for r in rows if r in result.curves]
picked = st.multiselect(
    "Models",
    have,
    default=[r for r in DEFAULT_CURVES if r in have] or have[:3],
    format_func=lambda r: EXPERIMENT_ROWS[r].label,
    key="exp_curves",
)
if picked:
    curves = {EXPERIMENT_ROWS[r].label: mean_recall_curve(result.curves[r]) for r in picked}
    st.plotly_chart(recall_figure(curves), width="stretch", theme=None, key="exp_recall")
    st.caption(
        "Validation vehicles binned by the rareness the pipeline's density model gives them; "
        "counts pooled over seeds."
    )
with st.expander("Every run"):
    st.dataframe(
        pd.DataFrame(result.runs).drop(columns=["train_steps"], errors="ignore"),
        hide_index=True,
        width="stretch",
    )
