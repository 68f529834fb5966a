"""The control plane's pure rules: key names, bus messages, health aggregation, lock keys.

No I/O here: :mod:`bridge.cluster.presence`, :mod:`bridge.cluster.control` and
:mod:`bridge.cluster.leader` are the thin Redis and PostgreSQL shells around these rules, and every
rule is tested without them (``tests/cluster/test_model.py``).

Names used throughout:

- **node**: the operator's name for a hub process (``--node-id``, default ``<hostname>-<pid>``); it is
  what the connection list, metrics and logs show.
- **instance**: one start of a node, ``<node>#<12 hex>``. Presence entries and subject claims belong
  to an instance, so a node restarted under the same name never inherits (or is blocked by) the claims
  of its previous life: those expire with the old instance's liveness key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "BUS_VERSION",
    "MAX_BUS_MESSAGE",
    "BusError",
    "BusMessage",
    "Keys",
    "advisory_key",
    "aggregate_health",
    "decode_bus",
    "encode_bus",
    "new_instance",
    "node_of",
    "online_accounts",
]

#: Version of the bus envelope; a node ignores (and counts) messages of another version, so a
#: rolling upgrade that changes the envelope never makes an old node act on what it misreads.
BUS_VERSION = 1
#: Largest bus message accepted (bytes). Commands are small (a revocation, a connection id); the
#: largest is a reply carrying one node's connection list, which REST does not route over the bus.
MAX_BUS_MESSAGE = 1 << 20
_OP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz._-")
_MAX_OP = 32
_MAX_NAME = 128


def new_instance(node: str) -> str:
    """A fresh instance id for ``node`` (one per start)."""
    return f"{node}#{secrets.token_hex(6)}"


def node_of(instance: str) -> str:
    """The node name of an instance id."""
    return instance.rsplit("#", 1)[0]


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key and channel of the control plane, under one prefix (default ``mtb:ctl:``; the
    data path's channels use ``mtb:pub:``).

    - ``alive:<instance>``: a string with a TTL, refreshed by the instance's heartbeat. Its existence
      *is* the instance's liveness, measured on Redis's clock (no skew between nodes).
    - ``instances``: the set of instances that have not been reaped yet (to enumerate them).
    - ``conns:<instance>``: hash connection id -> presence entry (JSON).
    - ``claims:<instance>``: set of subjects the instance holds claims in (what to reap).
    - ``subject:<sub>``: set of ``<instance>|<connection id>`` claims on a subject (the cluster cap).
    - ``health:<instance>``: the instance's latest health sample (JSON, with a TTL).
    - ``control``: the pub/sub channel of the control bus.
    """

    prefix: str = "mtb:ctl:"

    def alive(self, instance: str) -> str:
        return f"{self.prefix}alive:{instance}"

    @property
    def instances(self) -> str:
        return f"{self.prefix}instances"

    def conns(self, instance: str) -> str:
        return f"{self.prefix}conns:{instance}"

    def claims(self, instance: str) -> str:
        return f"{self.prefix}claims:{instance}"

    def subject(self, sub: str) -> str:
        return f"{self.prefix}subject:{sub}"

    def health(self, instance: str) -> str:
        return f"{self.prefix}health:{instance}"

    @property
    def bus(self) -> str:
        return f"{self.prefix}control"

    def owned(self, instance: str) -> list[str]:
        """The keys that belong to ``instance`` alone (deleted when it stops or is reaped)."""
        return [self.alive(instance), self.conns(instance), self.claims(instance), self.health(instance)]


def claim_member(instance: str, conn_id: str) -> str:
    """A claim's member in ``subject:<sub>``; instance ids and connection ids hold no ``|``."""
    return f"{instance}|{conn_id}"


# -- the bus ------------------------------------------------------------------------------------


class BusError(ValueError):
    """A bus message that is not well formed (dropped and counted; never acted on)."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One control-bus message.

    ``to`` is an instance id, or None for every node. ``id`` names a request; a reply carries the
    request's id in ``re`` and is addressed to the requester.
    """

    op: str
    sender: str
    body: dict[str, Any]
    to: str | None = None
    id: str | None = None
    re: str | None = None

    def for_instance(self, instance: str) -> bool:
        return self.to is None or self.to == instance


