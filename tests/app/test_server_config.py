"""The server's own settings (`.streamlit/config.toml`), as `streamlit run` reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_watches_no_files():
    # Watching the project folder (.venv and cache/ included) overflowed inotify while the
    # pipeline wrote its artifacts, and the re-walks slowed training in the server 5 times.
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    settings = [line.strip() for line in shown.splitlines() if not line.startswith("#")]
    assert 'fileWatcherType = "none"' in settings
