"""The Experiments page under AppTest, on the tiny world with its pipeline cached."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_experiments_page_runs_in_the_background_and_fills_in(
    app_env: Path, app_pipeline: Path
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/experiments.py").run()
    assert not at.exception
    assert at.title[0].value == "Experiments"
    at.multiselect(key="exp_rows").set_value(["partial", "random"]).run()
    at.number_input(key="exp_seeds").set_value(1).run()
    assert any("No run is cached yet" in i.value for i in at.info)
    at.button(key="exp_run").click().run()
    deadline = time.monotonic() + 120
    running = lambda: any("Running the experiment" in m.value for m in at.markdown)  # noqa: E731
    assert running()  # progress shows while the runs go on
    while running() or not at.get("plotly_chart"):
        assert time.monotonic() < deadline, "the experiment did not finish in 2 minutes"
        assert not at.exception and not at.error, at.error
        time.sleep(1)
        at.run()
    table = at.dataframe[0].value
    assert table["label"].tolist() == ["Partial-supervised", "Random"]
    assert table["human_labels"].tolist() == ["25%", "25%;3%"]
    assert {b.proto.label for b in at.get("download_button")} == {
        "Download CSV", "Download JSON", "Download comparisons CSV"
    }  # fmt: skip
    # one seed of each row: the paper's claims cannot be checked yet
    claims = [m.value for m in at.markdown if "95% confidence" in m.value or "runs" in m.value]
    assert any("MD-REM++ beats Random on Large AP: not enough runs" in c for c in claims)
    assert len(at.get("plotly_chart")) == 2  # AP bars and recall curves
    # another metric redraws; a second seed is one run missing, offered behind a button
    at.radio(key="exp_metric").set_value("ap_regular").run()
    assert not at.exception
    at.number_input(key="exp_seeds").set_value(2).run()
    assert at.button(key="exp_run").label == "Run 2 missing runs"
    assert any("as the cached ones took" in m.value for m in at.markdown)  # measured time
    # the retrained models' curves feed the rareness-vs-recall page
    at.switch_page("pages/rareness_recall.py").run()
    at.selectbox(key="recall_split").set_value("validation").run()
    assert not at.exception
    assert any(h.value == "After mining and retraining" for h in at.subheader)
    assert at.multiselect(key="recall_retrained").value == ["partial"]


def _fake_run(rng: np.random.Generator, large_recall: float):
    """A run on 6 segments of 12 Regular and 4 Large boxes each: its per-segment results
    and its AP (``rem_core.experiment.segments``)."""
    from rem_core.evaluation import REPORTED_SUBSETS
    from rem_core.experiment import SegmentResults

    gt_segment = np.repeat(np.arange(6), 16)
    gt_large = np.tile(np.r_[np.zeros(12, bool), np.ones(4, bool)], 6)
    found = rng.random(96) < np.where(gt_large, large_recall, 0.8)
    segment = np.r_[gt_segment[found], np.repeat(np.arange(6), 5)]
    tp = np.r_[np.ones(found.sum(), bool), np.zeros(30, bool)]
    large = np.r_[gt_large[found], rng.random(30) < 0.2]
    frames = SegmentResults(
        segments=np.array([f"val-{i}" for i in range(6)]),
        subsets=REPORTED_SUBSETS,
        pred_segment=segment,
        pred_score=np.where(tp, rng.uniform(0.5, 1, len(tp)), rng.uniform(0, 0.7, len(tp))),
        pred_tp=tp,
        pred_in=np.stack([np.ones(len(tp), bool), ~large, large], axis=1),
        gt_count=np.stack([np.full(6, 16), np.full(6, 12), np.full(6, 4)], axis=1),
    )
    return frames, frames.ap()


def test_experiments_page_says_whether_the_paper_claims_hold(
    app_env: Path, app_pipeline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rem_core import experiment

    keys: list[str] = []
    real_plan = experiment.plan_experiment
    monkeypatch.setattr(
        experiment, "plan_experiment", lambda *a: keys.append(real_plan(*a).key) or real_plan(*a)
    )
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/experiments.py").run()
    # a budget of its own: a cache folder no other test writes to
    at.selectbox(key="exp_budget").set_value("9%").run()
    rows = ["partial", "full", "random", "ensemble", "md-rem++"]
    at.multiselect(key="exp_rows").set_value(rows).run()
    at.number_input(key="exp_seeds").set_value(3).run()
    assert any("No run is cached yet" in i.value for i in at.info)

    # cached runs, as the experiment leaves them: MD-REM++ and Full find most Large boxes
    _cache_runs(app_env / "experiment" / keys[-1] / "runs", rows, 3, np.random.default_rng(0))
    at.run()
    assert not at.exception and not at.error, at.error
    text = [m.value for m in at.markdown]
    assert any("MD-REM++ beats Random on Large AP: holds with 95% confidence" in t for t in text)
    assert any("MD-REM++ beats Ensemble on Large AP: holds with 95% confidence" in t for t in text)
    for claim in ("closes at least 70% of the Large-AP gap", "Regular AP is not below"):
        assert any(claim in t for t in text), claim
    assert not any("3% to 6% to 9%" in t for t in text)  # those rows were not asked for
    # AP with its interval as whiskers, and the paired differences with theirs
    assert '"arrayminus"' in at.get("plotly_chart")[0].proto.spec
    table = at.dataframe[0].value
    assert table["ap_large_ci"].str.contains(" to ").all()
    assert (table["interval_segments"] == 6).all()
    diffs = at.dataframe[1].value
    md = diffs[(diffs["row"] == "MD-REM++") & (diffs["other"] == "Random")].iloc[0]
    assert md["low"] > 0 and md["verdict"] == "above"


def _cache_runs(runs: Path, rows: list[str], seeds: int, rng: np.random.Generator) -> None:
    """Cached runs of ``rows`` at ``seeds`` seeds, as the experiment leaves them."""
    from rem_core.experiment import write_segment_results

    runs.mkdir(parents=True, exist_ok=True)
    curve = {"lower": [0.0, 50.0], "upper": [50.0, 100.0], "n_gt": [4, 4],
             "n_detected": [3, 1], "recall": [0.75, 0.25]}  # fmt: skip
    for row in rows:
        for seed in range(seeds):
            frames, ap = _fake_run(rng, 0.95 if row in ("full", "md-rem++") else 0.3)
            write_segment_results(runs / f"{row}-seed{seed}.npz", frames)
            record = {
                "row": row, "seed": seed, "ap_all": ap["all"], "ap_regular": ap["regular"],
                "ap_large": ap["large"], "human_tracks": 3, "human_boxes": 30,
                "pseudo_boxes": 100, "train_steps": 10, "seconds": 2.0, "spearman": 0.0,
                "curve": curve,
            }  # fmt: skip
            (runs / f"{row}-seed{seed}.json").write_text(json.dumps(record))


def test_experiments_page_opens_on_the_shipped_reference_until_own_runs_replace_it(
    app_env: Path, app_pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rem_core import experiment
    from rem_core.experiment import experiment_intervals, ship_reference

    monkeypatch.setenv("REM_REFERENCE_DIR", str(tmp_path / "reference"))
    calls: list[tuple] = []
    real_plan = experiment.plan_experiment
    monkeypatch.setattr(experiment, "plan_experiment", lambda *a: calls.append(a) or real_plan(*a))

    def page() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        at.switch_page("pages/experiments.py").run()
        # a budget of its own: a cache folder no other test writes to
        at.selectbox(key="exp_budget").set_value("6%").run()
        at.multiselect(key="exp_rows").set_value(["partial", "random"]).run()
        at.number_input(key="exp_seeds").set_value(2).run()
        assert not at.exception and not at.error, at.error
        return at

    def reference_shown(at: AppTest) -> bool:
        return any(i.value.startswith("Reference run: computed on") for i in at.info)

    at = page()
    assert any("No shipped reference for these settings" in c.value for c in at.caption)
    assert any("No run is cached yet" in i.value for i in at.info)

    # the maintainer ships the reference: 3 seeds of Partial and Random
    config, dataset = calls[-1]
    cache = tmp_path / "cache"
    _cache_runs(cache / "experiment" / real_plan(config, dataset).key / "runs",
                ["partial", "random"], 3, np.random.default_rng(1))  # fmt: skip
    shipped_config = dataclasses.replace(
        config, experiment=dataclasses.replace(config.experiment, seeds=3)
    )
    result = experiment.read_experiment(shipped_config, dataset, root=cache)
    ship_reference(result, experiment_intervals(result, resamples=200), tmp_path / "reference",
                   "rem experiment --preset tiny --budget 6%", config=config,
                   dataset=dataset)  # fmt: skip
    at = page()
    assert reference_shown(at)
    label = next(i.value for i in at.info if i.value.startswith("Reference run"))
    assert "commit" in label and "3 seeds each (seeds 0 to 2; 6 runs" in label
    assert "`rem experiment --preset tiny --budget 6%`" in label
    # how current it is: shipped by this very code here, and `rem verify` not run yet
    said = " ".join(c.value for c in at.caption)
    assert "by this very code (every stage's fingerprint)" in said
    assert "`rem verify` has not run here (`make verify`)." in said
    assert any(h.value == "Run it yourself" for h in at.subheader)
    assert at.button(key="exp_run").label == "Run 4 missing runs"
    assert not any("No run is cached yet" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert table["label"].tolist() == ["Partial-supervised", "Random"]
    assert table["seeds"].tolist() == [3, 3]
    assert any("MD-REM++ beats Random" in m.value for m in at.markdown)  # its claims
    assert len(at.get("plotly_chart")) == 2
    assert not at.get("toggle")  # nothing of the user's own to switch to

    # one run of the user's own: fewer than the reference's, which stays in view
    runs = app_env / "experiment" / real_plan(config, dataset).key / "runs"
    _cache_runs(runs, ["partial"], 1, np.random.default_rng(2))
    at.run()
    assert at.toggle(key="exp_show_reference").value and reference_shown(at)
    at.toggle(key="exp_show_reference").set_value(False).run()
    assert not reference_shown(at)
    assert at.dataframe[0].value["seeds"].tolist() == [1]

    # as many runs as the reference: the user's table replaces it, the reference a toggle away
    _cache_runs(runs, ["partial", "random"], 3, np.random.default_rng(3))
    at = page()
    at.number_input(key="exp_seeds").set_value(3).run()
    assert not at.toggle(key="exp_show_reference").value and not reference_shown(at)
    own = at.dataframe[0].value
    assert own["seeds"].tolist() == [3, 3]
    at.toggle(key="exp_show_reference").set_value(True).run()
    assert reference_shown(at)
    assert not np.allclose(at.dataframe[0].value["ap_large"], own["ap_large"])

    # computed by other code: shown all the same, with a warning naming what changed since
    provenance = tmp_path / "reference" / "provenance.json"
    recorded = json.loads(provenance.read_text())
    recorded["code"] = {**recorded["code"], "detector": "0" * 16, "rareness": "1" * 16}
    provenance.write_text(json.dumps(recorded))
    at.run()
    warned = " ".join(w.value for w in at.warning)
    assert reference_shown(at) and "the code of detector and rareness has changed since" in warned
    assert "then `make reference`" in warned

    # another budget: another experiment key, so nothing from the reference
    at.selectbox(key="exp_budget").set_value("9%").run()
    assert not reference_shown(at)
    assert any(
        "computed for other settings (mining.budget '6%' there, '9%' here)" in c.value
        for c in at.caption
    )
