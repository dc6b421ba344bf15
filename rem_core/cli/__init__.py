"""The ``rem`` command: build, inspect and mine REM data sets.

Run ``rem --help`` or ``rem COMMAND --help``. ``parser.py`` and ``stage_commands.py`` declare
the commands (shared arguments: ``args.py``); each runs a ``cmd_*`` handler of ``data.py``,
``stages.py``, ``mining.py``, ``experiment.py``, ``pool.py`` or ``app.py``, which share
their preparation (settings, data set, features) through ``prepare.py``.

A command ends in one of two ways when it fails (``rem_core.errors``). Bad input (a value, a
file, a folder or a format the user gave, refused) is one line, ``rem: error: ...``, and exit
code 2, as argparse's own errors are. Anything else is a bug in ``rem``: one line saying so,
the traceback with ``-v``, and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from rem_core.cli.data import describe
from rem_core.cli.parser import build_parser
from rem_core.cluster import dask_client
from rem_core.errors import is_bad_input

__all__ = ["build_parser", "describe", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rem`` console script; returns the exit code.

    0 when the command succeeds, 2 for bad input, 1 for a bug, 130 when interrupted (Ctrl-C).
    argparse's own errors (an unknown option, a bad choice) exit with code 2 as they parse.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for provenance
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("rem: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # SystemExit and KeyboardInterrupt are not Exceptions
        return _report(exc, verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command, inside a Dask client when it has stages to spread."""
    run = handler(args)
    if not hasattr(args, "cluster"):  # a command with no stage to spread
        args.client = None
        return run(args)
    with dask_client(args.cluster) as client:
        args.client = client
        return run(args)


def _report(exc: Exception, *, verbose: bool) -> int:
    """Print what went wrong on stderr and return the exit code: 2 for bad input, 1 for a bug.

    Bad input is one line naming the file, field or value, never a traceback: the message says
    it all. A bug is one line saying so; ``-v`` prints its traceback above it.
    """
    if is_bad_input(exc):
        print(f"rem: error: {exc}", file=sys.stderr)
        return 2
    what = type(exc).__name__
    lines = str(exc).strip().splitlines()
    if lines:  # the first line of the message, to keep this one line; -v shows it all
        what += f": {lines[0]}" + (" [...]" if len(lines) > 1 else "")
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
        print(f"rem: internal error (a bug): {what}; the traceback is above", file=sys.stderr)
    else:
        print(
            f"rem: internal error (a bug): {what}; run again with -v for the traceback",
            file=sys.stderr,
        )
    return 1


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function that runs the parsed command (``args.handler``, ``"module:function"``).

    Its module is imported here, when the command runs, and not when the parser is built: the
    pipeline's modules load torch, which ``rem --help`` and ``rem info`` do not need.
    """
    module, _, name = args.handler.partition(":")
    return getattr(importlib.import_module(f"rem_core.cli.{module}"), name)
