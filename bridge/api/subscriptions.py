"""Subscriptions managed over REST: subscribe or unsubscribe a live connection, or every live
connection of a subject, to a channel.

Who may ask: an admin, or an engine for the ``signals:`` channels it may publish to (the strategies
it owns). What may be done: only what the connection's own token could do with a ``subscribe`` of
its own; the hub decides with the same code (:meth:`Hub.subscribe_on_behalf`), so the rule has one
home. The connection learns of it by a ``subscribed`` (or ``unsubscribed``) push. In a cluster the
call may reach any node: :class:`~bridge.cluster.subscriptions.SubscriptionRouter` carries it over
the control bus to the node holding the connection. See docs/protocol.md, "Subscriptions managed
over REST".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from bridge.api.deps import BearerClaims, HubDep
from bridge.api.errors import ErrorBody
from bridge.api.replies import api_error, hub_error
from bridge.auth.tokens import Claims
from bridge.cluster import cluster_of
from bridge.cluster.model import node_of
from bridge.cluster.subscriptions import SubscriptionRouter
from bridge.hub.hub import Hub, HubError
from bridge.protocol.channels import Role, can_publish, namespace_of
from bridge.protocol.codes import Error

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
    refused: list[Refusal] | None = Field(
        None, description="connections whose node could not be asked (unavailable); absent when none"
    )


#: The error bodies are the API's one shape (bridge/api/errors.py); ``reason`` and ``refused`` say why.
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "bad channel or offset (invalid_channel, bad_offset, ...)"},
    403: {"model": ErrorBody, "description": "the caller, or the connection's own token, may not"},
    404: {"model": ErrorBody, "description": "no such live connection or subscription"},
    409: {"model": ErrorBody, "description": "already subscribed, or the subscription limit"},
    503: {"model": ErrorBody, "description": "the store is unavailable; retry"},
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
        raise api_error(
            Error.FORBIDDEN,
            f"an engine manages subscriptions only to the signals: channels it may publish to, not {channel}",
            reason="not_strategy_owner",
        )
    raise api_error(Error.FORBIDDEN, "admin or engine tokens only", reason="role_not_allowed")


def get_router(request: Request, hub: HubDep) -> SubscriptionRouter:
    """This node's router: through the cluster to the node holding a connection, or local only
    (a hub started without services, or without Redis)."""
    services = getattr(request.state, "services", None)
    if services is None:
        return SubscriptionRouter(hub)
    return cluster_of(services).subscriptions


RouterDep = Annotated[SubscriptionRouter, Depends(get_router)]


async def _of_subject(subs: SubscriptionRouter, subject: str) -> list[tuple[str, str]]:
    try:
        found = await subs.of_subject(subject)
    except HubError as exc:
        raise hub_error(exc) from exc
    if not found:
        raise api_error(Error.NOT_FOUND, f"no live connection of subject {subject}")
    return found


def _audit(claims: Claims, what: str, conn_id: str, where: str, channel: str) -> None:
    node = node_of(where) if where else "here"
    logger.info("rest %s: %s (%s) for %s (on %s) on %s", what, claims.sub, claims.role.value, conn_id,
                node, channel)  # fmt: skip


def _refusal(conn_id: str, exc: HubError) -> Refusal:
    reason = exc.extra.get("reason")
    return Refusal(
        connectionId=conn_id,
        code=exc.code,
        message=exc.message,
        reason=reason if isinstance(reason, str) else None,
    )


@router.post(
    "/connections/{conn_id}/subscriptions",
    response_model=ConnectionSubscribed,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def subscribe_connection(
    conn_id: ConnId, body: SubscribeRequest, hub: HubDep, subs: RouterDep, claims: BearerClaims
) -> ConnectionSubscribed:
    """Subscribe one live connection, on whichever node holds it, to a channel, as if it had sent
    ``subscribe`` itself.

    Answers after the holding hub has sent the connection its ``subscribed`` push (and, with
    ``since``, the replayed history)."""
    _check_caller(hub, claims, body.channel)
    try:
        where = await subs.locate(conn_id)
        result = await subs.subscribe(conn_id, body.channel, body.since, body.epoch, where)
    except HubError as exc:
        raise hub_error(exc, connectionId=conn_id) from exc
    _audit(claims, "subscribe", conn_id, where or "", body.channel)
    return ConnectionSubscribed(
        connectionId=conn_id, channel=body.channel, result=SubscriptionResult.model_validate(result)
    )


@router.delete(
    "/connections/{conn_id}/subscriptions/{channel}",
    response_model=ConnectionUnsubscribed,
    responses=ERRORS,
)
async def unsubscribe_connection(
    conn_id: ConnId, channel: ChannelPath, hub: HubDep, subs: RouterDep, claims: BearerClaims
) -> ConnectionUnsubscribed:
    """Remove one live connection's subscription, on whichever node holds it; the connection gets
    ``unsubscribed`` with reason ``rest``."""
    _check_caller(hub, claims, channel)
    try:
        where = await subs.locate(conn_id)
        await subs.unsubscribe(conn_id, channel, where)
    except HubError as exc:
        raise hub_error(exc, connectionId=conn_id) from exc
    _audit(claims, "unsubscribe", conn_id, where or "", channel)
    return ConnectionUnsubscribed(connectionId=conn_id, channel=channel)


@router.post(
    "/subjects/{subject}/subscriptions",
    response_model=SubjectSubscribed,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def subscribe_subject(
    subject: Subject, body: SubscribeRequest, hub: HubDep, subs: RouterDep, claims: BearerClaims
) -> SubjectSubscribed:
    """Subscribe every live connection of a subject, on every node. Each is decided on its own
    (tokens of one subject may differ): 200 when at least one was subscribed, with the others under
    ``refused``; when none was, the first refusal's status, with every refusal in
    ``detail.refused``. A connection that left meanwhile is skipped."""
    _check_caller(hub, claims, body.channel)
    found = await _of_subject(subs, subject)
    outcomes = await asyncio.gather(
        *(subs.subscribe(cid, body.channel, body.since, body.epoch, where) for cid, where in found),
        return_exceptions=True,
    )
    subscribed: list[ConnectionSubscribed] = []
    refused: list[Refusal] = []
    first: HubError | None = None
    for (conn_id, where), outcome in zip(found, outcomes, strict=True):
        if isinstance(outcome, HubError):
            if outcome.code == Error.NOT_FOUND:
                continue  # it left between the listing and the call
            first = first or outcome
            refused.append(_refusal(conn_id, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            _audit(claims, "subscribe", conn_id, where, body.channel)
            subscribed.append(
                ConnectionSubscribed(
                    connectionId=conn_id,
                    channel=body.channel,
                    result=SubscriptionResult.model_validate(outcome),
                )
            )
    if not subscribed and first is not None:
        raise hub_error(first, refused=[r.model_dump(exclude_none=True) for r in refused])
    if not subscribed:
        raise api_error(Error.NOT_FOUND, f"no live connection of subject {subject}")
    return SubjectSubscribed(subject=subject, channel=body.channel, subscribed=subscribed, refused=refused)


@router.delete(
    "/subjects/{subject}/subscriptions/{channel}",
    response_model=SubjectUnsubscribed,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def unsubscribe_subject(
    subject: Subject, channel: ChannelPath, hub: HubDep, subs: RouterDep, claims: BearerClaims
) -> SubjectUnsubscribed:
    """Remove the subscription from every live connection of a subject that holds it, on every node
    (404 when none does). A node that cannot be asked puts its connections under ``refused``
    (``unavailable``); when nothing was removed and some node could not be asked, 503."""
    _check_caller(hub, claims, channel)
    found = await _of_subject(subs, subject)
    outcomes = await asyncio.gather(
        *(subs.unsubscribe(cid, channel, where) for cid, where in found), return_exceptions=True
    )
    done: list[str] = []
    missing: list[str] = []
    refused: list[Refusal] = []
    first: HubError | None = None
    for (conn_id, where), outcome in zip(found, outcomes, strict=True):
        if isinstance(outcome, HubError):
            if outcome.code == Error.NOT_SUBSCRIBED:
                missing.append(conn_id)
            elif outcome.code != Error.NOT_FOUND:  # not_found: it left meanwhile
                first = first or outcome
                refused.append(_refusal(conn_id, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            _audit(claims, "unsubscribe", conn_id, where, channel)
            done.append(conn_id)
    if not done and first is not None:
        raise hub_error(first, refused=[r.model_dump(exclude_none=True) for r in refused])
    if not done:
        raise api_error(Error.NOT_SUBSCRIBED, f"no connection of {subject} is subscribed to {channel}")
    return SubjectUnsubscribed(
        subject=subject, channel=channel, unsubscribed=done, notSubscribed=missing, refused=refused or None
    )
