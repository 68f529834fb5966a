"""Building blocks of the validators' fast paths: cheap checks that vouch for common, valid input.

Every validator in this package has a full, error-collecting path (the reference) and a fast path for
the usual valid shape. A fast path never produces an error: on anything it is not sure about it raises
:class:`Doubt` and the full path runs from scratch, so accepted inputs, rejected inputs and the error
lists are exactly the full path's. The checks here therefore accept exact builtin types only (``bool``
is never an ``int``, no ``str`` subclasses) and leave every boundary case to the full path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "UUID_RE",
    "Doubt",
    "fast_choice",
    "fast_integer",
    "fast_number",
    "fast_pattern",
    "fast_positive_number",
    "fast_text",
    "fast_uuid",
    "slot_setters",
]

#: A UUID in its 8-4-4-4-12 hex form (the only form accepted on the wire).
UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


class Doubt(Exception):
    """The fast path cannot vouch for the input; the full validator decides (and reports)."""


def slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen, slotted dataclass, in field order.

    A frozen dataclass's ``__init__`` assigns every field through ``object.__setattr__``, which costs
    about as much as the validation it follows. Filling the slots of ``object.__new__(cls)`` directly
    yields the very same object; ``names`` must list every field in order and the class may have no
    ``__post_init__``, so a change to the class fails here at import rather than building odd objects.
    """
    fields = tuple(f.name for f in dataclasses.fields(cls))
    if fields != names or hasattr(cls, "__post_init__") or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: fields {fields} are not the slots {names} the fast path fills")
    return tuple(vars(cls)[name].__set__ for name in names)


def fast_uuid(value: Any) -> str:
    """A UUID string in canonical (lower-case) form, as ``str(uuid.UUID(value))`` gives it.

    For text of the 8-4-4-4-12 hex shape that is exactly ``value.lower()``, without building a UUID.
    """
    if type(value) is not str or len(value) != 36 or not UUID_RE.fullmatch(value):
        raise Doubt
    return value.lower()


def fast_choice(value: Any, choices: frozenset[str], _unused: object = None) -> str:
    """One of ``choices``. (The unused argument gives every check the same shape, for spec tables.)"""
    if type(value) is not str or value not in choices:
        raise Doubt
    return value


def fast_integer(value: Any, low: int, high: int) -> int:
    """An integer in ``[low, high]``; an integral float becomes an int, as the full path does."""
    if type(value) is not int:
        if type(value) is not float or not value.is_integer():
            raise Doubt
        value = int(value)
    if not low <= value <= high:
        raise Doubt
    return value  # type: ignore[no-any-return]


def fast_number(value: Any, low: float, high: float) -> float:
    """A float in ``[low, high]`` (finite bounds, so NaN and infinities fail the comparison)."""
    kind = type(value)
    if kind is float:
        if not low <= value <= high:
            raise Doubt
        return value  # type: ignore[no-any-return]
    # Compared as an int first: exact, and float() cannot overflow once it is within finite bounds.
    if kind is not int or not low <= value <= high:
        raise Doubt
    return float(value)


def fast_positive_number(value: Any, high: float) -> float:
    """A float in ``(0, high]``."""
    kind = type(value)
    if kind is float:
        if not 0.0 < value <= high:
            raise Doubt
        return value  # type: ignore[no-any-return]
    if kind is not int or not 0 < value <= high:
        raise Doubt
    return float(value)


def fast_pattern(value: Any, pattern: re.Pattern[str], _unused: object = None) -> str:
    """A string that ``pattern`` matches as a whole."""
    if type(value) is not str or not pattern.fullmatch(value):
        raise Doubt
    return value


def fast_text(value: Any, max_length: int, _unused: object = None) -> str:
    """Free text of at most ``max_length`` characters, without control characters."""
    if type(value) is not str or len(value) > max_length or _CONTROL_RE.search(value):
        raise Doubt
    return value
