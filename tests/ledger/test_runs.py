"""How the ledger splits an iteration's acks and trade events into store calls (pure, no sockets)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.ledger.service import _Pending, _runs
from bridge.protocol.events import DeliveryStatus
from bridge.store import StatusUpdate


class Conn:
    """Stands for a hub connection: only its identity matters here."""


def ack(conn: Any, n: int) -> _Pending[Any]:
    return _Pending(conn, f"k{n}", StatusUpdate(f"s{n}", "1", DeliveryStatus.ACKED, n))


def report(conn: Any, n: int) -> _Pending[Any]:
    return _Pending(conn, f"e{n}", ("event", n))


def names(runs: list[list[_Pending[Any]]]) -> list[list[str | None]]:
    return [[p.request_id for p in run] for run in runs]


def test_an_ea_that_acks_and_reports_each_signal_keeps_its_order() -> None:
    c = Conn()
    assert names(_runs([ack(c, 1), report(c, 1), ack(c, 2), report(c, 2)])) == [
        ["k1"],
        ["e1"],
        ["k2"],
        ["e2"],
    ]


def test_many_eas_acking_and_reporting_make_two_runs() -> None:
    eas = [Conn() for _ in range(10)]
    batch = [p for n, c in enumerate(eas) for p in (ack(c, n), report(c, n))]
    runs = _runs(batch)
    assert names(runs) == [[f"k{n}" for n in range(10)], [f"e{n}" for n in range(10)]]


def test_an_ack_after_another_connections_report_joins_the_phase() -> None:
    a, b = Conn(), Conn()
    assert names(_runs([report(a, 1), ack(b, 2)])) == [["k2"], ["e1"]]
    assert names(_runs([report(a, 1), ack(a, 2)])) == [["e1"], ["k2"]]


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60))
def test_runs_are_of_one_kind_and_keep_every_connections_order(spec: list[tuple[int, bool]]) -> None:
    conns: list[Any] = [Conn() for _ in range(5)]
    batch = [(ack if is_ack else report)(conns[c], n) for n, (c, is_ack) in enumerate(spec)]
    runs = _runs(batch)
    assert all(runs)
    assert all(len({isinstance(p.item, StatusUpdate) for p in run}) == 1 for run in runs)
    applied = [p for run in runs for p in run]
    assert sorted(map(id, applied)) == sorted(map(id, batch))
    for conn in conns:
        assert [p for p in applied if p.conn is conn] == [p for p in batch if p.conn is conn]
    kinds = [isinstance(run[0].item, StatusUpdate) for run in runs]
    assert all(a != b for a, b in itertools.pairwise(kinds))  # neighbours differ in kind
