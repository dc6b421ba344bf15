"""Every page under AppTest with random combinations of its widgets: no exception.

Each step changes one to three of the page's own widgets (not the sidebar's data set
choice, and no button: buttons start jobs) to a random allowed value, then reruns the page,
as a user clicking around would. Choices of option widgets are sent as the browser sends
them (the option's label), so pages whose options are formatted are reached too. The default
suite takes a few steps a page; ``-m slow`` takes 200 (issue 18's fuzz test).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
KINDS = ("selectbox", "radio", "multiselect", "select_slider", "slider", "number_input",
         "checkbox", "toggle")  # fmt: skip


def _labelled(widget: Any, labels: list[str]) -> None:
    """Make ``widget`` send ``labels`` (its options' labels) on the next run, as a browser."""
    kind = type(widget)

    def state(self: Any) -> WidgetState:
        ws = WidgetState()
        ws.id = self.id
        if kind.__name__ in ("Selectbox", "Radio"):
            ws.string_value = labels[0]
        else:
            ws.string_array_value.data[:] = labels
        return ws

    widget.__class__ = type(f"Labelled{kind.__name__}", (kind,), {"_widget_state": property(state)})


def _number(rng: random.Random, low: float, high: float, step: float, integer: bool) -> float:
    value = low + rng.randrange(int(round((high - low) / step)) + 1) * step
    return int(round(value)) if integer else float(value)


def _randomize(widget: Any, rng: random.Random) -> str:
    """Set ``widget`` to a random allowed value; returns what was done, for the report."""
    kind = type(widget).__name__
    if kind in ("Selectbox", "Radio") and widget.options:
        label = rng.choice(widget.options)
        _labelled(widget, [label])
        return f"{widget.key}={label!r}"
    if kind == "Multiselect" and widget.options:
        labels = rng.sample(widget.options, rng.randint(0, len(widget.options)))
        _labelled(widget, labels)
        return f"{widget.key}={labels!r}"
    if kind == "SelectSlider" and widget.options:
        ranged = isinstance(widget.value, list | tuple) and len(widget.value) == 2
        picks = sorted(rng.sample(range(len(widget.options)), 2 if ranged else 1))
        if ranged and len(widget.options) < 2:
            picks = [0, 0]
        labels = [widget.options[i] for i in picks]
        _labelled(widget, labels)
        return f"{widget.key}={labels!r}"
    if kind == "Slider":
        integer = isinstance(widget.min, int) and isinstance(widget.step, int)
        pick = [_number(rng, widget.min, widget.max, widget.step, integer) for _ in range(2)]
        ranged = isinstance(widget.value, list | tuple)
        value = tuple(sorted(pick)) if ranged else pick[0]
        widget.set_value(value)
        return f"{widget.key}={value!r}"
    if kind == "NumberInput":
        step = widget.step or 1
        integer = isinstance(step, int) and isinstance(widget.value, int)
        low = widget.min if widget.min is not None else (widget.value or 0) - 20 * step
        high = widget.max if widget.max is not None else (widget.value or 0) + 20 * step
        if not (math.isfinite(low) and math.isfinite(high)):
            return "skipped"
        value = _number(rng, low, min(high, low + 1000 * step), step, integer)
        widget.set_value(value)
        return f"{widget.key}={value!r}"
    if kind in ("Checkbox", "Toggle"):
        value = rng.random() < 0.5
        widget.set_value(value)
        return f"{widget.key}={value!r}"
    return "skipped"


def _page_widgets(at: AppTest) -> list[Any]:
    widgets = []
    for kind in KINDS:
        for widget in getattr(at, kind):
            if widget.key and not widget.key.startswith("app_") and not widget.disabled:
                widgets.append(widget)
    return widgets


def fuzz(page: str, steps: int, seed: int = 0) -> int:
    """Run ``page`` through ``steps`` random widget changes; returns the runs made."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(f"pages/{page}").run()
    assert not at.exception, f"{page}: {at.exception[0].message}"
    rng = random.Random(f"{page}-{seed}")
    done: list[list[str]] = []
    for _ in range(steps):
        widgets = _page_widgets(at)
        if not widgets:
            break
        chosen = rng.sample(widgets, rng.randint(1, min(3, len(widgets))))
        done.append([_randomize(w, rng) for w in chosen])
        at.run()
        assert not at.exception, (
            f"{page}, step {len(done)}: {at.exception[0].message}\n"
            f"changes so far: {done}\n{at.exception[0].stack_trace}"
        )
    return len(done)


@pytest.mark.parametrize("page", PAGES)
def test_random_widgets_raise_nothing(page: str, app_pipeline: Path, app_env: Path) -> None:
    # Home has no widgets of its own: it only shows the data set.
    assert fuzz(page, steps=6) == (0 if page == "home.py" else 6)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_200_random_widget_combinations_raise_nothing(
    page: str, app_pipeline: Path, app_env: Path
) -> None:
    # Home has no widgets of its own; every other page takes all its steps.
    assert fuzz(page, steps=200, seed=1) == (0 if page == "home.py" else 200)
