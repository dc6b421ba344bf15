"""How ``rem`` fails, through its real entry point (a subprocess running the console script).

Bad input (a missing folder, a file of another format, a bad setting or port) is one line,
``rem: error: ...``, and exit code 2, never a traceback, even with ``-v``. Anything else is a
bug: one line saying so, the traceback only with ``-v``, and exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rem_core.dataset import Dataset

_SCRIPT = Path(sys.executable).with_name("rem")  # the console script beside this Python
REM = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "rem_core.cli"]


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` with its own cache folder and no ``$PORT`` unless given."""
    base = {k: v for k, v in os.environ.items() if k != "PORT"}
    base["REM_CACHE_DIR"] = str(cwd / "cache")
    return subprocess.run(
        command, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=120
    )


def rem(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``rem ARGS...``."""
    return run([*REM, *args], cwd, env)


def error_lines(stderr: str) -> list[str]:
    """The lines ``rem`` itself printed on stderr (``-v`` adds log lines around them)."""
    return [line for line in stderr.splitlines() if line.startswith("rem")]


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """A folder holding a ``dataset.json`` that is not JSON, and one of another format."""
    (tmp_path / "not_json").mkdir()
    (tmp_path / "not_json" / "dataset.json").write_text("{not json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dataset.json").write_text(json.dumps({"format": "kitti"}))
    return tmp_path


#: Bad input of several kinds: the command (``{tmp}`` is the test's folder), and what its one
#: line of error must name.
BAD_INPUT = {
    "missing folder": (["info", "{tmp}/nonexistent"], "{tmp}/nonexistent: not a REM data set"),
    "manifest not JSON": (["info", "{tmp}/not_json"], "not_json/dataset.json: unreadable"),
    "another format": (["info", "{tmp}/other"], "other/dataset.json: format is 'kitti'"),
    "estimator setting": (
        ["mine", "--preset", "tiny", "--estimator", "knn", "--estimator-setting", "k=0"]
        + ["--out", "{tmp}/mined.csv"],
        "knn.k: must be an int >= 1, got 0",
    ),
    "world setting": (
        ["world", "--preset", "tiny", "--segments", "1", "--out", "{tmp}/w"],
        "world.n_segments: needs >= 2 segments",
    ),
    "output format": (["mine", "--preset", "tiny", "--out", "{tmp}/mined.txt"], "mined.txt"),
}


@pytest.mark.parametrize(
    "case, verbose",
    # every case with -v; without it too where it is cheap (the mining commands load torch)
    [pytest.param(case, True, id=f"{case} -v") for case in BAD_INPUT]
    + [pytest.param(case, False, id=case) for case, (a, _) in BAD_INPUT.items() if a[0] != "mine"],
)
def test_bad_input_is_one_line_and_exit_code_2(case: str, verbose: bool, folders: Path) -> None:
    args, names = (
        [a.replace("{tmp}", str(folders)) for a in BAD_INPUT[case][0]],
        BAD_INPUT[case][1].replace("{tmp}", str(folders)),
    )
    done = rem(*(["-v"] if verbose else []), *args, cwd=folders)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("rem: error: ") and names in lines[0], lines
    if not verbose:
        assert done.stderr.splitlines() == lines
    # refused before any stage ran: nothing simulated, trained or cached
    assert not (folders / "cache").exists()


#: A handler that goes wrong by a bug rather than by bad input, injected without editing the
#: package: ``cmd_info`` looks ``describe`` up in its module's globals when it runs.
INJECT = """
import sys
import rem_core.cli
import rem_core.cli.data

def describe(ds):
    {body}

rem_core.cli.data.describe = describe
sys.argv = ["rem", *{args!r}]
sys.exit(rem_core.cli.main())
"""


def rem_with(body: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``rem ARGS...`` in a fresh Python whose ``describe`` runs ``body``."""
    return run([sys.executable, "-c", INJECT.format(body=body, args=list(args))], cwd)


@pytest.mark.parametrize(
    "body, what",
    [
        ("return 1 / 0", "ZeroDivisionError: division by zero"),
        ("return {}['segment_id']", "KeyError: 'segment_id'"),  # once read as bad input
    ],
)
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "-v"])
def test_a_bug_says_so_with_the_traceback_only_with_v(
    body: str, what: str, verbose: bool, tiny_world: Dataset, tmp_path: Path
) -> None:
    args = ["-v"] if verbose else []
    done = rem_with(body, *args, "info", str(tiny_world.root), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"rem: internal error (a bug): {what}; ")
    if verbose:
        assert "Traceback (most recent call last)" in done.stderr
        assert "in cmd_info" in done.stderr and done.stderr.splitlines()[-1] == lines[0]
    else:
        assert done.stderr.splitlines() == lines
        assert lines[0].endswith("run again with -v for the traceback")


def test_interrupt_and_exit_pass_as_before(tiny_world: Dataset, tmp_path: Path) -> None:
    done = rem_with("raise KeyboardInterrupt", "-v", "info", str(tiny_world.root), cwd=tmp_path)
    assert done.returncode == 130 and "Traceback" not in done.stderr
    done = rem_with("raise SystemExit(3)", "info", str(tiny_world.root), cwd=tmp_path)
    assert (done.returncode, done.stderr) == (3, "")


def test_argparse_errors_are_argparse_s(tmp_path: Path) -> None:
    done = rem("mine", "--method", "nope", "--out", "mined.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: rem mine") and "unknown method 'nope'" in done.stderr


@pytest.mark.parametrize("args", [["--help"], ["mine", "--help"], ["app", "--help"]])
def test_a_bad_port_leaves_help_alone(args: list[str], tmp_path: Path) -> None:
    done = rem(*args, cwd=tmp_path, env={"PORT": "abc"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rem")
    if args[0] == "app":
        assert "$PORT or 8501" in " ".join(done.stdout.split())


@pytest.mark.parametrize(
    "args, env, message",
    [
        ([], {"PORT": "abc"}, "$PORT: expected a port number (1-65535), got 'abc'"),
        ([], {"PORT": "70000"}, "$PORT: expected a port number (1-65535), got '70000'"),
        (["--port", "0"], {}, "--port: expected a port number (1-65535), got 0"),
    ],
)
def test_a_bad_port_stops_rem_app_before_it_starts(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    done = rem("app", *args, cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr) == (2, f"rem: error: {message}\n")
    assert "starting the app" not in done.stdout
