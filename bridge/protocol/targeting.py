"""Which EA connections a signal is for: the one targeting rule.

A signal names ``accounts`` and/or ``groups``. An EA connection receives it when its token holds
one of the accounts, is in one of the groups, or holds every account (``"*"``). A payload with
neither key is not targeted (every subscriber receives it). Used by live fan-out (the hub's channel
index is built on :meth:`Targets.accepts`), by replay and gap repair (:func:`targets_of` on the
stored payload), by the Redis broker's decoder, by the ledger (which accounts a delivery is for,
:func:`delivered_accounts`) and by the SDK's in-process mock hub.

Pure: no I/O, no hub types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Targets", "delivered_accounts", "payload_accepts", "targets_of"]


@dataclass(frozen=True, slots=True)
class Targets:
    """Which EA connections a publication is for (signals name accounts and/or groups)."""

    accounts: frozenset[str]
    groups: frozenset[str]

    def accepts(self, accounts: frozenset[str], groups: frozenset[str]) -> bool:
        """Whether a token holding ``accounts`` and ``groups`` receives the publication."""
        return bool(self.accounts & accounts or self.groups & groups) or "*" in accounts


def targets_of(payload: Mapping[str, Any]) -> Targets | None:
    """The targets a stored or relayed payload names; None when it names neither key (broadcast).
    A key that is not a list counts as empty, so a malformed payload reaches nobody rather than all."""
    accounts, groups = payload.get("accounts"), payload.get("groups")
    if accounts is None and groups is None:
        return None
    return Targets(
        frozenset(accounts) if isinstance(accounts, list) else frozenset(),
        frozenset(groups) if isinstance(groups, list) else frozenset(),
    )


def payload_accepts(payload: Mapping[str, Any], accounts: frozenset[str], groups: frozenset[str]) -> bool:
    """Whether a token holding ``accounts`` and ``groups`` receives ``payload`` (replay, mock hub)."""
    targets = targets_of(payload)
    return targets is None or targets.accepts(accounts, groups)


def delivered_accounts(
    payload: Mapping[str, Any], accounts: frozenset[str], groups: frozenset[str]
) -> list[str]:
    """The accounts a delivery of ``payload`` to a token holding ``accounts``/``groups`` is for:
    the signal's accounts the token holds (all of them for ``"*"``), and, when one of the signal's
    groups matches, every account of the token. In the signal's order, then the token's, sorted."""
    named: Iterable[str] = payload.get("accounts") or []
    out = list(named) if "*" in accounts else [a for a in named if a in accounts]
    if set(payload.get("groups") or []) & groups:
        out.extend(a for a in sorted(accounts) if a not in out)
    return out
