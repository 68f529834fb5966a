"""Subscriptions managed over REST: subscribe or unsubscribe a live connection, or every live
connection of a subject, to a channel.

Who may ask: an admin, or an engine for the ``signals:`` channels it may publish to (the strategies
it owns). What may be done: only what the connection's own token could do with a ``subscribe`` of
its own; the hub decides with the same code (:meth:`Hub.subscribe_on_behalf`), so the rule has one
home. The connection learns of it by a ``subscribed`` (or ``unsubscribed``) push. See
docs/protocol.md, "Subscriptions managed over REST".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from bridge.api.deps import BearerClaims, HubDep, hub_error
from bridge.auth.tokens import Claims
from bridge.hub.connection import Connection
from bridge.hub.hub import Hub, HubError
from bridge.protocol.channels import Role, can_publish, namespace_of
from bridge.store.exceptions import StoreError

__all__ = ["router"]

logger = logging.getLogger("mtbridge.api")

router = APIRouter(prefix="/api/v1", tags=["subscriptions"])

CHANNEL_MAX = 233  # 32 (namespace) + 1 + 200: the longest name CHANNEL_RE accepts
ConnId = Annotated[str, Path(min_length=1, max_length=64, description="a connection id (`welcome`)")]
Subject = Annotated[str, Path(min_length=1, max_length=128, description="a token subject (`sub`)")]
ChannelPath = Annotated[str, Path(min_length=3, max_length=CHANNEL_MAX, description="e.g. signals:alpha")]


class SubscribeRequest(BaseModel):
    model_config = {"extra": "forbid"}

    channel: str = Field(min_length=3, max_length=CHANNEL_MAX, examples=["signals:alpha"])
    since: int | None = Field(None, ge=0, description="replay what follows this offset first")
    epoch: str | None = Field(None, min_length=1, max_length=64, description="the epoch `since` belongs to")


class SubscriptionResult(BaseModel):
    """The payload of the ``subscribed`` push: the same fields as a ``subscribe`` result."""

    offset: int = Field(description="the channel's last offset when the subscription started")
    epoch: str
    durable: bool
    recovered: bool | None = Field(None, description="with `since`: whether the history covered the gap")
    replayed: int | None = Field(None, description="with `since` and recovered: messages replayed")
    reason: str | None = Field(None, description="when not recovered: epoch_changed, offset_ahead, ...")
    advice: str | None = None


class ConnectionSubscribed(BaseModel):
    connectionId: str
    channel: str
    result: SubscriptionResult


class Refusal(BaseModel):
    connectionId: str
    code: str = Field(description="a protocol error code: forbidden, already_subscribed, ...")
    message: str
    reason: str | None = Field(None, description="for `forbidden`: foreign_account, no_matching_pattern, ...")


class SubjectSubscribed(BaseModel):
    subject: str
    channel: str
    subscribed: list[ConnectionSubscribed]
    refused: list[Refusal]


class ConnectionUnsubscribed(BaseModel):
    connectionId: str
    channel: str


class SubjectUnsubscribed(BaseModel):
    subject: str
    channel: str
    unsubscribed: list[str] = Field(description="connection ids whose subscription was removed")
    notSubscribed: list[str] = Field(description="connection ids that held no such subscription")


class ErrorBody(BaseModel):
    code: str
    message: str
    reason: str | None = None
    refused: list[Refusal] | None = None


class ErrorResponse(BaseModel):
    detail: ErrorBody


ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "bad channel or offset (invalid_channel, bad_offset, ...)"},
    403: {"model": ErrorResponse, "description": "the caller, or the connection's own token, may not"},
    404: {"model": ErrorResponse, "description": "no such live connection or subscription"},
    409: {"model": ErrorResponse, "description": "already subscribed, or the subscription limit"},
    503: {"model": ErrorResponse, "description": "the store is unavailable; retry"},
}


def _check_caller(hub: Hub, claims: Claims, channel: str) -> None:
    """An admin may manage any subscription; an engine only those to strategies it publishes."""
    if claims.role is Role.ADMIN:
        return
    try:
        policy = hub.policy_for(channel)
    except HubError as exc:
        raise hub_error(exc) from exc
    if claims.role is Role.ENGINE:
        if namespace_of(channel) == "signals" and can_publish(
            policy, claims.role, claims.accounts, claims.publish, channel
        ):
            return
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            {
                "code": "forbidden",
                "reason": "not_strategy_owner",
                "message": f"an engine manages subscriptions only to the signals: channels it may "
                f"publish to, not {channel}",
            },
        )
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        {"code": "forbidden", "reason": "role_not_allowed", "message": "admin or engine tokens only"},
    )


async def _subscribe(hub: Hub, conn: Connection, body: SubscribeRequest) -> dict[str, object]:
    """The hub's answer; the store's trouble becomes ``unavailable`` (503, retry), as on WebSocket."""
    try:
        return await hub.subscribe_on_behalf(conn, body.channel, body.since, body.epoch)
    except StoreError as exc:
        if not exc.retryable:
            raise
        logger.warning("rest subscribe: store unavailable: %s", exc)
        raise HubError("unavailable", "store unavailable; retry", retryAfterMs=500) from exc


def _live(hub: Hub, conn_id: str) -> Connection:
    conn = hub.connections.get(conn_id)
    if conn is None or conn.closing or conn.claims is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, {"code": "not_found", "message": f"no live connection {conn_id}"}
        )
    return conn


def _of_subject(hub: Hub, subject: str) -> list[Connection]:
    conns = [c for c in hub.by_subject.get(subject, ()) if not c.closing]
    if not conns:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            {"code": "not_found", "message": f"no live connection of subject {subject}"},
        )
    return sorted(conns, key=lambda c: c.id)


def _audit(claims: Claims, what: str, conn: Connection, channel: str) -> None:
    target = conn.claims.sub if conn.claims is not None else "?"
    logger.info("rest %s: %s (%s) for %s (%s) on %s", what, claims.sub, claims.role.value, conn.id,
                target, channel)  # fmt: skip


@router.post(
    "/connections/{conn_id}/subscriptions",
    response_model=ConnectionSubscribed,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def subscribe_connection(
    conn_id: ConnId, body: SubscribeRequest, hub: HubDep, claims: BearerClaims
) -> ConnectionSubscribed:
    """Subscribe one live connection to a channel, as if it had sent ``subscribe`` itself.

    Answers after the hub has sent the connection its ``subscribed`` push (and, with ``since``, the
    replayed history)."""
    _check_caller(hub, claims, body.channel)
    conn = _live(hub, conn_id)
    try:
        result = await _subscribe(hub, conn, body)
    except HubError as exc:
        raise hub_error(exc, connectionId=conn_id) from exc
    _audit(claims, "subscribe", conn, body.channel)
    return ConnectionSubscribed(
        connectionId=conn_id, channel=body.channel, result=SubscriptionResult.model_validate(result)
    )


@router.delete(
    "/connections/{conn_id}/subscriptions/{channel}",
    response_model=ConnectionUnsubscribed,
    responses=ERRORS,
)
async def unsubscribe_connection(
    conn_id: ConnId, channel: ChannelPath, hub: HubDep, claims: BearerClaims
) -> ConnectionUnsubscribed:
    """Remove one live connection's subscription; it gets ``unsubscribed`` with reason ``rest``."""
    _check_caller(hub, claims, channel)
    conn = _live(hub, conn_id)
    try:
        hub.unsubscribe_on_behalf(conn, channel)
    except HubError as exc:
        raise hub_error(exc, connectionId=conn_id) from exc
    _audit(claims, "unsubscribe", conn, channel)
    return ConnectionUnsubscribed(connectionId=conn_id, channel=channel)


