"""Seeded synthetic book levels and changes for the venues with no recorded session in the fixtures
(Bybit, Coinbase).

Not here: the venues' message shapes (:mod:`bridge.marketdata.mock.bybit`,
:mod:`bridge.marketdata.mock.coinbase`).
"""

from __future__ import annotations

import random
from decimal import Decimal

__all__ = ["synthetic_change", "synthetic_levels"]


def synthetic_levels(rng: random.Random, mid: Decimal, count: int) -> tuple[list[list[str]], list[list[str]]]:
    tick = Decimal("0.01")
    bids = [[str(mid - tick * (i + 1)), str(Decimal(rng.randint(1, 5000)) / 1000)] for i in range(count)]
    asks = [[str(mid + tick * (i + 1)), str(Decimal(rng.randint(1, 5000)) / 1000)] for i in range(count)]
    return bids, asks


def synthetic_change(rng: random.Random, mid: Decimal) -> tuple[str, list[str]]:
    side = rng.choice(("bid", "ask"))
    offset = Decimal("0.01") * rng.randint(1, 40)
    price = mid - offset if side == "bid" else mid + offset
    size = "0" if rng.random() < 0.3 else str(Decimal(rng.randint(1, 5000)) / 1000)
    return side, [str(price), size]
