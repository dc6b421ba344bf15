"""The server's own settings (`.streamlit/config.toml`), as `streamlit run` reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(*args: str) -> str:
    """What ``python ARGS`` prints, run in the project folder (where the server reads its
    settings)."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout


def _settings() -> list[str]:
    """``streamlit config show``'s settings, as the server in the project folder reads them."""
    shown = _python("-m", "streamlit", "config", "show")
    return [line.strip() for line in shown.splitlines() if not line.startswith("#")]


def test_the_server_watches_no_files():
    # Watching the project folder (.venv and cache/ included) overflowed inotify while the
    # pipeline wrote its artifacts, and the re-walks slowed training in the server 5 times.
    assert 'fileWatcherType = "none"' in _settings()


def test_no_session_waits_for_a_full_collection_after_each_run():
    # A full garbage collection after every script run held the GIL for about 0.23 s a run:
    # half of the server's GIL time with 8 sessions browsing (py-spy). A hidden option:
    # `config show` does not list it, so ask the config as the server reads it.
    read = "from streamlit import config; print(config.get_option('runner.postScriptGC'))"
    assert _python("-c", read).strip() == "False"
