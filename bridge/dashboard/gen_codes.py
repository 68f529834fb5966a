"""Generate ``static/codes.json`` from the protocol registry, so JavaScript never hand-copies codes.

Run ``python -m bridge.dashboard.gen_codes`` after changing :mod:`bridge.protocol.codes`; a test
fails while the committed file and the registry disagree. ``--check`` exits 1 on a stale file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.protocol import codes

__all__ = ["CODES_PATH", "main", "registry", "render"]

CODES_PATH = Path(__file__).resolve().parent / "static" / "codes.json"


def registry() -> dict[str, Any]:
    """The close-code, error and rejection-reason registries as plain JSON-ready data."""
    return {
        "generatedFrom": "bridge/protocol/codes.py",
        "reconnectRange": [codes.RECONNECT_RANGE.start, codes.RECONNECT_RANGE.stop - 1],
        "terminalRange": [codes.TERMINAL_RANGE.start, codes.TERMINAL_RANGE.stop - 1],
        "closeCodes": {
            str(d.code): {"reason": d.reason, "reconnect": d.reconnect, "advice": d.advice}
            for d in sorted(codes.CLOSE_CODES.values(), key=lambda d: int(d.code))
        },
        "errors": {e.code: {"retryable": e.retryable, "advice": e.advice} for e in codes.ERRORS.values()},
        "rejectReasons": {
            r.code: {"label": r.label, "limit": r.limit, "advice": r.advice}
            for r in codes.REJECT_REASONS.values()
        },
    }


def render() -> str:
    """The exact text of codes.json (stable key order, trailing newline)."""
    return json.dumps(registry(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if codes.json is stale")
    parser.add_argument("--output", type=Path, default=CODES_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m bridge.dashboard.gen_codes", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
