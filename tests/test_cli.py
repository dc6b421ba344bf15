from __future__ import annotations

import subprocess
import sys

import pytest

from rem_core.cli import describe, main


@pytest.mark.parametrize("args", [[], ["world"], ["info"]])
def test_help_on_every_command(args, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*args, "--help"])
    assert exit.value.code == 0
    assert "usage: rem" in capsys.readouterr().out


def test_world_then_info(tmp_path, capsys):
    out = tmp_path / "w"
    assert (
        main(["world", "--preset", "tiny", "--segments", "2", "--frames", "2", "--out", str(out)])
        == 0
    )
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "segments   4  (source 1, unlabelled 1, validation 1, ood 1)" in text
    assert "frames     8" in text
    assert "vehicle tracks" in text and "track length" in text
    # An existing data set is not overwritten without --force.
    assert main(["world", "--preset", "tiny", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_info_on_a_missing_folder(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none")]) == 2
    assert "not a REM data set" in capsys.readouterr().err


def test_describe_counts_large_tracks(tiny_world):
    text = describe(tiny_world)
    assert "large (>= 7 m)" in text
    assert f"tracks     {len(tiny_world.tracks):,}" in text


def test_console_script_runs():
    done = subprocess.run(
        [sys.executable, "-m", "rem_core.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "world" in done.stdout and "info" in done.stdout


def test_rem_app_serves_the_app(tmp_path):
    # `rem app` starts the same server as `make app`, from the project's folder
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "REM_PRESET": "tiny", "REM_CACHE_DIR": str(tmp_path / "cache"),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "rem_core.cli", "app", "--port", str(port), "--address",
         "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline, healthy = time.monotonic() + 90, False
        while time.monotonic() < deadline and proc.poll() is None and not healthy:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    healthy = response.status == 200
            except OSError:
                time.sleep(0.25)
        assert healthy, f"rem app did not answer on port {port} (exit code {proc.poll()})"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"starting the app on http://127.0.0.1:{port}" in out


def test_estimator_settings_from_the_command_line(capsys):
    from rem_core.cli import build_parser
    from rem_core.cli.prepare import settings

    parser = build_parser()
    args = parser.parse_args(
        ["flow", "fit", "--preset", "tiny", "--estimator", "gmm"]
        + ["--estimator-setting", "n_components=4", "--estimator-setting", "covariance_type=diag"]
    )
    rareness = settings(args).rareness
    assert (rareness.estimator, rareness.gmm.n_components, rareness.gmm.covariance_type) == (
        "gmm",
        4,
        "diag",
    )
    args = parser.parse_args(["score", "--preset", "tiny", "--estimator-setting", "hidden=[8,8]"])
    assert settings(args).rareness.density.hidden == (8, 8)  # FFJORD's, the default estimator
    # a bad setting is one line and exit code 2, before any work
    assert main(["flow", "fit", "--preset", "tiny", "--estimator", "knn"]
                + ["--estimator-setting", "k=0"]) == 2  # fmt: skip
    assert "knn.k: must be an int >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["mine", "--out", "x", "--estimator-setting", "k"])
