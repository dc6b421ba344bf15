"""The Experiments page under AppTest, on the tiny world with its pipeline cached."""

from __future__ import annotations

import time
from pathlib import Path

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
        "Download CSV", "Download JSON"
    }  # fmt: skip
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
