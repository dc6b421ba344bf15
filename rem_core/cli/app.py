"""``rem app``: the analysis app in the browser, started as ``make app`` starts it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from rem_core.errors import InputError

__all__ = ["cmd_app"]

#: The port when neither ``--port`` nor ``$PORT`` gives one (streamlit's, and ``make app``'s).
DEFAULT_PORT = 8501


def cmd_app(args: argparse.Namespace) -> int:
    """``rem app``: the Streamlit app, as ``make app`` starts it, from the project's folder."""
    port = _server_port(args.port, os.environ.get("PORT"))
    root = Path(__file__).resolve().parents[2]  # the project's folder, above rem_core/
    app = root / "app.py"
    if not app.is_file():
        raise FileNotFoundError(
            f"{app}: the app's script is not beside the installed package; install the "
            "project from its folder (pip install -e .) and run `rem app` again"
        )
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.port", str(port)]  # fmt: skip
    if args.address:
        command += ["--server.address", args.address]
    # From the project's folder: streamlit reads .streamlit/config.toml (no file watcher)
    # from the working directory, and the app's default cache is ./cache there; a relative
    # REM_CACHE_DIR still means the caller's folder.
    env = dict(os.environ)
    if env.get("REM_CACHE_DIR"):
        env["REM_CACHE_DIR"] = str(Path(env["REM_CACHE_DIR"]).resolve())
    where = f"http://{args.address or 'localhost'}:{port}"
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


def _server_port(option: int | None, env: str | None) -> int:
    """The port to serve on: ``--port`` (``option``), else ``$PORT`` (``env``), else 8501.

    An unset or empty ``$PORT`` means the default, as in ``make app``.

    Raises:
        InputError: the port, from either, is not a whole number in 1..65535.

    >>> _server_port(None, None), _server_port(None, "8600"), _server_port(9000, "8600")
    (8501, 8600, 9000)
    >>> _server_port(None, "abc")
    Traceback (most recent call last):
    rem_core.errors.InputError: $PORT: expected a port number (1-65535), got 'abc'
    """
    if option is not None:
        name, given, port = "--port", str(option), option
    elif env is not None and env.strip():
        name, given = "$PORT", repr(env)
        port = int(env) if env.strip().isdecimal() else 0
    else:
        return DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise InputError(f"{name}: expected a port number (1-65535), got {given}")
    return port
