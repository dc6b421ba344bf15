"""Progress bars on the terminal (tqdm): one for a count, one per pipeline stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

__all__ = ["StageBars", "progress_bar"]


def progress_bar(total: int, desc: str, unit: str) -> tuple[Any, Callable[[int, int], None]]:
    """A tqdm bar and a ``(done, total)`` callback that drives it."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=None)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, update


class StageBars:
    """One tqdm bar per pipeline stage, driven by ``progress(stage, done, total)``."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
