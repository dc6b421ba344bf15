"""What the app's pages share: the data set picked in the sidebar, cached loaders, the world build.

Not a page: ``app.py`` registers pages explicitly with ``st.navigation``. The sidebar widgets
(keys ``app_source``, ``app_preset``, ``app_folder``) are the single record of the choice; a
page reads it with :func:`selected_data`, so a page run alone (as in tests) sees the same
defaults as the full app.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import streamlit as st

from rem_core.config import PRESETS, RemConfig
from rem_core.dataset import Dataset
from rem_core.pipeline import ensure_world, world_path
from rem_core.schema import DataError, SchemaError
from rem_core.viz import DatasetSummary, summarize_dataset

log = logging.getLogger(__name__)

SOURCES = {"world": "Built-in world", "folder": "Data set folder"}
MANIFEST = "dataset.json"


def run_in_app() -> None:
    """Make sure this page runs inside ``app.py`` (its page config, sidebar and navigation).

    Call first thing in every page. Streamlit runs the first script of a server process in
    its legacy multipage mode when a ``pages/`` folder exists, and only ``st.navigation``
    in ``app.py`` turns that mode off; a first request for a page's URL would run the page
    alone, without app.py, until the app is rerun. This turns the mode off and reruns.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def count(n: int, noun: str) -> str:
    """``n`` with ``noun`` in the singular or plural: ``count(1, "frame") == "1 frame"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def default_preset() -> str:
    """The world preset the app opens on: ``$REM_PRESET`` if it names one, else ``demo``."""
    name = os.environ.get("REM_PRESET", "demo").strip()
    return name if name in PRESETS else "demo"


def init_state() -> None:
    """Default values of the sidebar's widgets, set once per session."""
    st.session_state.setdefault("app_source", "world")
    st.session_state.setdefault("app_preset", default_preset())
    st.session_state.setdefault("app_folder", "")


@dataclass(frozen=True)
class DataChoice:
    """The data set picked in the sidebar.

    Attributes:
        source: ``"world"`` (a built-in world preset) or ``"folder"``.
        preset: the world preset, for ``source == "world"``.
        path: the data set folder; ``None`` if no folder was entered.
        label: a short name for headers.
    """

    source: Literal["world", "folder"]
    preset: str | None
    path: Path | None
    label: str

    @property
    def exists(self) -> bool:
        """Whether the folder holds a data set manifest."""
        return self.path is not None and (self.path / MANIFEST).is_file()


def selected_data() -> DataChoice:
    """The current sidebar choice (defaults if the sidebar has not run yet)."""
    init_state()
    if st.session_state["app_source"] == "folder":
        text = str(st.session_state["app_folder"]).strip()
        path = Path(text).expanduser().resolve() if text else None
        return DataChoice("folder", None, path, path.name if path else "no folder")
    preset = st.session_state["app_preset"]
    if preset not in PRESETS:
        preset = default_preset()
    config = RemConfig.preset(preset).world
    return DataChoice("world", preset, world_path(config), f"{preset} world")


@st.cache_resource(show_spinner=False, max_entries=4)
def _open(path: str, stamp: int) -> Dataset:
    # the manifest's mtime is in the key: a rebuilt data set is opened afresh
    return Dataset.open(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _frame_points(path: str, stamp: int, segment_id: str, frame_index: int) -> np.ndarray:
    return _open(path, stamp).points(segment_id, frame_index)


@st.cache_data(show_spinner=False, max_entries=8)
def _summary(path: str, stamp: int) -> DatasetSummary:
    ds = _open(path, stamp)
    return summarize_dataset(ds.segments, ds.frames, ds.tracks)


@dataclass(frozen=True)
class OpenData:
    """An opened data set and cached reads of it."""

    dataset: Dataset
    label: str
    key: tuple[str, int]

    def points(self, segment_id: str, frame_index: int) -> np.ndarray:
        """``(N, 4)`` float32 ``x, y, z, intensity`` of one frame, vehicle frame (cached)."""
        return _frame_points(*self.key, segment_id, int(frame_index))

    def summary(self) -> DatasetSummary:
        """Counts for the overview (cached)."""
        return _summary(*self.key)


def open_data(choice: DataChoice) -> OpenData | str:
    """The chosen data set, or a message saying why it cannot be opened."""
    if choice.path is None:
        return "Enter the path of a data set folder in the sidebar."
    if not choice.exists:
        if choice.source == "world":
            return (
                f"The {choice.preset} world is not built yet: open **Home** to build it "
                "(it is cached afterwards)."
            )
        return (
            f"`{choice.path}` is not a REM data set (no `{MANIFEST}`). "
            "Write one with `rem world --out DIR` or pick another folder."
        )
    try:
        stamp = (choice.path / MANIFEST).stat().st_mtime_ns
        dataset = _open(str(choice.path), stamp)
        dataset.segments  # noqa: B018 - read the tables now so a broken folder fails here
        dataset.frames  # noqa: B018
    except (DataError, SchemaError, OSError) as exc:
        return f"Cannot read `{choice.path}`: {exc}"
    return OpenData(dataset, choice.label, (str(choice.path), stamp))


def require_data() -> OpenData:
    """The chosen data set; otherwise show why not and stop the page."""
    data = open_data(selected_data())
    if isinstance(data, str):
        st.info(data, icon=":material/info:")
        st.stop()
    return data


@st.cache_resource(show_spinner=False)
def _build_lock() -> threading.Lock:
    # one build at a time in this server: two sessions must not simulate the same world
    return threading.Lock()


def build_world(preset: str) -> bool:
    """Simulate and cache a world preset, showing progress; True when it is ready.

    On success, ``st.session_state["built_message"]`` says so, for the page to show after
    its rerun.
    """
    config = RemConfig.preset(preset).world
    total = config.n_total_segments
    with st.status(f"Building the {preset} world ({total} segments)…", expanded=True) as status:
        bar = st.progress(0.0, text=f"0 / {total} segments")
        lock = _build_lock()
        if not lock.acquire(blocking=False):
            st.write("Another session is building a world; waiting for it to finish…")
            lock.acquire()
        try:
            ensure_world(
                config,
                progress=lambda done, n: bar.progress(done / n, text=f"{done} / {n} segments"),
            )
        except Exception as exc:  # noqa: BLE001 - the UI boundary: report, never a traceback
            log.exception("building the %s world failed", preset)
            status.update(label=f"Building the {preset} world failed", state="error")
            st.error(f"Could not build the {preset} world: {exc}")
            return False
        finally:
            lock.release()
        bar.progress(1.0, text=f"{total} / {total} segments")
        status.update(label=f"The {preset} world is ready", state="complete", expanded=False)
    st.session_state["built_message"] = (
        f"Built the {preset} world ({total} segments); it is cached in `{world_path(config)}`."
    )
    return True
