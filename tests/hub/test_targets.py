"""Targeted fan-out: a signal reaches the EAs whose token holds one of its accounts or groups (or
``*``) and every subscriber that is not an EA; the channel finds them in its index, and the index
always agrees with checking every subscriber's claims, through subscribe, refresh and disconnect."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.auth.tokens import Claims
from bridge.hub.connection import Connection
from bridge.hub.hub import Channel, Hub
from bridge.protocol.channels import DEFAULT_POLICIES, Role
from bridge.protocol.envelope import Encoding
from bridge.protocol.targeting import Targets
from tests.support.fakes import FakeSink, make_hub, token

ACCOUNTS = ["1", "2", "3", "*"]
GROUPS = ["g1", "g2"]
NAME = "signals:alpha"


def _scan(subs: list[Connection], targets: Targets) -> set[Connection]:
    """What fan-out did before the index: check every subscriber's claims."""
    out = set()
    for c in subs:
        claims = c.claims
        is_ea = claims is not None and claims.role is Role.EA
        if is_ea and claims is not None and not targets.accepts(claims.accounts, claims.groups):
            continue
        out.add(c)
    return out


subscriber = st.tuples(
    st.sampled_from([Role.EA, Role.EA, Role.ENGINE, Role.ADMIN]),
    st.frozensets(st.sampled_from(ACCOUNTS), max_size=3),
    st.frozensets(st.sampled_from(GROUPS), max_size=2),
    st.sampled_from(list(Encoding)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(subscriber, max_size=8),
    st.lists(
        st.tuples(
            st.frozensets(st.sampled_from(ACCOUNTS[:3]), max_size=3),
            st.frozensets(st.sampled_from(GROUPS), max_size=2),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(min_value=0, max_value=7), max_size=8),
)
def test_index_picks_what_the_claim_check_picks(
    subs: list[tuple[Role, frozenset[str], frozenset[str], Encoding]],
    targets: list[tuple[frozenset[str], frozenset[str]]],
    leaving: list[int],
) -> None:
    hub = make_hub()
    ch = Channel(NAME, DEFAULT_POLICIES["signals"])
    conns = []
    for i, (role, accounts, groups, encoding) in enumerate(subs):
        c = Connection(hub, f"c{i}", FakeSink(), encoding, "ip", 0.0)
        c.claims = Claims(sub=f"s{i}", role=role, exp=time.time() + 60, accounts=accounts, groups=groups)
        ch.add(c)
        conns.append(c)
    live = list(conns)
    for step in [None, *leaving]:
        if step is not None and step < len(conns):
            ch.discard(conns[step])
            if conns[step] in live:
                live.remove(conns[step])
        for accounts, groups in targets:
            t = Targets(accounts, groups)
            assert set(ch.targeted(t)) == _scan(live, t)
    for c in conns:
        ch.discard(c)
    assert not (ch.json_subs or ch.msgpack_subs or ch.everyone or ch.by_account or ch.by_group or ch.indexed)


def _ea(hub: Hub, sink: FakeSink, accounts: list[str]) -> Connection:
    c = hub.connect(sink, Encoding.JSON, "ip")
    assert hub.authenticate(c, token(role="ea", sub="ea-1", accounts=accounts, subscribe=[NAME]), None)
    # A durable subscription needs a store; file it as the end of recovery does.
    hub._channel(NAME, hub.policy_for(NAME)).add(c)
    c.subscriptions.add(NAME)
    return c


def _offsets(sink: FakeSink) -> list[int]:
    return [m["offset"] for m in sink.messages() if m["type"] == "message"]


async def test_refresh_files_an_ea_under_its_new_accounts() -> None:
    hub = make_hub()
    await hub.start()
    sink = FakeSink()
    c = _ea(hub, sink, ["1"])
    hub.fanout(NAME, 1, {"n": 1}, Targets(frozenset({"1"}), frozenset()))
    hub.fanout(NAME, 2, {"n": 2}, Targets(frozenset({"2"}), frozenset()))
    await asyncio.sleep(0)
    assert _offsets(sink) == [1]
    refresh = token(role="ea", sub="ea-1", accounts=["2"], subscribe=[NAME])
    request = b'{"type":"auth.refresh","requestId":"r","payload":{"token":"%s"}}' % refresh.encode()
    hub.receive(c, request, False)
    await asyncio.sleep(0)
    assert any(m["type"] == "result" and m["requestId"] == "r" for m in sink.messages())
    sink.written.clear()
    hub.fanout(NAME, 3, {"n": 3}, Targets(frozenset({"1"}), frozenset()))
    hub.fanout(NAME, 4, {"n": 4}, Targets(frozenset({"2"}), frozenset()))
    await asyncio.sleep(0)
    assert _offsets(sink) == [4]
    ch = hub.channels[NAME]
    assert set(ch.by_account) == {"2"}
    hub.disconnected(c)
    assert NAME not in hub.channels  # nothing left behind in any index
    await hub.stop(0)


async def test_group_wildcard_and_non_ea_subscribers_are_reached() -> None:
    hub = make_hub()
    await hub.start()
    sinks = {k: FakeSink() for k in ("one", "group", "star", "other", "admin")}
    ch = hub._channel(NAME, hub.policy_for(NAME))
    claims = {
        "one": token(role="ea", sub="a", accounts=["1"]),
        "group": token(role="ea", sub="b", accounts=["9"], groups=["g1"]),
        "star": token(role="ea", sub="c", accounts=["*"]),
        "other": token(role="ea", sub="d", accounts=["2"]),
        "admin": token(role="admin", sub="e"),
    }
    conns = {}
    for key, sink in sinks.items():
        c = conns[key] = hub.connect(sink, Encoding.MSGPACK if key == "group" else Encoding.JSON, "ip")
        assert hub.authenticate(c, claims[key], None)
        ch.add(c)
        c.subscriptions.add(NAME)
    for s in sinks.values():
        s.written.clear()
    assert hub.fanout(NAME, 7, {"n": 7}, Targets(frozenset({"1"}), frozenset({"g1"}))) == 4
    await asyncio.sleep(0)
    assert {k for k, s in sinks.items() if _offsets(s) == [7]} == {"one", "group", "star", "admin"}
    for c in conns.values():
        hub.disconnected(c)
    assert NAME not in hub.channels
    await hub.stop(0)
