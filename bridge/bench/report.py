"""Tables for the terminal, ratios between targets, and the machine description for the JSON."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "format_table", "machine_info", "ratios"]

#: Columns each scenario's table shows (the JSON holds every field).
COLUMNS: Mapping[str, Sequence[str]] = {
    "fanout": (
        "target", "subscribers", "deliveries_per_s", "msgs_per_s", "server_cpu", "server_core_steal",
        "loadgen_cpu", "p50_ms", "p99_ms", "disconnected", "errors",
    ),
    "latency": (
        "target", "encoding", "subscribers", "rate", "deliveries_per_s", "kept_up", "p50_ms", "p99_ms",
        "p999_ms", "max_ms", "server_cpu", "loadgen_cpu", "disconnected",
    ),
    "connections": (
        "target", "connections", "kb_per_connection", "rss_before_mb", "rss_after_mb", "setup_s",
        "setup_per_s", "setup_server_cpu_s", "disconnected",
    ),
    "targeted": (
        "target", "subscribers", "publications_per_s", "us_per_publication", "scan_us_per_publication",
    ),
    "signals": (
        "database", "eas", "offered_per_s", "delivered_per_s", "acked_per_s", "executed_per_s", "p50_ms",
        "p99_ms", "server_cpu", "server_core_steal", "cpu_probe_ms", "errors",
    ),
    "ingest": (
        "database", "connections", "events_per_s", "offered_per_s", "server_cpu", "server_core_steal",
        "cpu_probe_ms", "errors",
    ),
    "cluster": (
        "measure", "where", "rate", "subscribers", "eas", "received", "committed", "complete",
        "signals_per_s", "p50_ms", "p99_ms", "catch_up_s", "gap_fills", "gap_filled",
    ),
}  # fmt: skip


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if value is None:
        return "-"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        out = []
        for value, width, col in zip(row, widths, columns, strict=True):
            numeric = isinstance(raw.get(col), int | float) and not isinstance(raw.get(col), bool)
            out.append(value.rjust(width) if numeric else value.ljust(width))
        lines.append("  ".join(out))
    return "\n".join(lines)


def ratios(
    rows: Sequence[Mapping[str, Any]], *, key: str, figure: str, hub: str = "mtbridge"
) -> list[dict[str, Any]]:
    """hub figure / peer figure for each peer measured at the same key (e.g. subscribers)."""
    out: list[dict[str, Any]] = []
    hub_rows = {r[key]: r for r in rows if r.get("target") == hub}
    for row in rows:
        if row.get("target") == hub or row[key] not in hub_rows:
            continue
        peer_value = row.get(figure)
        hub_value = hub_rows[row[key]].get(figure)
        if (
            not isinstance(peer_value, int | float)
            or not isinstance(hub_value, int | float)
            or not peer_value
        ):
            continue
        out.append(
            {"peer": row["target"], key: row[key], figure: figure, "ratio": round(hub_value / peer_value, 2)}
        )
    return out


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }
