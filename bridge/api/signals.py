"""Signals: publish over REST, list with filters and cursor pagination, get one with its
per-account delivery status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status

from bridge.api.deps import BearerClaims, ServicesDep
from bridge.api.params import Account, Cursor, SignalIdPath, Since, Strategy, Until
from bridge.api.replies import api_error, hub_error
from bridge.hub.hub import HubError
from bridge.protocol.channels import Role, can_publish, holds_account
from bridge.protocol.codes import Error
from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.signals import signal_channel
from bridge.store.base import MAX_PAGE_SIZE, SignalFilter, SignalView

__all__ = ["router", "signal_json"]

router = APIRouter(prefix="/api/v1/signals", tags=["signals"])


def signal_json(view: SignalView) -> dict[str, Any]:
    return {
        "id": view.id,
        "strategy": view.strategy,
        "channel": view.channel,
        "offset": view.offset,
        "accounts": list(view.accounts),
        "groups": list(view.groups),
        "payload": view.payload,
        "createdAt": view.created_at_ms,
        "expiresAt": view.expires_at_ms,
        "deliveries": [
            {
                "account": d.account,
                "status": d.status.value,
                "updatedAt": d.updated_at_ms,
                "times": dict(d.times),
                "detail": d.detail,
            }
            for d in view.deliveries
        ],
    }


@router.post("", status_code=status.HTTP_201_CREATED)
async def publish_signal(
    services: ServicesDep, claims: BearerClaims, signal: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Publish a signal on ``signals:<strategy>``; same validation, channel and offset as WebSocket."""
    channel = signal_channel(signal.get("strategy"))
    hub = services.hub
    try:
        policy = hub.policy_for(channel)
    except HubError as exc:
        raise hub_error(
            HubError(
                Error.VALIDATION_FAILED,
                "bad strategy",
                details=[{"field": "strategy", "code": "invalid", "message": "must be [A-Za-z0-9_.-]{1,64}"}],
            )
        ) from exc
    if not can_publish(policy, claims.role, claims.accounts, claims.publish, channel):
        raise api_error(Error.FORBIDDEN, f"may not publish to {channel}")
    try:
        return await services.ledger.publish_signal(signal, claims.sub, channel)
    except HubError as exc:
        raise hub_error(exc) from exc


@router.get("")
async def list_signals(
    services: ServicesDep,
    claims: BearerClaims,
    strategy: Strategy = None,
    account: Account = None,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> dict[str, Any]:
    """Signals, newest first; pass ``nextCursor`` back as ``cursor`` for the next page."""
    if claims.role is Role.EA and (account is None or not holds_account(claims.accounts, account)):
        raise api_error(Error.FORBIDDEN, "EAs list their own account")
    page = await services.store.list_signals(
        SignalFilter(strategy=strategy, account=account, status=status_, since_ms=since, until_ms=until),
        cursor=cursor,
        limit=limit,
    )
    return {"items": [signal_json(v) for v in page.items], "nextCursor": page.next_cursor}


@router.get("/{signal_id}")
async def get_signal(signal_id: SignalIdPath, services: ServicesDep, claims: BearerClaims) -> dict[str, Any]:
    """One signal with its per-account delivery status."""
    view = await services.store.get_signal(signal_id)
    if view is None or (
        claims.role is Role.EA and not any(holds_account(claims.accounts, a) for a in view.accounts)
    ):
        raise api_error(Error.NOT_FOUND, "no such signal")
    return signal_json(view)
