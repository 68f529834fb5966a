"""The per-(signal, account) delivery status model: where a signal stands for one target account.

Delivery status only moves forward along this rank:
``pending(0) < delivered(1) < acked(2) < expired(3) < executed(4) | rejected(4)``. Steps may be skipped (an
execution report proves delivery even if the ack was lost). ``expired`` may still be overtaken by
``executed``/``rejected``, because a late execution report describes what really happened on the account;
``executed`` and ``rejected`` are final.

Here: the statuses and the forward-only rule (:func:`can_transition`) every store and the ledger apply.
Not here: which event proves which status (:func:`bridge.protocol.events.status_from_event`) or where a
status is stored (:mod:`bridge.store`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["DeliveryStatus", "can_transition"]


class DeliveryStatus(StrEnum):
    """Where a signal stands for one target account."""

    PENDING = "pending"
    DELIVERED = "delivered"
    ACKED = "acked"
    EXPIRED = "expired"
    EXECUTED = "executed"
    REJECTED = "rejected"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.EXECUTED, DeliveryStatus.REJECTED)


_RANK: Final[dict[DeliveryStatus, int]] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.ACKED: 2,
    DeliveryStatus.EXPIRED: 3,
    DeliveryStatus.EXECUTED: 4,
    DeliveryStatus.REJECTED: 4,
}


def can_transition(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a delivery may move from ``old`` (None: no record yet) to ``new``; only strictly forward."""
    if old is None:
        return True
    return _RANK[new] > _RANK[old]
