"""Local fake exchanges speaking each venue's documented protocol, for tests and benchmarks.

One module per venue, like the adapters: :mod:`~bridge.marketdata.mock.binance`,
:mod:`~bridge.marketdata.mock.kraken`, :mod:`~bridge.marketdata.mock.okx` replay the recorded
sessions; :mod:`~bridge.marketdata.mock.bybit` and :mod:`~bridge.marketdata.mock.coinbase` play a
seeded synthetic feed (:mod:`~bridge.marketdata.mock.synthetic`). What they share, the server, the
feed playback, the fakes' own books and the faults, is in :mod:`~bridge.marketdata.mock.server`.

:class:`Faults` injects the failures the adapters must survive: dropped frames (gaps), corrupted
checksums, rate-limit rejections and HTTP 429s; :meth:`FakeExchange.drop_connections`,
:meth:`FakeExchange.ping_all` and :meth:`FakeExchange.send_forced_notice` cover dropped connections,
server pings and forced disconnects.

Not here: the adapters under test (:mod:`bridge.marketdata.connection` and the venue modules).
"""

from __future__ import annotations

from bridge.marketdata.mock.binance import BinanceFake
from bridge.marketdata.mock.bybit import BybitFake
from bridge.marketdata.mock.coinbase import CoinbaseFake
from bridge.marketdata.mock.kraken import KrakenFake
from bridge.marketdata.mock.okx import OkxFake
from bridge.marketdata.mock.server import FakeBook, FakeExchange, Faults, load_recorded

__all__ = [
    "FAKES",
    "RECORDED_SYMBOLS",
    "BinanceFake",
    "BybitFake",
    "CoinbaseFake",
    "FakeBook",
    "FakeExchange",
    "Faults",
    "KrakenFake",
    "OkxFake",
    "load_recorded",
]

FAKES: dict[str, type[FakeExchange]] = {
    "binance": BinanceFake,
    "kraken": KrakenFake,
    "okx": OkxFake,
    "bybit": BybitFake,
    "coinbase": CoinbaseFake,
}

#: The symbols each recorded session (tests/fixtures/exchanges/recorded) subscribes to, in the
#: venue's own spelling: replaying a session means subscribing to exactly these.
RECORDED_SYMBOLS: dict[str, tuple[str, ...]] = {
    "kraken": (
        "WAVES/EUR",
        "XMR/USD",
        "KSM/XBT",
        "GRT/ETH",
        "SC/EUR",
        "ETH/CHF",
        "OCEAN/XBT",
        "OMG/USD",
        "XBT/CHF",
        "ADA/XBT",
    ),
    "okx": ("BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"),
    "binance": ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"),
}
