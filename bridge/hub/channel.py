"""A channel's subscribers on this node, indexed for targeted fan-out, and frame building.

The targeting rule itself (which accounts and groups a publication is for) is
``bridge/protocol/targeting.py``; here is the index that applies it without a scan. Not here: the
registry of channels and their lifecycle (``hub.py``), a channel's policy (``bridge/protocol/channels.py``),
delivering to the subscribers (``fanout.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.auth.tokens import Claims
from bridge.hub.connection import Connection
from bridge.protocol.channels import NamespacePolicy, Role
from bridge.protocol.envelope import Encoding, encode_json, encode_msgpack
from bridge.protocol.framing import OP_BINARY, OP_TEXT, data_frame
from bridge.protocol.targeting import Targets, payload_accepts

__all__ = ["Channel", "frame_for", "targets_accept"]


class Channel:
    """Subscribers of one channel, split by encoding so each frame is built only if needed.

    Subscribers are also indexed by what a targeted publication (a signal for some accounts or
    groups) is matched against: EAs by each account and group their token holds, everyone else
    (engines, dashboards, EAs holding ``*``) apart. A signal for one account among 1,000 EAs then
    costs one dict lookup, not 1,000 claim checks: about 6 us instead of 620 us per publication
    (``mtbridge bench targeted``, docs/benchmarks.md).
    """

    __slots__ = (
        "by_account",
        "by_group",
        "everyone",
        "floors",
        "indexed",
        "json_subs",
        "msgpack_subs",
        "name",
        "policy",
        "recovering",
        "seq",
        "watched",
    )

    def __init__(self, name: str, policy: NamespacePolicy) -> None:
        self.name = name
        self.policy = policy
        self.json_subs: dict[Connection, None] = {}
        self.msgpack_subs: dict[Connection, None] = {}
        # Subscribers every targeted publication reaches: not EAs, or EAs holding "*".
        self.everyone: dict[Connection, None] = {}
        self.by_account: dict[str, dict[Connection, None]] = {}
        self.by_group: dict[str, dict[Connection, None]] = {}
        # The (accounts, groups) each indexed EA was filed under, so removal needs no claims.
        self.indexed: dict[Connection, tuple[frozenset[str], frozenset[str]]] = {}
        # Connections catching up from history: live publications wait here until they are done.
        self.recovering: dict[Connection, list[tuple[int, dict[str, Any], Targets | None]]] = {}
        # Highest offset each recovered connection already got from its replay: a publication
        # committed before the replay read the log may be fanned out after it (its publishing
        # coroutine can resume late), and must not reach that connection twice.
        # Entries expire after FLOOR_TTL: a publishing coroutine resumes within moments.
        self.floors: dict[Connection, tuple[int, float]] = {}
        self.seq = 0
        #: Completes once the broker delivers this channel's publications from other nodes.
        self.watched: asyncio.Future[None] | None = None

    def subs_for(self, conn: Connection) -> dict[Connection, None]:
        return self.json_subs if conn.encoding is Encoding.JSON else self.msgpack_subs

    def add(self, conn: Connection) -> None:
        """Make ``conn`` a live subscriber, filed under its token's accounts and groups."""
        self.subs_for(conn)[conn] = None
        claims = conn.claims
        if claims is None or claims.role is not Role.EA or "*" in claims.accounts:
            self.everyone[conn] = None
            return
        self.indexed[conn] = (claims.accounts, claims.groups)
        for account in claims.accounts:
            self.by_account.setdefault(account, {})[conn] = None
        for group in claims.groups:
            self.by_group.setdefault(group, {})[conn] = None

    def discard(self, conn: Connection) -> None:
        """Remove ``conn`` from every registry of this channel (a no-op if it is in none)."""
        self.json_subs.pop(conn, None)
        self.msgpack_subs.pop(conn, None)
        self.everyone.pop(conn, None)
        filed = self.indexed.pop(conn, None)
        if filed is not None:
            for index, keys in ((self.by_account, filed[0]), (self.by_group, filed[1])):
                for key in keys:
                    members = index.get(key)
                    if members is not None:
                        members.pop(conn, None)
                        if not members:
                            del index[key]

    def reindex(self, conn: Connection) -> None:
        """File a live subscriber again after its claims changed (``auth.refresh``)."""
        if conn in self.json_subs or conn in self.msgpack_subs:
            self.discard(conn)
            self.add(conn)

    def targeted(self, targets: Targets) -> dict[Connection, None]:
        """The live subscribers a publication for ``targets`` reaches (what ``Targets.accepts`` picks
        among EAs, plus every subscriber that is not an EA), each once."""
        reached = dict(self.everyone)
        by_account, by_group = self.by_account, self.by_group
        for account in targets.accounts:
            members = by_account.get(account)
            if members:
                reached.update(members)
        for group in targets.groups:
            members = by_group.get(group)
            if members:
                reached.update(members)
        return reached

    def reached(self, targets: Targets | None) -> dict[Connection, None]:
        """The live subscribers a publication for ``targets`` (None: everyone) reaches, each once."""
        return self.targeted(targets) if targets is not None else self.json_subs | self.msgpack_subs

    @property
    def empty(self) -> bool:
        return not (self.json_subs or self.msgpack_subs or self.recovering)

    def __len__(self) -> int:
        return len(self.json_subs) + len(self.msgpack_subs)


def frame_for(message: dict[str, Any], encoding: Encoding) -> bytes:
    if encoding is Encoding.JSON:
        return data_frame(encode_json(message), OP_TEXT)
    return data_frame(encode_msgpack(message), OP_BINARY)


def targets_accept(payload: dict[str, Any], claims: Claims) -> bool:
    """Targeting of a stored signal, for replay (live fan-out gets a Targets object)."""
    return payload_accepts(payload, claims.accounts, claims.groups)
