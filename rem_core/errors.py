"""The engine's one distinction between errors: bad input, or a bug.

Bad input is a value, a file, a folder or a format the user gave, which the engine checked and
refused: an :class:`InputError` (a ``ValueError``; the tables' ``SchemaError`` and
``DataError`` are kinds of it) or an ``OSError`` about a path (missing, existing, unreadable).
Its message names the file, field or value, and the ``rem`` command prints it as one line and
exits with code 2. Any other exception is a bug: ``rem`` says so in one line (the traceback
with ``-v``) and exits with code 1.

>>> try:
...     raise InputError("budget: expected a whole count or a share like '3%', got -1")
... except ValueError as exc:  # an InputError is a ValueError, as before
...     print(exc)
budget: expected a whole count or a share like '3%', got -1
"""

from __future__ import annotations

__all__ = ["InputError", "InputKeyError", "is_bad_input"]


class InputError(ValueError):
    """Bad input, checked and refused; the message names the file, field or value."""


class InputKeyError(InputError, KeyError):
    """Bad input that names something missing (a frame, a column, a curve)."""

    def __str__(self) -> str:  # a KeyError quotes its message; this one reads as a sentence
        return str(self.args[0]) if self.args else ""


def is_bad_input(exc: BaseException) -> bool:
    """Whether ``exc`` is bad input (:class:`InputError`, or an ``OSError`` about a path or a
    connection) rather than a bug."""
    return isinstance(exc, InputError | OSError)
