"""The CSV export of stored trade events: its columns and the cell rule that keeps spreadsheets safe.

Not here: the REST endpoint that streams the export (:mod:`bridge.api.events`) or the event schema
(:mod:`bridge.protocol.events`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CSV_FORMULA_PREFIXES", "EVENT_CSV_COLUMNS", "csv_cell", "event_csv_row"]

#: Column order of the CSV export; kind-specific values beyond these go into ``data`` as JSON by the caller.
EVENT_CSV_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "kind",
    "account",
    "ts",
    "signalId",
    "state",
    "ticket",
    "symbol",
    "side",
    "volume",
    "price",
    "profit",
    "balance",
    "equity",
    "comment",
)
#: First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a cell as a
#: formula or a command: OWASP's list (``=``, ``+``, ``-``, ``@``, tab, carriage return) and line feed.
CSV_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: object) -> str:
    """One CSV cell. A string that starts like a formula gets a leading ``'`` (OWASP, "CSV
    injection"): symbols such as ``+1+1`` and free-text comments are accepted from EAs and would
    otherwise run as formulas when an operator opens the export. Numbers are written as they are,
    so a negative ``profit`` stays a number."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(CSV_FORMULA_PREFIXES) else value
    return str(value)


def event_csv_row(payload: Mapping[str, Any]) -> list[str]:
    """One CSV row (per :data:`EVENT_CSV_COLUMNS`) from a stored event payload; missing cells are empty,
    text cells are neutralised by :func:`csv_cell`."""
    return [csv_cell(payload.get(column)) for column in EVENT_CSV_COLUMNS]
