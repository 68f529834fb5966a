"""Property-based testing of the REST API from its own OpenAPI schema (schemathesis), against a
live hub over a real socket: no 500, no status, content type or body outside the schema, no broken
stream (a cut chunked body fails the call). Sized for about a minute on the 2-core test machine
(``EXAMPLES`` per operation, both valid and invalid inputs); raise ``MTBRIDGE_SCHEMA_EXAMPLES``
for a longer run.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from websockets.sync.client import connect

from tests.support import factories
from tests.support.hub import WAIT, HubProcess

EXAMPLES = int(os.environ.get("MTBRIDGE_SCHEMA_EXAMPLES", "30"))
ACCOUNT = "50123"


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path_factory.mktemp("schema") / "hub").start()
    try:
        _seed(hub)
        yield hub
    finally:
        hub.stop()


def _seed(hub: HubProcess) -> None:
    """A signal and a trade event, so that lists, pages and the CSV have rows to show."""
    admin = {"Authorization": f"Bearer {hub.token('admin', 'op')}"}
    with httpx.Client(base_url=hub.http, headers=admin, timeout=WAIT) as rest:
        r = rest.post(
            "/api/v1/signals",
            json=factories.signal("alpha", [ACCOUNT], stops=False, ttl=60),
        )
        assert r.status_code == 201, r.text
    token = hub.token("ea", "ea-1", accounts=[ACCOUNT])
    with connect(f"{hub.url}?token={token}", open_timeout=WAIT) as ws:
        assert json.loads(ws.recv(WAIT))["type"] == "welcome"
        event = {"id": str(uuid.uuid4()), "kind": "deal", "account": ACCOUNT, "ts": int(time.time() * 1000),
                 "ticket": 1, "symbol": "+1+1", "side": "buy", "entry": "in", "volume": 0.1, "price": 1.1,
                 "comment": "=1+1"}  # fmt: skip
        ws.send(json.dumps({"type": "trade.event", "requestId": "e", "payload": event}))
        while (answer := json.loads(ws.recv(WAIT))).get("requestId") != "e":
            pass
        assert answer["type"] == "result", answer


@pytest.fixture(scope="module")
def api_schema(live_hub: HubProcess) -> Any:
    return schemathesis.openapi.from_url(f"{live_hub.http}/openapi.json")


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_rest_api_conforms_to_its_schema(api_schema: Any, live_hub: HubProcess, mode: GenerationMode) -> None:
    """Every operation, with valid inputs (answers must be in the schema, never 5xx) and invalid
    ones (refused with a declared 4xx)."""
    auth = {"Authorization": f"Bearer {live_hub.token('admin', 'op', ttl=86400)}"}
    session = requests.Session()
    operations = _operations(api_schema)
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            # The admin token goes with every case, except where the case's headers themselves were
            # made invalid (a missing or malformed Authorization): adding it back would turn the
            # invalid request into a valid one, which the hub then rightly accepts.
            broken_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
            headers = dict(case.headers or {}) if broken_headers else {**auth, **(case.headers or {})}
            case.call_and_validate(session=session, headers=headers, timeout=WAIT)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
    assert "Traceback" not in live_hub.log.read_text()
