"""The full validators' toolkit: field errors, the one exception a parser raises, and the checker.

:class:`Checker` reads an untrusted mapping field by field and collects every problem as a
:class:`FieldError` (so a publisher can fix them in one go) instead of stopping at the first; the
schemas subclass :class:`Invalid` to raise them. Also here: the formats both signals and trade
events check (logins, symbols, the largest timestamp).

Not here: any schema or its cross-field rules (:mod:`bridge.protocol.signals`,
:mod:`bridge.protocol.events`) or the fast paths' checks (:mod:`bridge.protocol._fastpath`).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from bridge.protocol._fastpath import UUID_RE

__all__ = ["LOGIN_RE", "MAX_TS_MS", "SYMBOL_RE", "Checker", "FieldError", "Invalid"]

#: A MetaTrader account login: digits only.
LOGIN_RE: Final = re.compile(r"[0-9]{1,20}")
#: A broker symbol name (``EURUSD``, ``XAUUSD.r``, ``US30#``, ``BTCUSD!``).
SYMBOL_RE: Final = re.compile(r"[A-Za-z0-9_.#+\-!$&]{1,32}")
#: The largest timestamp accepted (unix ms): 9999-12-31T23:59:59.999Z.
MAX_TS_MS: Final = 253_402_300_799_999


class FieldError(NamedTuple):
    """One problem with one field; ``code`` is a stable machine string, ``message`` is for humans."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class Invalid(ValueError):
    """Base of the parse failures of this package's schemas; carries every field error found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        super().__init__(summary or "invalid")


class Checker:
    """Collects field errors while reading an untrusted mapping; every getter returns None on error."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self.obj = obj
        self.errors: list[FieldError] = []

    def error(self, field: str, code: str, message: str) -> None:
        self.errors.append(FieldError(field, code, message))

    def has_error(self, field: str) -> bool:
        return any(e.field == field or e.field.startswith((field + "[", field + ".")) for e in self.errors)

    def present(self, field: str) -> bool:
        return field in self.obj and self.obj[field] is not None

    def reject_unknown(self, allowed: frozenset[str]) -> None:
        for key in self.obj:
            if key not in allowed:
                shown = key if isinstance(key, str) and len(key) <= 64 else "<field>"
                self.error(shown, "unknown", "unknown field")

    def _get(self, field: str, required: bool) -> Any:
        value = self.obj.get(field)
        if value is None:
            if required:
                self.error(field, "required", "is required")
            return None
        return value

    def string(
        self,
        field: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        max_length: int | None = None,
        what: str = "",
    ) -> str | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(field, "type", "must be a string")
            return None
        if max_length is not None and len(value) > max_length:
            self.error(field, "too_long", f"must be at most {max_length} characters")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(field, "format", f"must be {what}" if what else "has an invalid format")
            return None
        return value

    def choice(self, field: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            self.error(field, "enum", "must be one of " + ", ".join(choices))
            return None
        return value

    def uuid(self, field: str, *, required: bool = False) -> str | None:
        value = self.string(field, required=required, pattern=UUID_RE, max_length=36, what="a UUID")
        return str(uuid.UUID(value)) if value is not None else None

    def number(
        self,
        field: str,
        *,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float | None:
        value = self._get(field, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(field, "type", "must be a number")
            return None
        try:
            number = float(value)
        except OverflowError:
            self.error(field, "range", "is out of range")
            return None
        if not math.isfinite(number):
            self.error(field, "type", "must be a finite number")
            return None
        if minimum is not None and (number <= minimum if exclusive_minimum else number < minimum):
            self.error(field, "range", f"must be {'>' if exclusive_minimum else '>='} {minimum:g}")
            return None
        if maximum is not None and number > maximum:
            self.error(field, "range", f"must be <= {maximum:g}")
            return None
        return number

    def integer(
        self,
        field: str,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._get(field, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            # 30.0 from a JSON encoder that writes floats is still an integer.
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                value = int(value)
            else:
                self.error(field, "type", "must be an integer")
                return None
        if minimum is not None and value < minimum:
            self.error(field, "range", f"must be >= {minimum}")
            return None
        if maximum is not None and value > maximum:
            self.error(field, "range", f"must be <= {maximum}")
            return None
        return value

    def string_list(
        self,
        field: str,
        *,
        pattern: re.Pattern[str],
        max_items: int,
        what: str,
    ) -> tuple[str, ...] | None:
        value = self._get(field, False)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(field, "type", "must be a list of strings")
            return None
        if len(value) > max_items:
            self.error(field, "too_long", f"must have at most {max_items} items")
            return None
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{field}[{index}]", "type", "must be a string")
                return None
            if not pattern.fullmatch(item):
                self.error(f"{field}[{index}]", "format", f"must be {what}")
                return None
            if item in seen:
                self.error(f"{field}[{index}]", "duplicate", "is listed twice")
                return None
            seen.add(item)
        return tuple(value)

    def text(self, field: str, *, max_length: int) -> str | None:
        value = self.string(field, max_length=max_length)
        if value is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            self.error(field, "format", "must not contain control characters")
            return None
        return value
