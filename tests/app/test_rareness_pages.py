"""The analysis pages under AppTest, on the tiny world with its pipeline cached."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["home_pipeline_started"] = True
    at.run()
    return at.switch_page(f"pages/{name}.py").run()


def specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.fixture
def ready(app_env: Path, app_pipeline: Path) -> Path:
    return app_pipeline


def test_rareness_recall_draws_bins_and_reacts_to_the_bin_width(ready: Path) -> None:
    at = open_page("rareness_recall")
    assert not at.exception
    assert at.title[0].value == "Rareness vs recall"
    # the first figure is the pipeline's; a second one (retrained models) shows once the
    # Experiments page has cached runs, as test_experiments_page may have done before
    figure = specs(at)[0]
    assert figure["data"][0]["name"].startswith("FFJORD")
    bins = len(at.dataframe[0].value)
    assert bins == 50
    at.select_slider(key="recall_bin_width").set_value(10).run()
    assert not at.exception and len(at.dataframe[0].value) == 10
    at.selectbox(key="recall_split").set_value("source").run()
    assert not at.exception


def test_log_prob_histograms_switch_groups(ready: Path) -> None:
    at = open_page("log_prob")
    assert not at.exception
    names = [t["name"].split(" (")[0] for t in specs(at)[0]["data"]]
    assert names[0] == "validation"
    assert {m.label for m in at.metric} >= {"AUROC, Large vehicles", "AUROC, Pedestrians"}
    at.radio(key="logp_by").set_value("size").run()
    assert not at.exception
    names = [t["name"].split(" (")[0] for t in specs(at)[0]["data"]]
    assert names[0] == "regular"


def test_rare_vs_hard_scatter_follows_the_axis(ready: Path) -> None:
    at = open_page("rare_vs_hard")
    assert not at.exception
    (figure,) = specs(at)
    assert figure["layout"]["xaxis"]["type"] == "log"
    at.radio(key="hard_x").set_value("distance").run()
    assert not at.exception
    (figure,) = specs(at)
    assert figure["layout"]["xaxis"]["type"] == "linear"
    assert int(at.metric[0].value.replace(",", "")) > 0


def test_rarest_tracks_table_viewer_and_link(ready: Path) -> None:
    at = open_page("rarest_tracks")
    assert not at.exception
    table = at.dataframe[0].value
    assert table["mean_log_prob"].is_monotonic_increasing  # rarest (lowest log p) first
    assert table["rank"].tolist()[:3] == [1, 2, 3]
    charts = specs(at)
    assert charts[0]["data"][0]["type"] == "scatter3d" and charts[1]["data"][0]["type"] == "heatmap"
    assert any(t["name"].startswith("track ") for t in charts[0]["data"])
    # log p along the track, then the gallery: one figure of 8 panels (points and outline
    # each), not a chart per track
    assert len(charts) == 4
    assert charts[2]["data"][0]["name"] == "log p"
    gallery = charts[3]
    assert len(gallery["data"]) == 2 * min(8, len(table))
    assert all(t["x"]["dtype"] == "f4" for t in gallery["data"][::2])
    first = charts[0]
    frames = [int(f) for f in at.select_slider(key="tracks_frame").options]
    current = int(at.select_slider(key="tracks_frame").value)
    other = next(f for f in frames if f != current)
    at.select_slider(key="tracks_frame").set_value(other).run()
    assert not at.exception and specs(at)[0] != first
    at.radio(key="tracks_source").set_value("detected").run()
    assert not at.exception
    assert not at.exception
    # The tiny world's detector scores too low for the tracker: it says so.
    assert "tracker formed no tracks" in at.info[0].value
    at.radio(key="tracks_source").set_value("gt").run()
    at.number_input(key="tracks_min_boxes").set_value(200).run()
    assert not at.exception and "No track matches" in at.info[0].value
    at.number_input(key="tracks_min_boxes").set_value(1).run()
    at.button(key="tracks_open_scene").click().run()
    assert not at.exception
    assert at.title[0].value == "Scene explorer"


@pytest.mark.parametrize("page", ["rareness_recall", "log_prob", "rare_vs_hard", "rarest_tracks"])
def test_pages_without_the_pipeline_say_so(
    seed_tiny_world, page: str, app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path))
    seed_tiny_world(tmp_path)
    at = open_page(page)
    assert not at.exception
    assert "Run the pipeline" in at.info[0].value or "run the pipeline" in at.info[0].value


def test_log_prob_rare_beyond_size_table(ready: Path, app_world) -> None:
    from rem_core.analysis import NOISE_ALL
    from rem_core.config import VEHICLE_SUBTYPES

    at = open_page("log_prob")
    assert not at.exception
    assert "Rare beyond size" in [h.value for h in at.subheader]
    (table,) = [d.value for d in at.dataframe if "d_rem" in d.value.columns]
    assert list(table.columns) == ["group", "family", "n", "d_rem", "size_only", "regular_size"]
    # the groups are the world's own: rare subtypes and kinds of label noise, with their counts
    boxes = app_world.boxes
    split = boxes["segment_id"].map(app_world.segments.set_index("segment_id")["split"])
    measured = boxes[(boxes["class"] == "vehicle") & split.isin(["validation", "unlabelled"])]
    clean, noisy = measured[~measured["label_noise"]], measured[measured["label_noise"]]
    family = clean["subtype"].map(VEHICLE_SUBTYPES)
    expected = clean[family.isin(["large", "irregular"])]["subtype"].value_counts().to_dict()
    expected |= noisy["noise_kind"].value_counts().to_dict()
    if len(noisy):
        expected[NOISE_ALL] = len(noisy)
    shown = dict(zip(table["group"], table["n"], strict=True))
    assert {g: n for g, n in shown.items() if n} == expected
    # AUROCs only for groups of 20 boxes or more, within [0, 1]
    assert table.loc[table["n"] < 20, ["d_rem", "size_only"]].isna().all().all()
    big = table[table["n"] >= 20]
    assert big[["d_rem", "size_only"]].apply(lambda c: c.between(0, 1)).all().all()
    text = " ".join(m.value for m in at.markdown)
    assert "size rule" in text or "enough boxes" in text
    if len(noisy):
        assert f"Of the {len(noisy):,} label-noise vehicle boxes" in text


def test_rarest_tracks_label_noise_line_and_group_filter(ready: Path, app_world) -> None:
    at = open_page("rarest_tracks")
    assert not at.exception
    assert at.selectbox(key="tracks_split").value == "unlabelled"
    boxes = app_world.boxes
    pool = boxes["segment_id"].isin(
        app_world.segments.loc[app_world.segments["split"] == "unlabelled", "segment_id"]
    )
    noisy = int((pool & (boxes["class"] == "vehicle") & boxes["label_noise"]).sum())
    line = [c.value for c in at.caption if c.value.startswith("Label noise among the rarest 5%")]
    assert line == [] if noisy == 0 else (len(line) == 1 and f"its {noisy:,} label" in line[0])
    assert "family" in at.dataframe[0].value.columns
    at.selectbox(key="tracks_split").set_value("all splits").run()
    at.number_input(key="tracks_min_boxes").set_value(1).run()
    groups = at.multiselect(key="tracks_groups")
    picked = groups.options[0]
    groups.set_value([picked]).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) > 0
    assert ((table["family"] == picked) | table["noise"].str.contains(picked)).all()


def test_rarest_tracks_rareness_along_the_track_and_boxes_to_recheck(ready: Path) -> None:
    at = open_page("rarest_tracks")
    at.selectbox(key="tracks_split").set_value("all splits").run()
    assert not at.exception
    tracks, ranked = at.dataframe[0].value, at.dataframe[1].value
    assert "to_recheck" in tracks.columns and len(ranked) > 0
    assert ranked["box_in_track"].is_monotonic_decreasing
    along = specs(at)[2]["data"][0]["x"]
    frames = (
        np.frombuffer(base64.b64decode(along["bdata"]), along["dtype"])
        if isinstance(along, dict)
        else np.asarray(along)
    )
    # one point per box of the shown track, frame by frame
    assert frames.tolist() == [int(f) for f in at.select_slider(key="tracks_frame").options]
    # a box picked in the ranking opens its track at its frame (what the row's selection does)
    box = ranked.iloc[min(3, len(ranked) - 1)]
    at.session_state["_tracks_open"] = (
        box["segment_id"],
        str(box["track_id"]),
        int(box["frame_index"]),
    )
    at.run()
    assert not at.exception
    assert at.subheader[0].value.startswith(f"Track {box['track_id']} of {box['segment_id']}")
    assert int(at.select_slider(key="tracks_frame").value) == int(box["frame_index"])
    caption = [c.value for c in at.caption if c.value.startswith("Log p of the track's boxes")]
    assert len(caption) == 1
    if box["box_in_track"] >= 3.5:
        assert "fall" in caption[0] and "×" in caption[0]


def test_rarest_tracks_compares_two_runs(ready: Path) -> None:
    at = open_page("rarest_tracks")
    at.selectbox(key="tracks_split").set_value("all splits").run()
    assert not at.exception
    # the pipeline fitted the fast first density too: FFJORD against it
    assert at.selectbox(key="tracks_against").value == "gaussian"
    labels = [m.label for m in at.metric]
    assert labels[0] == "Spearman of track rareness" and labels[2] == "tracks ranked by both"
    spearman = float(at.metric[0].value)
    assert -1.0 <= spearman <= 1.0
    moved = at.dataframe[2].value
    assert (moved["moved"] != 0).all() and (moved["in_top_a"] | moved["in_top_b"]).all()
    if len(moved):  # a moved track opens above, at its best frame
        row = moved.iloc[0]
        at.session_state["_tracks_open"] = (row["segment_id"], str(row["track_id"]), -1)
        at.run()
        assert not at.exception
        assert at.subheader[0].value.startswith(f"Track {row['track_id']} of {row['segment_id']}")
