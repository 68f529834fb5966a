"""The browser copy of the client (bridge/dashboard/static/mtbridge.js and msgpack.js, served by the
hub with no build step) in Debian's Chromium, against a live hub, in both encodings.

A page of the hub's own origin (``/readyz``) imports ``/mtbridge.js``; an engine client publishes, a
dashboard client receives; then the hub restarts while the page cannot reconnect (a gate in the
page's WebSocket), signals are published meanwhile, and the client recovers them by offset,
exactly once, after waiting the hub's ``reconnect {afterMs}`` hint. The MessagePack run also shows
that the codec is fetched only when asked for and that frames are binary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import WAIT_S, chromium, require_chromium
from tests.support.factories import signal
from tests.support.hub import HubProcess
from tests.support.waits import wait_until

pytestmark = pytest.mark.browser

BACKOFF_MAX_MS = 300

# Runs in the page: loads the client from the hub, connects both clients, subscribes from 0.
SETUP_JS = """
async ({ wsUrl, engineToken, dashToken, encoding, channel, backoffMaxMs, waitMs }) => {
  const { MTBridgeClient } = await import("/mtbridge.js");
  // While the gate is shut, connections go to a port where nothing listens (like a refused
  // connect), so the test can publish while the client is provably away.
  window.gate = { open: true };
  class GatedWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(window.gate.open ? url : "ws://127.0.0.1:9/ws", protocols);
    }
  }
  const engine = new MTBridgeClient(wsUrl, { token: engineToken, encoding });
  const dash = new MTBridgeClient(wsUrl, {
    token: dashToken, encoding, WebSocket: GatedWebSocket, backoffInitialMs: 50, backoffMaxMs,
  });
  window.t = { engine, dash, got: [], closes: [], hints: [], gaps: [], errors: [] };
  dash.on("close", (c) => window.t.closes.push(c));
  dash.on("reconnect", (h) => window.t.hints.push(h));
  dash.on("gap", (g) => window.t.gaps.push(g.channel));
  dash.on("error", ({ error }) => window.t.errors.push(String(error && error.message)));
  // connect() keeps retrying while the hub cannot be reached: bound the wait here.
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error("connect timed out")), waitMs));
  await Promise.race([Promise.all([engine.connect(), dash.connect()]), late]);
  const result = await dash.subscribe(
    channel, (payload, meta) => window.t.got.push({ id: payload.id, offset: meta.offset }), { since: 0 });
  return { encoding: dash.welcome.encoding, protocol: dash.protocol, durable: result.durable };
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as b:
        yield b


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_browser_copy_round_trip_and_recovery_after_hub_restart(
    browser: Any, tmp_path: Path, encoding: str
) -> None:
    hub = HubProcess(tmp_path / "hub")
    hub.start()
    context = None
    try:
        context = browser.new_context()
        page = context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        fetched: list[str] = []
        page.on("request", lambda req: fetched.append(req.url.removeprefix(hub.http)))
        frames: list[str | bytes] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
        # A real page of the hub (not one fulfilled by page.route: Chromium's local-network-access
        # checks refuse WebSockets to 127.0.0.1 from a page of unknown address space).
        page.goto(f"{hub.http}/readyz")

        strategy = f"browser{encoding}"
        channel = f"signals:{strategy}"
        engine = hub.token("engine", "browser-engine", publish=["signals:*"], subscribe=["signals:*"])
        dash = hub.token("dashboard", "browser-dash", accounts=["*"])
        setup = page.evaluate(
            SETUP_JS,
            {
                "wsUrl": hub.url,
                "engineToken": engine,
                "dashToken": dash,
                "encoding": encoding,
                "channel": channel,
                "backoffMaxMs": BACKOFF_MAX_MS,
                "waitMs": int(WAIT_S * 1000),
            },
        )
        assert setup == {"encoding": encoding, "protocol": f"mtbridge.v1.{encoding}", "durable": True}
        assert ("/msgpack.js" in fetched) == (encoding == "msgpack"), fetched
        assert "/msgpack.js" not in fetched or "/mtbridge.js" in fetched
        # Every frame the page sent was binary in MessagePack, text in JSON.
        assert frames and all(isinstance(f, bytes) == (encoding == "msgpack") for f in frames)

        ids = []
        first = signal(strategy, stops=False)
        ids.append(first["id"])
        published = page.evaluate("([ch, s]) => window.t.engine.publish(ch, s)", [channel, first])
        assert published["offset"] == 1 and published["duplicate"] is False
        wait_until(lambda: page.evaluate("window.t.got.length") == 1, "the live signal in the page")

        # The hub restarts while the page cannot get back in; what is published meanwhile must
        # be recovered by offset once it can.
        page.evaluate("window.gate.open = false")
        hub.stop()
        wait_until(lambda: page.evaluate("window.t.closes.some((c) => c.code === 1001)"), "close 1001")
        hub.start()
        for _ in range(3):
            s = signal(strategy, stops=False)
            ids.append(s["id"])
            r = httpx.post(
                f"{hub.http}/api/v1/signals",
                headers={"Authorization": f"Bearer {engine}"},
                json=s,
                timeout=WAIT_S,
            )
            assert r.status_code == 201, r.text
        assert page.evaluate("window.t.got.length") == 1
        page.evaluate("window.gate.open = true")
        wait_until(
            lambda: page.evaluate("window.t.got.length") == 4, "the 3 signals recovered after the restart"
        )
        wait_until(lambda: page.evaluate("window.t.engine.state") == "open", "the engine client back")
        last = signal(strategy, stops=False)
        ids.append(last["id"])
        page.evaluate("([ch, s]) => window.t.engine.publish(ch, s)", [channel, last])
        wait_until(lambda: page.evaluate("window.t.got.length") == 5, "a live signal after the recovery")
        page.evaluate("window.t.dash.heartbeat()")  # anything still in flight has arrived

        t = page.evaluate(
            "({got: window.t.got, closes: window.t.closes, hints: window.t.hints, "
            "gaps: window.t.gaps, errors: window.t.errors})"
        )
        assert [g["id"] for g in t["got"]] == ids, "every signal once, in order"
        assert [g["offset"] for g in t["got"]] == [1, 2, 3, 4, 5]
        assert t["gaps"] == []
        shutdown = next(c for c in t["closes"] if c["code"] == 1001)
        assert shutdown["reconnect"] is True
        assert len(t["hints"]) == 1 and t["hints"][0]["reason"] == "shutdown"
        assert shutdown["delayMs"] == min(t["hints"][0]["afterMs"], BACKOFF_MAX_MS), (shutdown, t["hints"])
        assert page_errors == []
        page.evaluate("window.t.engine.close(); window.t.dash.close()")
    finally:
        try:
            if context is not None:
                context.close()
        finally:
            hub.stop()  # even when closing the page fails: no hub outlives the test
