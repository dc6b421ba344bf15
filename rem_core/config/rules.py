"""Settings declared once: a field's rule stands beside its default, one validator checks all.

A stage's settings subclass :class:`Settings` and declare each field with :func:`number`,
:func:`integer`, :func:`one_of`, :func:`flag` or :func:`setting` (any :class:`Rule`). The
dataclass's ``__post_init__`` checks every field by its rule and raises ``ValueError`` naming
``<section>.<field>``; rules that tie fields together go in ``_validate``. The rule lives in
the field's metadata, not in its value, so ``dataclasses.asdict`` and every cache key are
those of the plain values.

A field added after the cache keys were fixed is declared with ``setting(...,
omit_default=True)``: :func:`settings_dict` (what ``config_to_dict`` and ``config_hash``
read) leaves it out while it holds its default, so the keys of every configuration written
before it existed stay the same, and changing it changes the key as any other setting does.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, kw_only=True)
... class Lamp(Settings):
...     section = "lamp"
...     watts: float = number(40.0, "(0, 200]", "W")
...     colour: str = one_of("warm", ("warm", "cold"))
>>> Lamp(watts=60).watts
60
>>> Lamp(watts=0)
Traceback (most recent call last):
    ...
rem_core.errors.InputError: lamp.watts: must be a number in (0, 200] W, got 0
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from rem_core.errors import InputError

__all__ = [
    "Check",
    "Interval",
    "OneOf",
    "Rule",
    "Settings",
    "flag",
    "integer",
    "is_int",
    "is_number",
    "number",
    "one_of",
    "require",
    "setting",
    "settings_dict",
]


def is_number(value: object) -> bool:
    """A finite real number (numpy scalars too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    """An integer (numpy integers too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require(condition: bool, name: str, message: str) -> None:
    """Raise ``ValueError("<name>: <message>")`` unless ``condition``."""
    if not condition:
        raise InputError(f"{name}: {message}")


class Rule:
    """What a field's value must be."""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule (``"must be ..., got ..."``), or ``None``."""
        raise NotImplementedError


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Interval(Rule):
    """A number (``integer``: an int) between ``low`` and ``high``, each bound closed or open;
    ``unit`` is named in the message; ``optional`` also admits ``None``."""

    low: float = -math.inf
    high: float = math.inf
    closed_low: bool = True
    closed_high: bool = True
    unit: str = ""
    integer: bool = False
    optional: bool = False

    @classmethod
    def parse(cls, text: str, **settings: Any) -> Interval:
        """The interval written as in mathematics: ``"[0, 1)"``, ``"(0, inf)"``.

        >>> Interval.parse("[1, inf)", integer=True).problem(0)
        'must be an int >= 1, got 0'
        """
        text = text.strip()
        if len(text) < 5 or text[0] not in "[(" or text[-1] not in "])" or "," not in text:
            raise InputError(f"interval {text!r}: write it as '[low, high)' and the like")
        low, high = (float(part) for part in text[1:-1].split(","))
        return cls(low, high, text[0] == "[", text[-1] == "]", **settings)

    def describe(self) -> str:
        """``"a number in [0, 1)"``, ``"an int >= 1"`` ... (with the unit)."""
        kind = "an int" if self.integer else "a number"
        if math.isinf(self.low) and math.isinf(self.high):
            where = ""
        elif math.isinf(self.high):
            where = f" {'>=' if self.closed_low else '>'} {_fmt(self.low)}"
        elif math.isinf(self.low):
            where = f" {'<=' if self.closed_high else '<'} {_fmt(self.high)}"
        else:
            where = (
                f" in {'[' if self.closed_low else '('}{_fmt(self.low)}, "
                f"{_fmt(self.high)}{']' if self.closed_high else ')'}"
            )
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind}{where}{unit}{' or None' if self.optional else ''}"

    def problem(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        ok = is_int(value) if self.integer else is_number(value)
        ok = ok and (self.low <= value if self.closed_low else self.low < value)
        ok = ok and (value <= self.high if self.closed_high else value < self.high)
        return None if ok else f"must be {self.describe()}, got {value!r}"


@dataclass(frozen=True)
class OneOf(Rule):
    """One of ``choices`` (``optional``: or ``None``)."""

    choices: tuple[Any, ...]
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        if (value is None and self.optional) or value in self.choices:
            return None
        listed = ", ".join(map(str, self.choices)) + (" or None" if self.optional else "")
        return f"must be one of {listed}, got {value!r}"


@dataclass(frozen=True)
class Check(Rule):
    """Any rule: ``test(value)`` must hold; ``message`` says what the value must be
    (``"must be ..."``), and the value is added to it."""

    test: Callable[[Any], bool]
    message: str

    def problem(self, value: Any) -> str | None:
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError, AttributeError):  # a value of the wrong kind
            ok = False
        return None if ok else f"{self.message}, got {value!r}"


