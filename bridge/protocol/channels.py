"""Channel names, namespace policies and authorisation decisions (pure).

A channel is ``namespace:rest``. Each namespace has a :class:`NamespacePolicy` saying whether it is
durable (offsets and history in the store), whether it is lossy (a slow subscriber loses old
messages, or gets only the latest per key) and which roles may subscribe or publish, either
implicitly or only through a matching pattern in the token's ``subscribe``/``publish`` claims.
``account:<login>:...`` channels are further limited to tokens that hold that account.
Admins may do anything. See docs/protocol.md, "Channels".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from bridge.protocol.codes import Error

__all__ = [
    "CHANNEL_RE",
    "DEFAULT_POLICIES",
    "ChannelError",
    "Grant",
    "NamespacePolicy",
    "Role",
    "account_of",
    "can_publish",
    "can_subscribe",
    "check_channel",
    "holds_account",
    "matches_any",
    "namespace_of",
    "subscribe_refusal",
]

CHANNEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9:._-]{1,200}$")
ACCOUNT_RE = re.compile(r"^account:([A-Za-z0-9_-]{1,32}):[A-Za-z0-9:._-]+$")


class Role(StrEnum):
    ENGINE = "engine"
    EA = "ea"
    DASHBOARD = "dashboard"
    ADMIN = "admin"


class Grant(StrEnum):
    """How a role gets a right in a namespace: always, or only through a matching token pattern."""

    IMPLICIT = "implicit"
    PATTERN = "pattern"


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    name: str
    durable: bool
    lossy: bool
    coalesce: bool = False
    subscribe: dict[Role, Grant] = field(default_factory=dict)
    publish: dict[Role, Grant] = field(default_factory=dict)
    account_scoped: bool = False


DEFAULT_POLICIES: dict[str, NamespacePolicy] = {
    p.name: p
    for p in (
        NamespacePolicy(
            "signals",
            durable=True,
            lossy=False,
            subscribe={Role.ENGINE: Grant.PATTERN, Role.EA: Grant.PATTERN, Role.DASHBOARD: Grant.IMPLICIT},
            publish={Role.ENGINE: Grant.PATTERN},
        ),
        NamespacePolicy(
            "account",
            durable=True,
            lossy=False,
            account_scoped=True,
            subscribe={Role.EA: Grant.IMPLICIT, Role.DASHBOARD: Grant.IMPLICIT, Role.ENGINE: Grant.PATTERN},
            publish={Role.EA: Grant.PATTERN},
        ),
        NamespacePolicy(
            "instrument",
            durable=False,
            lossy=True,
            coalesce=True,
            subscribe={Role.ENGINE: Grant.IMPLICIT, Role.EA: Grant.IMPLICIT, Role.DASHBOARD: Grant.IMPLICIT},
            publish={Role.ENGINE: Grant.PATTERN, Role.EA: Grant.PATTERN},
        ),
        NamespacePolicy(
            "control",
            durable=True,
            lossy=False,
            subscribe={Role.DASHBOARD: Grant.IMPLICIT},
            publish={},
        ),
        NamespacePolicy(
            "system",
            durable=False,
            lossy=True,
            subscribe={Role.DASHBOARD: Grant.IMPLICIT},
            publish={},
        ),
    )
}


def namespace_of(channel: str) -> str:
    return channel.split(":", 1)[0]


def account_of(channel: str) -> str | None:
    m = ACCOUNT_RE.match(channel)
    return m.group(1) if m else None


class ChannelError(ValueError):
    """A channel name the hub refuses; ``code`` is its reply error."""

    def __init__(self, code: Error) -> None:
        super().__init__(code.value)
        self.code = code


def check_channel(channel: str, policies: dict[str, NamespacePolicy]) -> NamespacePolicy:
    """The policy for a concrete channel name; raises :class:`ChannelError` with the reply error."""
    if not CHANNEL_RE.match(channel) or channel.endswith(":") or "::" in channel:
        raise ChannelError(Error.INVALID_CHANNEL)
    policy = policies.get(namespace_of(channel))
    if policy is None:
        raise ChannelError(Error.UNKNOWN_NAMESPACE)
    if policy.account_scoped and account_of(channel) is None:
        raise ChannelError(Error.INVALID_CHANNEL)
    return policy


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


@lru_cache(maxsize=65536)
def matches_any(patterns: tuple[str, ...], channel: str) -> bool:
    """``*`` matches any run of characters, ``:`` included; nothing else is special.

    Cached: every publish asks it, with the same few token patterns and channels (3 % of the hub's CPU
    on the signals benchmark before the cache)."""
    return any(_compile(p).match(channel) for p in patterns)


def holds_account(accounts: frozenset[str], login: str) -> bool:
    return "*" in accounts or login in accounts


def _refusal(
    grants: dict[Role, Grant],
    policy: NamespacePolicy,
    role: Role,
    accounts: frozenset[str],
    patterns: tuple[str, ...],
    channel: str,
) -> str | None:
    """Why ``role`` with these claims may not use ``channel`` (a reason code), or None if it may."""
    if role is Role.ADMIN:
        return None
    grant = grants.get(role)
    if grant is None:
        return "role_not_allowed"
    if policy.account_scoped:
        login = account_of(channel)
        if login is None or not holds_account(accounts, login):
            return "foreign_account"
    if grant is Grant.IMPLICIT or matches_any(patterns, channel):
        return None
    return "no_matching_pattern"


def _allowed(
    grants: dict[Role, Grant],
    policy: NamespacePolicy,
    role: Role,
    accounts: frozenset[str],
    patterns: tuple[str, ...],
    channel: str,
) -> bool:
    return _refusal(grants, policy, role, accounts, patterns, channel) is None


def subscribe_refusal(
    policy: NamespacePolicy, role: Role, accounts: frozenset[str], patterns: tuple[str, ...], channel: str
) -> str | None:
    """Why a token may not subscribe to ``channel``: ``role_not_allowed`` (the namespace grants its role
    nothing), ``foreign_account`` (an ``account:`` channel of a login the token does not hold) or
    ``no_matching_pattern`` (no ``subscribe`` pattern of the token matches); None when it may."""
    return _refusal(policy.subscribe, policy, role, accounts, patterns, channel)


def can_subscribe(
    policy: NamespacePolicy, role: Role, accounts: frozenset[str], patterns: tuple[str, ...], channel: str
) -> bool:
    return _allowed(policy.subscribe, policy, role, accounts, patterns, channel)


def can_publish(
    policy: NamespacePolicy, role: Role, accounts: frozenset[str], patterns: tuple[str, ...], channel: str
) -> bool:
    return _allowed(policy.publish, policy, role, accounts, patterns, channel)
