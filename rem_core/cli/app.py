"""``rem app``: the analysis app in the browser, started as ``make app`` starts it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["cmd_app"]


def cmd_app(args: argparse.Namespace) -> int:
    """``rem app``: the Streamlit app, as ``make app`` starts it, from the project's folder."""
    root = Path(__file__).resolve().parents[2]  # the project's folder, above rem_core/
    app = root / "app.py"
    if not app.is_file():
        raise FileNotFoundError(
            f"{app}: the app's script is not beside the installed package; install the "
            "project from its folder (pip install -e .) and run `rem app` again"
        )
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.port", str(args.port)]  # fmt: skip
    if args.address:
        command += ["--server.address", args.address]
    # From the project's folder: streamlit reads .streamlit/config.toml (no file watcher)
    # from the working directory, and the app's default cache is ./cache there; a relative
    # REM_CACHE_DIR still means the caller's folder.
    env = dict(os.environ)
    if env.get("REM_CACHE_DIR"):
        env["REM_CACHE_DIR"] = str(Path(env["REM_CACHE_DIR"]).resolve())
    where = f"http://{args.address or 'localhost'}:{args.port}"
    print(f"rem: starting the app on {where} (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(command, cwd=root, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:  # the server got the terminal's Ctrl-C too: let it stop
        try:
            return server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            return server.wait()
