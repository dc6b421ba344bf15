"""REM Workbench: the Streamlit entry point (`streamlit run app.py`, or `make app`).

Page config, the shared sidebar that picks the data set, and navigation over ``pages/``.
``$REM_PRESET`` sets the default world preset (``demo`` unless set; tests use ``tiny``).
"""

from __future__ import annotations

import streamlit as st

from pages._pipeline import (
    ANALYSIS_PAGES,
    ESTIMATOR_LABELS,
    ESTIMATOR_NAMES,
    FEATURE_LABELS,
    init_pipeline_state,
)
from pages._shared import PRESETS, SOURCES, count, init_state, open_data, selected_data

st.set_page_config(layout="wide", page_title="REM Workbench", page_icon=":material/radar:")
init_state()
init_pipeline_state()
# Only one of the two source widgets is drawn per run; re-setting both keeps the hidden one's
# value, which Streamlit would otherwise drop at the end of the run.
for key in ("app_preset", "app_folder", "app_estimator", "app_features"):
    st.session_state[key] = st.session_state[key]

with st.sidebar:
    st.markdown("### :material/radar: REM Workbench")
    st.radio("Data set", list(SOURCES), format_func=SOURCES.get, key="app_source")
    if st.session_state["app_source"] == "world":
        st.selectbox(
            "World preset",
            PRESETS,
            key="app_preset",
            help="tiny: seconds to build, for tests; demo: the default; full: long experiments.",
        )
    else:
        st.text_input(
            "Folder",
            key="app_folder",
            placeholder="path/to/dataset",
            help="A folder in the REM data format, e.g. written by `rem world --out DIR`.",
        )
    choice = selected_data()
    data = open_data(choice)
    if choice.source == "world" and not choice.exists:
        st.caption(
            f":material/pending: The {choice.preset} world is not built yet; Home builds it."
        )
    elif isinstance(data, str):
        st.caption(f":material/pending: {data}")
    else:
        counts = (
            f"{count(len(data.dataset.segments), 'segment')}, "
            f"{count(len(data.dataset.frames), 'frame')}"
        )
        st.caption(f":material/check_circle: {choice.label}: {counts}")
    st.selectbox(
        "Features",
        list(FEATURE_LABELS),
        format_func=FEATURE_LABELS.get,
        key="app_features",
        help="What REM scores: our detector's ROI features (trained on the source split), "
        "geometric descriptors of the boxes, or the features stored with your detections "
        "(`rem import detections --features`). Automatic picks what the data set supports; "
        "Home says what it picked and why.",
    )
    st.selectbox(
        "Density model",
        ESTIMATOR_NAMES,
        format_func=ESTIMATOR_LABELS.get,
        key="app_estimator",
        help="The model of the detector features whose -log p is D-REM's rareness. FFJORD "
        "is the paper's; the others are baselines (see docs/density.md).",
    )

page = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/scene_explorer.py", title="Scene explorer", icon=":material/view_in_ar:"),
        *[st.Page(path, title=title, icon=icon) for path, title, icon in ANALYSIS_PAGES],
    ]
)
page.run()
