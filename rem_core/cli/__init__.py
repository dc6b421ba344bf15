"""The ``rem`` command: build, inspect and mine REM data sets.

Run ``rem --help`` or ``rem COMMAND --help``. ``parser.py`` declares the commands; each runs
a ``cmd_*`` function of ``data.py``, ``stages.py`` or ``experiment.py``, which share their
preparation (settings, data set, features) through ``_common.py``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from rem_core.cli.data import describe
from rem_core.cli.parser import build_parser
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
        if not hasattr(args, "cluster"):  # a command with no stage to spread
            args.client = None
            return args.func(args)
        from rem_core.cluster import dask_client

        with dask_client(args.cluster) as client:
            args.client = client
            return args.func(args)
    except (DataError, ValueError, OSError, KeyError) as exc:
        print(f"rem: error: {exc}", file=sys.stderr)
        return 2
