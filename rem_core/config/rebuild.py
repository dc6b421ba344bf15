"""Settings rebuilt from their dict: the inverse of ``settings_dict`` (and of
``config_to_dict``), so that settings travel as JSON and come back as the same frozen
dataclasses, with the same ``config_hash``.

>>> from rem_core.config import RemConfig, config_hash, config_to_dict
>>> config = RemConfig.tiny()
>>> back = config_from_dict(RemConfig, config_to_dict(config))
>>> back == config, config_hash(back) == config_hash(config)
(True, True)
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rem_core.config.rules import is_int
from rem_core.errors import InputError

__all__ = ["config_from_dict"]

_T = TypeVar("_T")


def config_from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """The settings dataclass ``cls`` rebuilt from ``data``, a dict as ``config_to_dict``
    gives it (or JSON read back).

    Each field's declared type says what its value becomes: a nested settings class is
    rebuilt from its dict, a list becomes a tuple (``tuple[int, ...]``, ``tuple[str,
    float]``, nested ones too), ``None`` stays ``None``; numbers, strings and bools are
    kept as they are (an int stays an int, so the key is the same), and the class then
    checks every value by its rules. A field declared ``omit_default`` that ``data``
    leaves out takes its default.

    Raises:
        InputError: naming the setting (``<section>.<field>``, ``config`` for a class
            without a section), for an unknown key, a missing one (not ``omit_default``),
            a value of the wrong kind, or a value its rule refuses.

    >>> from dataclasses import dataclass
    >>> from rem_core.config import Check, Settings, number, setting
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Lamp(Settings):
    ...     section = "lamp"
    ...     watts: float = number(40.0, "(0, 200]", "W")
    ...     hues: tuple[str, ...] = setting(("warm",), Check(bool, "must not be empty"))
    >>> config_from_dict(Lamp, {"watts": 60, "hues": ["warm", "cold"]})
    Lamp(watts=60, hues=('warm', 'cold'))
    >>> config_from_dict(Lamp, {"watts": 60, "hues": [], "volts": 230})
    Traceback (most recent call last):
        ...
    rem_core.errors.InputError: lamp: unknown setting volts; known: watts, hues
    >>> config_from_dict(Lamp, {"watts": "60", "hues": ["warm"]})
    Traceback (most recent call last):
        ...
    rem_core.errors.InputError: lamp.watts: must be a number, got '60'
    >>> config_from_dict(Lamp, {"watts": 60, "hues": []})
    Traceback (most recent call last):
        ...
    rem_core.errors.InputError: lamp.hues: must not be empty, got ()
    """
    return _from_dict(cls, data, "config")


def _from_dict(cls: type[_T], data: Any, name: str) -> _T:
    """``cls`` from ``data``; ``name`` names it in errors unless ``cls`` has a ``section``."""
    section = getattr(cls, "section", name)
    if not isinstance(data, Mapping):
        raise InputError(f"{name}: must be a dict of settings, got {data!r}")
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    names = [f.name for f in fields]
    unknown = sorted(map(str, set(data) - set(names)))
    if unknown:
        known = ", ".join(names)
        raise InputError(f"{section}: unknown setting {', '.join(unknown)}; known: {known}")
    missing = [f.name for f in fields if f.name not in data and not f.metadata.get("omit_default")]
    if missing:
        raise InputError(f"{section}: missing setting {', '.join(missing)}")
    kinds = typing.get_type_hints(cls)
    values = {
        f.name: _rebuild(kinds[f.name], data[f.name], f"{section}.{f.name}")
        for f in fields
        if f.name in data
    }
    return cls(**values)


#: What a value read from JSON must be for a field of each plain type (an int is a number).
_PLAIN: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    bool: ("a bool", lambda v: isinstance(v, bool)),
    int: ("an int", is_int),
    float: ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    str: ("a str", lambda v: isinstance(v, str)),
    type(None): ("None", lambda v: v is None),
}


def _fits(kind: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``kind`` (a field's type, or one of a union's)."""
    if dataclasses.is_dataclass(kind):
        return isinstance(value, Mapping)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, list | tuple)
    return kind not in _PLAIN or _PLAIN[kind][1](value)


def _describe(kind: Any) -> str:
    """What a value of ``kind`` is, for a message: ``"an int"``, ``"a list"``."""
    if dataclasses.is_dataclass(kind):
        return "a dict of settings"
    if typing.get_origin(kind) is tuple:
        return "a list"
    return _PLAIN[kind][0] if kind in _PLAIN else str(kind)


def _rebuild(kind: Any, value: Any, name: str) -> Any:
    """``value``, read from JSON, as a field of type ``kind`` holds it (``name`` in errors)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        for option in args:
            if _fits(option, value):
                return _rebuild(option, value, name)
        wanted = " or ".join(_describe(option) for option in args)
        raise InputError(f"{name}: must be {wanted}, got {value!r}")
    if not _fits(kind, value):
        raise InputError(f"{name}: must be {_describe(kind)}, got {value!r}")
    if dataclasses.is_dataclass(kind):
        return _from_dict(kind, value, name)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], item, name) for item in value)
        if len(args) != len(value):
            raise InputError(f"{name}: must be a list of {len(args)}, got {value!r}")
        return tuple(_rebuild(a, item, name) for a, item in zip(args, value, strict=True))
    return value