def setting(
    default: Any = dataclasses.MISSING,
    rule: Rule | None = None,
    *,
    omit_default: bool = False,
    **kwargs: Any,
) -> Any:
    """A dataclass field checked by ``rule`` (``default_factory=`` works as in ``field``).

    ``omit_default``: the field came after the cache keys were fixed; :func:`settings_dict`
    leaves it out while it equals its default, so older keys stay valid.
    """
    metadata = {"rule": rule, "omit_default": omit_default}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def number(default: float | None, interval: str, unit: str = "", *, optional: bool = False) -> Any:
    """A number field in ``interval`` (``"[0, 1)"``), of ``unit``."""
    return setting(default, Interval.parse(interval, unit=unit, optional=optional))


def integer(default: int | None, interval: str, unit: str = "", *, optional: bool = False) -> Any:
    """An int field in ``interval`` (``"[1, inf)"``), of ``unit``."""
    return setting(default, Interval.parse(interval, unit=unit, integer=True, optional=optional))


def one_of(default: Any, choices: Sequence[Any], *, optional: bool = False) -> Any:
    """A field taking one of ``choices``."""
    return setting(default, OneOf(tuple(choices), optional))


def flag(default: bool) -> Any:
    """A bool field."""
    return setting(default, Check(lambda v: isinstance(v, bool), "must be a bool"))


class Settings:
    """Base of the frozen settings dataclasses: checks every field by its rule.

    A subclass sets ``section`` (the prefix of its error messages: ``"world"`` gives
    ``world.seed: ...``) and may add ``_validate`` for rules across fields.
    """

    section: ClassVar[str] = "settings"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if type(value).__module__ == "numpy" and hasattr(value, "item"):
                # a numpy scalar is kept as the Python number it holds: JSON, and so the
                # cache key, know only those (np.int64(3) would hash apart from 3)
                value = value.item()
                object.__setattr__(self, f.name, value)
            rule = f.metadata.get("rule")
            problem = rule.problem(value) if rule is not None else None
            if problem is not None:
                raise InputError(f"{self.section}.{f.name}: {problem}")
        self._validate()

    def _validate(self) -> None:
        """Rules that tie fields together (none here)."""

    def changed(self, **changes: Any) -> Self:
        """A copy with ``changes`` (checked as any value is).

        Raises:
            ValueError: a name that is not a field of the class (naming the section and the
                fields it has), or a value its rule refuses.

        >>> @dataclass(frozen=True, kw_only=True)
        ... class Lamp(Settings):
        ...     section = "lamp"
        ...     watts: float = number(40.0, "(0, 200]", "W")
        >>> Lamp().changed(watts=60).watts
        60
        >>> Lamp().changed(volts=230)
        Traceback (most recent call last):
            ...
        rem_core.errors.InputError: lamp: unknown setting volts; known: watts
        """
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise InputError(
                f"{self.section}: unknown setting {', '.join(unknown)}; known: {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def settings_dict(config: Any) -> Any:
    """The plain value of a (nested) settings dataclass: what ``dataclasses.asdict`` gives,
    without the ``omit_default`` fields that hold their default.

    ``config_to_dict`` and ``config_hash`` read it, so a field added with ``omit_default``
    leaves every existing cache key as it was until it is changed.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Lamp(Settings):
    ...     watts: float = number(40.0, "(0, 200]", "W")
    ...     dimmer: bool = setting(False, Check(lambda v: isinstance(v, bool), "must be a bool"),
    ...                            omit_default=True)
    >>> settings_dict(Lamp()), settings_dict(Lamp(dimmer=True))
    ({'watts': 40.0}, {'watts': 40.0, 'dimmer': True})
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if f.metadata.get("omit_default") and value == _default(f):
                continue
            out[f.name] = settings_dict(value)
        return out
    if isinstance(config, tuple):  # a namedtuple too: JSON writes both as a list
        return tuple(settings_dict(v) for v in config)
    if isinstance(config, list):
        return [settings_dict(v) for v in config]
    if isinstance(config, dict):
        return {settings_dict(k): settings_dict(v) for k, v in config.items()}
    return copy.deepcopy(config)
