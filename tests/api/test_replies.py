"""The REST status of every reply error code (bridge/api/replies.py): none is left to a default."""

from __future__ import annotations

import json

import pytest

from bridge.api.replies import HTTP_STATUS, WEBSOCKET_ONLY, api_error, http_status, hub_error
from bridge.hub.hub import HubError
from bridge.protocol.codes import ERRORS, Error


@pytest.mark.parametrize("code", list(Error))
def test_every_code_has_a_rest_status_or_is_websocket_only(code: Error) -> None:
    assert (code in HTTP_STATUS) != (code in WEBSOCKET_ONLY), code
    assert code in ERRORS


def test_statuses_rest_clients_rely_on() -> None:
    assert HTTP_STATUS[Error.VALIDATION_FAILED] == 422
    assert HTTP_STATUS[Error.FORBIDDEN] == 403
    assert HTTP_STATUS[Error.PAUSED] == HTTP_STATUS[Error.ALREADY_SUBSCRIBED] == 409
    assert HTTP_STATUS[Error.NOT_FOUND] == HTTP_STATUS[Error.NOT_SUBSCRIBED] == 404
    assert HTTP_STATUS[Error.UNAVAILABLE] == 503
    assert {HTTP_STATUS[c] for c in (Error.TOKEN_INVALID, Error.TOKEN_EXPIRED, Error.TOKEN_REVOKED)} == {401}
    assert HTTP_STATUS[Error.BAD_OFFSET] == HTTP_STATUS[Error.INVALID_CHANNEL] == 400


def test_a_websocket_only_code_reaching_rest_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert http_status(Error.INVALID_JSON) == 400
    assert "WebSocket-only reply error 'invalid_json'" in caplog.text


def test_error_bodies_serialise_codes_as_their_names() -> None:
    exc = api_error(Error.FORBIDDEN, "no", reason="foreign_account")
    assert exc.status_code == 403
    body = {"code": "forbidden", "message": "no", "reason": "foreign_account"}
    assert json.loads(json.dumps(exc.detail)) == body
    # A peer node's refusal may carry any field name, also one of api_error's keywords.
    refused = hub_error(HubError(Error.PAUSED, "paused", status_code=1), connectionId="c1")
    assert refused.status_code == 409
    assert refused.detail == {"code": "paused", "message": "paused", "status_code": 1, "connectionId": "c1"}