@router.post(
    "/subjects/{subject}/subscriptions",
    response_model=SubjectSubscribed,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def subscribe_subject(
    subject: Subject, body: SubscribeRequest, hub: HubDep, claims: BearerClaims
) -> SubjectSubscribed:
    """Subscribe every live connection of a subject. Each is decided on its own (tokens of one
    subject may differ): 200 when at least one was subscribed, with the others under ``refused``;
    when none was, the first refusal's status, with every refusal in ``detail.refused``."""
    _check_caller(hub, claims, body.channel)
    conns = _of_subject(hub, subject)
    outcomes = await asyncio.gather(
        *(_subscribe(hub, c, body) for c in conns),
        return_exceptions=True,
    )
    subscribed: list[ConnectionSubscribed] = []
    refused: list[Refusal] = []
    first: HubError | None = None
    for conn, outcome in zip(conns, outcomes, strict=True):
        if isinstance(outcome, HubError):
            first = first or outcome
            reason = outcome.extra.get("reason")
            refused.append(
                Refusal(
                    connectionId=conn.id,
                    code=outcome.code,
                    message=outcome.message,
                    reason=reason if isinstance(reason, str) else None,
                )
            )
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            _audit(claims, "subscribe", conn, body.channel)
            subscribed.append(
                ConnectionSubscribed(
                    connectionId=conn.id,
                    channel=body.channel,
                    result=SubscriptionResult.model_validate(outcome),
                )
            )
    if not subscribed and first is not None:
        raise hub_error(first, refused=[r.model_dump(exclude_none=True) for r in refused])
    return SubjectSubscribed(subject=subject, channel=body.channel, subscribed=subscribed, refused=refused)


@router.delete(
    "/subjects/{subject}/subscriptions/{channel}",
    response_model=SubjectUnsubscribed,
    responses=ERRORS,
)
async def unsubscribe_subject(
    subject: Subject, channel: ChannelPath, hub: HubDep, claims: BearerClaims
) -> SubjectUnsubscribed:
    """Remove the subscription from every live connection of a subject that holds it (404 when none
    does)."""
    _check_caller(hub, claims, channel)
    done: list[str] = []
    missing: list[str] = []
    for conn in _of_subject(hub, subject):
        try:
            hub.unsubscribe_on_behalf(conn, channel)
        except HubError:
            missing.append(conn.id)
            continue
        _audit(claims, "unsubscribe", conn, channel)
        done.append(conn.id)
    if not done:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            {"code": "not_subscribed", "message": f"no connection of {subject} is subscribed to {channel}"},
        )
    return SubjectUnsubscribed(subject=subject, channel=channel, unsubscribed=done, notSubscribed=missing)
