"""The command that re-ships the experiment's shipped reference: ``make reference``.

``rem experiment --ship-reference`` ships the cached runs of the rows and seeds it is asked
for; without ``--rows`` and ``--seeds`` it would ask for the preset's (the demo preset runs
one seed), and replace the shipped 65 runs with 15. This script reads the rows and the
seeds of each row from the shipped reference's ``provenance.json`` and asks for exactly
those rows, with ``--seeds`` the largest seed count of a row.

``--seeds N`` asks every row for seeds 0 to N-1, and the ship takes those that are cached
(``rem`` names the others, "not cached, left out"). The rows do not all have the same
seeds (today: 5 for ten rows, 3 for the other five, as the recorded command ``rem
experiment --preset demo --seeds 5`` left them), so a row with fewer comes out the same
only if the cache holds no more of its seeds than when it was shipped; ``--run`` therefore
checks every row's seeds in the new reference against the old, and puts the old reference
back if they differ.

Usage: ``python bench/reference_command.py [FOLDER] [--run]``: print the command (``rem
experiment ...``) for the reference in FOLDER (default:
``rem_core/reference_results/demo``), or, with ``--run``, run it and check it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from rem_core.experiment import REFERENCE_RESULTS

#: The reference ``make reference`` re-ships.
DEFAULT_FOLDER = REFERENCE_RESULTS / "demo"


def _provenance(folder: Path) -> tuple[list[str], dict[str, list[int]]]:
    """The rows and the seeds of each row that ``folder/provenance.json`` records."""
    provenance = json.loads((folder / "provenance.json").read_text())
    return provenance["rows"], provenance["seeds"]


def shipped_seeds(folder: Path) -> dict[str, list[int]]:
    """The seeds of each row of the reference in ``folder``, in the table's row order.

    Raises:
        ValueError: a provenance whose rows and seeds disagree, or a row whose seeds are
            not 0 to n-1 (``--seeds`` cannot ask for them).
    """
    rows, seeds = _provenance(folder)
    if list(rows) != list(seeds):
        raise ValueError(f"{folder}: provenance rows {rows} and seeds' rows {list(seeds)} differ")
    for row, found in seeds.items():
        if sorted(found) != list(range(len(found))):
            raise ValueError(f"{folder}: row {row} has seeds {found}, not 0 to n-1")
    return {row: sorted(seeds[row]) for row in rows}


def reference_command(folder: Path = DEFAULT_FOLDER) -> list[str]:
    """``rem experiment --preset <folder's name> --rows <its rows> --seeds <most seeds of a
    row> --ship-reference --force`` (and ``--out <folder>`` for a folder elsewhere than
    ``REFERENCE_RESULTS``): the command that ships the reference in ``folder`` again from
    the cache."""
    seeds = shipped_seeds(folder)
    shipped_here = folder.resolve() == (REFERENCE_RESULTS / folder.name).resolve()
    out = [] if shipped_here else ["--out", str(folder)]
    return [
        "rem",
        "experiment",
        "--preset",
        folder.name,
        "--rows",
        ",".join(seeds),
        "--seeds",
        str(max(len(found) for found in seeds.values())),
        *out,
        "--ship-reference",
        "--force",
    ]


def run(folder: Path) -> int:
    """Run :func:`reference_command`; put the old reference back, and fail, unless the new
    one has the same rows and seeds."""
    from rem_core.cli import main as rem  # the CLI, only when the command runs

    command = reference_command(folder)
    print(shlex.join(command), flush=True)
    before = shipped_seeds(folder)
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / folder.name
        shutil.copytree(folder, kept)
        code = rem(command[1:])
        rows, seeds = _provenance(folder)
        after = {row: sorted(seeds.get(row, [])) for row in rows}
        if code != 0 or after == before:  # a failed ship leaves the folder as it was
            return code
        shutil.rmtree(folder)
        shutil.copytree(kept, folder)
    changed = [row for row in {*before, *after} if before.get(row) != after.get(row)]
    print(
        f"reference_command: the cache gave other seeds for {', '.join(sorted(changed))} "
        f"than the shipped reference holds; it is left as it was in {folder}",
        file=sys.stderr,
    )
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--run", action="store_true", help="run the command and check it")
    args = parser.parse_args()
    if args.run:
        return run(args.folder)
    print(shlex.join(reference_command(args.folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
