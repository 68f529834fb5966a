"""Microbenchmark of untrusted-message validation: ``mtbridge bench parse``.

The hub spends a measurable share of one core decoding envelopes and validating signals and trade
events, so these per-call costs are tracked on their own, away from sockets and the database. Each
figure is the best of ``--repeat`` timeit runs, in microseconds per call, on valid input (the hot path).
Pin it for stable figures: ``taskset -c 1 .venv/bin/mtbridge bench parse``.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import orjson

from bridge.protocol.envelope import Encoding, decode, from_object
from bridge.protocol.events import parse_event
from bridge.protocol.signals import parse_signal

__all__ = ["CASES", "DEFAULT_MIN_SECONDS", "DEFAULT_REPEAT", "measure", "run_parse"]

#: timeit runs per case (the best is kept) and the shortest duration of one run: 5 x 0.2 s keeps a
#: case near one second and the best of five past most of a shared machine's noise.
DEFAULT_REPEAT = 5
DEFAULT_MIN_SECONDS = 0.2

NOW = 1_700_000_000.0
EVENT_ID = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
SIGNAL_ID = "0b7c6a3e-8f0e-4c55-9d7e-2d3f1f0a9b11"

#: A deal as an EA reports it (docs/protocol.md, "Trade events").
DEAL: dict[str, Any] = {
    "id": EVENT_ID,
    "kind": "deal",
    "account": "50123",
    "ts": 1_700_000_000_000,
    "signalId": SIGNAL_ID,
    "ticket": 991,
    "symbol": "EURUSD",
    "side": "buy",
    "entry": "in",
    "volume": 0.1,
    "price": 1.0801,
}
#: The accepted example of docs/protocol.md, "Signals".
SIGNAL: dict[str, Any] = {
    "id": SIGNAL_ID,
    "strategy": "alpha",
    "accounts": ["50123"],
    "symbol": "EURUSD",
    "action": "open",
    "side": "buy",
    "orderType": "market",
    "volume": 0.10,
    "sl": 1.0700,
    "tp": 1.0900,
    "ttl": 30,
}
ENVELOPE: dict[str, Any] = {"type": "trade.event", "requestId": "9", "payload": DEAL}
ENVELOPE_JSON = orjson.dumps(ENVELOPE)
ENVELOPE_MSGPACK: bytes = msgpack.packb(ENVELOPE, use_bin_type=True)
# Bound once, as the hub holds each connection's encoding (an Enum class attribute lookup costs ~0.1 µs).
JSON = Encoding.JSON
MSGPACK = Encoding.MSGPACK

_EVENT = parse_event(DEAL, NOW)
_SIGNAL = parse_signal(SIGNAL, NOW)

#: (name, call) pairs; every call works on the same valid input each time.
CASES: tuple[tuple[str, Callable[[], object]], ...] = (
    ("decode trade.event (json)", lambda: decode(ENVELOPE_JSON, JSON)),
    ("decode trade.event (msgpack)", lambda: decode(ENVELOPE_MSGPACK, MSGPACK)),
    # decode (json) minus orjson.loads: the shape check and the Envelope, the part this package owns.
    ("from_object trade.event", lambda: from_object(ENVELOPE, check_values=False)),
    ("parse_event deal", lambda: parse_event(DEAL, NOW)),
    ("parse_signal example", lambda: parse_signal(SIGNAL, NOW)),
    ("TradeEvent.to_payload", _EVENT.to_payload),
    ("Signal.to_payload", _SIGNAL.to_payload),
)


def measure(call: Callable[[], object], repeat: int, min_seconds: float) -> float:
    """Best per-call time in microseconds over ``repeat`` runs of at least ``min_seconds`` each."""
    timer = timeit.Timer(call)
    number = 1
    while timer.timeit(number) < min_seconds:
        number *= 2
    return min(timer.repeat(repeat, number)) / number * 1e6


def run_parse(
    repeat: int = DEFAULT_REPEAT, min_seconds: float = DEFAULT_MIN_SECONDS, only: str | None = None
) -> Iterator[tuple[str, float]]:
    """Yield (case name, µs per call) for each case, or those whose name contains ``only``."""
    for name, call in CASES:
        if only and only not in name:
            continue
        yield name, measure(call, repeat, min_seconds)
