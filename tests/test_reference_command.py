"""``make reference``: it re-ships the shipped reference's own rows and seeds, or nothing."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from rem_core.config import RemConfig
from rem_core.experiment import REFERENCE_RESULTS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REFERENCE_RESULTS / "demo"


def _script():
    spec = importlib.util.spec_from_file_location(
        "reference_command", ROOT / "bench" / "reference_command.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_make_reference_runs_the_checked_command():
    if shutil.which("make") is None:
        recipe = (ROOT / "Makefile").read_text().split("\nreference:")[1].splitlines()[1]
    else:
        dry = subprocess.run(
            # Under `make test` (MAKELEVEL 1) make would also print the directories it enters.
            ["make", "--no-print-directory", "-n", "reference"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        recipe = dry.stdout.strip().splitlines()[-1]
    assert shlex.split(recipe)[1:] == ["bench/reference_command.py", "--run"]


def test_the_command_asks_for_the_shipped_rows_and_seeds():
    provenance = json.loads((SHIPPED / "provenance.json").read_text())
    command = _script().reference_command(SHIPPED)
    assert command[:2] == ["rem", "experiment"]
    assert command[-2:] == ["--ship-reference", "--force"] and "--out" not in command
    assert _option(command, "--preset") == "demo"
    assert _option(command, "--rows").split(",") == provenance["rows"]
    seeds = int(_option(command, "--seeds"))
    # every row's shipped seeds are 0 .. n-1, n at most --seeds, and some row has all of them
    shipped = provenance["seeds"]
    assert all(found == list(range(len(found))) for found in shipped.values())
    assert seeds == max(len(found) for found in shipped.values())
    assert len(provenance["rows"]) == 15 and sum(map(len, shipped.values())) == 65
    # without --seeds the demo preset would ask for one seed
    assert RemConfig.demo().experiment.seeds == 1 < seeds


def _ship(folder: Path, more: str | None):
    """A stand-in for ``rem``: ships the reference again, with five seeds of row ``more``
    (the cache held more of them than when it was shipped)."""

    def rem(argv: list[str]) -> int:
        assert _option(argv, "--out") == str(folder)
        path = folder / "provenance.json"
        provenance = json.loads(path.read_text())
        if more is not None:
            provenance["seeds"][more] = [0, 1, 2, 3, 4]
        provenance["shipped"] = "now"
        path.write_text(json.dumps(provenance))
        return 0

    return rem


@pytest.mark.parametrize("more", [None, "semi-sl"])
def test_run_keeps_the_old_reference_unless_the_seeds_are_the_same(more, tmp_path, monkeypatch):
    from rem_core import cli

    folder = shutil.copytree(SHIPPED, tmp_path / "demo")
    monkeypatch.setattr(cli, "main", _ship(folder, more))
    code = _script().run(folder)
    provenance = json.loads((folder / "provenance.json").read_text())
    if more is None:
        assert code == 0 and provenance["shipped"] == "now"
    else:
        assert code == 1
        assert (folder / "provenance.json").read_bytes() == (
            SHIPPED / "provenance.json"
        ).read_bytes()
