"""``python -m rem_core.cli``: the ``rem`` command."""

import sys

from rem_core.cli import main

sys.exit(main())
