"""Whether a subscription's ``since`` can be recovered from history: the one recovery decision.

A subscriber that last saw offset ``since`` under ``epoch`` is fully recovered when its epoch (if it
sent one) is the channel's, ``since`` is not ahead of the channel, the history still holds
``since + 1``, and the gap is at most the hub's ``max_recovery`` publications (100,000 by default,
docs/protocol.md "Recovery"). Otherwise the answer says why, and the client reloads state over REST.
Used by the hub's recovery (``bridge/hub/recovery.py``), the store's ``Position`` and the SDK's
in-process mock hub. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RECOVERY_ADVICE", "NotRecovered", "refusal"]

#: The ``advice`` of every refused recovery.
RECOVERY_ADVICE = "history cannot cover the gap: reload state over REST, then continue live"


class NotRecovered(StrEnum):
    """The ``reason`` of a subscription answered ``recovered: false``."""

    EPOCH_CHANGED = "epoch_changed"
    OFFSET_AHEAD = "offset_ahead"
    HISTORY_TRIMMED = "history_trimmed"
    TOO_MANY = "too_many"


def refusal(
    since: int,
    epoch: str | None,
    *,
    current_epoch: str,
    last_offset: int,
    first_available: int,
    max_recovery: int | None = None,
) -> NotRecovered | None:
    """Why ``since``/``epoch`` cannot be recovered, or None when the history covers it.
    ``epoch`` None means the client did not say (offsets are trusted under the current epoch)."""
    if epoch is not None and epoch != current_epoch:
        return NotRecovered.EPOCH_CHANGED
    if since > last_offset:
        return NotRecovered.OFFSET_AHEAD
    if since + 1 < first_available:
        return NotRecovered.HISTORY_TRIMMED
    if max_recovery is not None and last_offset - since > max_recovery:
        return NotRecovered.TOO_MANY
    return None