def encode_bus(msg: BusMessage) -> bytes:
    out: dict[str, Any] = {"v": BUS_VERSION, "op": msg.op, "from": msg.sender, "body": msg.body}
    if msg.to is not None:
        out["to"] = msg.to
    if msg.id is not None:
        out["id"] = msg.id
    if msg.re is not None:
        out["re"] = msg.re
    data = orjson.dumps(out)
    if len(data) > MAX_BUS_MESSAGE:
        raise BusError(f"bus message of {len(data)} bytes exceeds {MAX_BUS_MESSAGE}")
    return data


def _name(raw: Mapping[str, Any], key: str, required: bool) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME or "|" in value:
        raise BusError(f"`{key}` must be a name of 1..{_MAX_NAME} characters")
    return value


def decode_bus(data: bytes | str) -> BusMessage:
    """Parse and validate one bus message. Redis is inside the trust boundary, but a message from
    a node of another version (or a stray publisher) must never crash the reader or act half-read."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_BUS_MESSAGE:
        raise BusError("bus message too large")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BusError("bus message is not JSON") from exc
    if not isinstance(raw, dict):
        raise BusError("bus message must be an object")
    if raw.get("v") != BUS_VERSION:
        raise BusError(f"bus version {raw.get('v')!r} is not {BUS_VERSION}")
    op = raw.get("op")
    if not isinstance(op, str) or not 0 < len(op) <= _MAX_OP or not set(op) <= _OP_CHARS:
        raise BusError("`op` must be a short lower-case name")
    body = raw.get("body")
    if not isinstance(body, dict):
        raise BusError("`body` must be an object")
    sender = _name(raw, "from", True)
    assert sender is not None
    return BusMessage(
        op, sender, body, _name(raw, "to", False), _name(raw, "id", False), _name(raw, "re", False)
    )


# -- presence -----------------------------------------------------------------------------------


def online_accounts(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """Accounts with a live EA connection somewhere ("EA online"), from presence entries."""
    out: set[str] = set()
    for entry in entries:
        if entry.get("role") != "ea":
            continue
        accounts = entry.get("accounts")
        if isinstance(accounts, list):
            out.update(a for a in accounts if isinstance(a, str) and a != "*")
    return out


# -- health -------------------------------------------------------------------------------------

_SUMMED = ("connections", "messagesInPerSec", "messagesOutPerSec", "drops", "slowConsumerCloses")
_WORST = ("latencyP50Ms", "latencyP99Ms")


def aggregate_health(ts_ms: int, samples: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One cluster-wide health sample from each node's latest one (node -> sample).

    Counts and rates add up. Latency percentiles cannot be combined from per-node percentiles, so the
    cluster's figure is the worst node's (an upper bound; the per-node values are in ``nodes``).
    """
    out: dict[str, Any] = {"ts": ts_ms}
    by_role: dict[str, int] = {}
    for key in _SUMMED:
        out[key] = 0
    for key in _WORST:
        out[key] = 0.0
    nodes = []
    for node in sorted(samples):
        sample = samples[node]
        for key in _SUMMED:
            value = sample.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] += value
        for key in _WORST:
            value = sample.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = max(out[key], float(value))
        roles = sample.get("byRole")
        if isinstance(roles, dict):
            for role, n in roles.items():
                if isinstance(role, str) and isinstance(n, int):
                    by_role[role] = by_role.get(role, 0) + n
        nodes.append({"node": node, **{k: v for k, v in sample.items() if k != "node"}})
    for key in ("messagesInPerSec", "messagesOutPerSec"):
        out[key] = round(out[key], 1)
    out["byRole"] = by_role
    out["nodes"] = nodes
    return out


# -- leadership ---------------------------------------------------------------------------------


def advisory_key(name: str) -> int:
    """The PostgreSQL advisory-lock key (a signed 64-bit integer) of a leadership name."""
    digest = hashlib.blake2b(f"mtbridge:leader:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
