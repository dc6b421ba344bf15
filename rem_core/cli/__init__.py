"""The ``rem`` command: build, inspect and mine REM data sets.

Run ``rem --help`` or ``rem COMMAND --help``. ``parser.py`` and ``stage_commands.py`` declare
the commands (shared arguments: ``args.py``); each runs a ``cmd_*`` handler of ``data.py``,
``stages.py``, ``mining.py``, ``experiment.py``, ``pool.py`` or ``app.py``, which share
their preparation (settings, data set, features) through ``prepare.py``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from rem_core.cli.data import describe
from rem_core.cli.parser import build_parser
from rem_core.cluster import dask_client
from rem_core.schema import DataError

__all__ = ["build_parser", "describe", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rem`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for provenance
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        run = handler(args)
        if not hasattr(args, "cluster"):  # a command with no stage to spread
            args.client = None
            return run(args)
        with dask_client(args.cluster) as client:
            args.client = client
            return run(args)
    except (DataError, ValueError, OSError, KeyError) as exc:
        print(f"rem: error: {exc}", file=sys.stderr)
        return 2


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function that runs the parsed command (``args.handler``, ``"module:function"``).

    Its module is imported here, when the command runs, and not when the parser is built: the
    pipeline's modules load torch, which ``rem --help`` and ``rem info`` do not need.
    """
    module, _, name = args.handler.partition(":")
    return getattr(importlib.import_module(f"rem_core.cli.{module}"), name)
