"""Venue parsers, symbols, timestamps and payload models: property-based, no sockets."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.marketdata.base import AdapterConfig
from bridge.marketdata.binance import BinanceProtocol
from bridge.marketdata.connection import VENUES, backoff_delay
from bridge.marketdata.models import BookUpdate, PayloadError, TopOfBook, Trade, top_from_payload
from bridge.marketdata.symbols import SymbolError, to_canonical, to_venue
from bridge.marketdata.times import iso_to_us, ms_to_us, seconds_to_us

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
SYMBOL = {
    "binance": "BTCUSDT",
    "kraken": "XBT/USD",
    "coinbase": "BTC-USD",
    "bybit": "BTCUSDT",
    "okx": "BTC-USDT",
}
wire_decimal = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000"), places=8).map(
    lambda d: format(d, "f")
)


def protocol(venue: str):  # type: ignore[no-untyped-def]
    cls = VENUES[venue][0]
    return cls([SYMBOL[venue]], AdapterConfig(venue=venue, symbols=(SYMBOL[venue],)))


@pytest.mark.parametrize("venue", sorted(VENUES))
@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_receive_never_raises_on_arbitrary_json(venue: str, value: object) -> None:
    proto = protocol(venue)
    proto.receive(orjson.dumps(value), 1)
    proto.receive(b"\xff not json", 1)
    for event in proto.events_received():
        assert isinstance(event, Trade | BookUpdate) or event.venue == venue


@settings(deadline=None)
@given(
    bids=st.lists(st.tuples(wire_decimal, wire_decimal), max_size=20),
    asks=st.lists(st.tuples(wire_decimal, wire_decimal), max_size=20),
)
def test_binance_depth_event_round_trips_exact_decimals(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> None:
    proto = BinanceProtocol(["BTCUSDT"], AdapterConfig(venue="binance", symbols=("BTCUSDT",)))
    proto.receive(
        orjson.dumps({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 5, "u": 6, "b": [], "a": []}), 1
    )
    proto.receive_snapshot("BTCUSDT", orjson.dumps({"lastUpdateId": 5, "bids": [], "asks": []}), 2)
    event = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 7, "u": 7, "b": bids, "a": asks}
    proto.receive(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": event}), 3)
    updates = [e for e in proto.events_received() if isinstance(e, BookUpdate) and e.sequence == 7]
    assert updates[0].bids == tuple((Decimal(p), Decimal(q)) for p, q in bids)
    assert updates[0].asks == tuple((Decimal(p), Decimal(q)) for p, q in asks)


@given(st.sampled_from(["USDT", "USDC", "EUR", "BTC", "FDUSD"]), st.from_regex(r"[A-Z]{2,6}", fullmatch=True))
def test_glued_symbols_round_trip(quote: str, base: str) -> None:
    canonical = to_canonical("binance", base + quote)
    assert to_venue("binance", canonical) == base + quote


def test_symbol_mapping_per_venue() -> None:
    assert to_canonical("kraken", "XBT/USD") == "BTC-USD" and to_venue("kraken", "BTC-USD") == "XBT/USD"
    assert to_canonical("okx", "BTC-USD-220527") == "BTC-USD-220527"
    assert to_venue("bybit", "eth-usdt") == "ETHUSDT"
    with pytest.raises(SymbolError):
        to_venue("binance", "BTC/USDT!")
    with pytest.raises(SymbolError):
        to_canonical("nasdaq", "AAPL")


def test_timestamps() -> None:
    assert ms_to_us(1633998512068) == 1633998512068000
    assert seconds_to_us("1618678142.557535") == 1618678142557535
    assert iso_to_us("2023-02-09T20:19:35.39625135Z") == 1675973975396251
    assert iso_to_us("1970-01-01T00:00:00Z") == 0
    for bad in ("2023-02-09T20:19:35+02:00", "yesterday", 5):
        with pytest.raises(PayloadError):
            iso_to_us(bad)


@given(
    bid=st.none() | wire_decimal,
    ask=st.none() | wire_decimal,
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_top_payload_round_trips(bid: str | None, ask: str | None, ts: int) -> None:
    top = TopOfBook(
        venue="mt5:50123",
        symbol="EUR-USD",
        bid_price=None if bid is None else Decimal(bid),
        bid_size=None,
        ask_price=None if ask is None else Decimal(ask),
        ask_size=None,
        exchange_ts=ts,
        receive_ts=ts,
    )
    assert top_from_payload(orjson.loads(orjson.dumps(top.to_payload()))) == top


@pytest.mark.parametrize(
    "payload",
    [
        {"venue": "x", "symbol": "Y", "receiveTs": 1, "extra": 1},
        {"venue": "x", "symbol": "Y", "receiveTs": 1, "bidPrice": 1.5},
        {"venue": "x", "symbol": "Y", "receiveTs": 1, "bidPrice": "-1"},
        {"venue": "x", "symbol": "Y", "receiveTs": 1, "bidPrice": "NaN"},
        {"venue": "", "symbol": "Y", "receiveTs": 1},
        {"venue": "x", "symbol": "Y"},
    ],
)
def test_top_payload_rejects_bad_input(payload: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        top_from_payload(payload)


@given(st.integers(min_value=0, max_value=100), st.floats(min_value=0, max_value=1))
def test_backoff_is_full_jitter_below_the_cap(attempt: int, draw: float) -> None:
    delay = backoff_delay(attempt, 0.5, 30.0, lambda: draw)
    assert 0 <= delay <= min(30.0, 0.5 * 2**attempt)


def _examples(venue: str) -> list[object]:
    import json

    from tests.support.marketdata import FIXTURES

    doc = json.loads((FIXTURES / f"{venue}.json").read_text())
    found = []
    for key in ("trade_examples", "book_snapshot_examples", "book_update_examples"):
        for example in doc[key]:
            if "message" in example:
                found.append(example["message"])
    return found


def _mutate(value: object, path: list[int], replacement: object) -> object:
    if not path:
        return replacement
    if isinstance(value, dict) and value:
        keys = sorted(value)
        key = keys[path[0] % len(keys)]
        return {**value, key: _mutate(value[key], path[1:], replacement)}
    if isinstance(value, list) and value:
        i = path[0] % len(value)
        return [*value[:i], _mutate(value[i], path[1:], replacement), *value[i + 1 :]]
    return replacement


@pytest.mark.parametrize("venue", sorted(VENUES))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_documented_frames_never_raise(venue: str, data: st.DataObject) -> None:
    from tests.support.marketdata import require_fixtures

    require_fixtures()
    examples = _examples(venue)
    message = data.draw(st.sampled_from(examples))
    path = data.draw(st.lists(st.integers(min_value=0, max_value=50), max_size=5))
    replacement = data.draw(json_values)
    proto = protocol(venue)
    proto.receive(orjson.dumps(message), 1)
    proto.receive(orjson.dumps(_mutate(message, path, replacement)), 2)
    proto.events_received()
