"""The dashboard in real Chromium against a live hub: login, live views, recovery, roles, load."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.browser import WAIT_MS, WAIT_S
from tests.support.dashboard import ARTIFACTS, SUBPROTOCOLS, DashboardHub, login, make_signal, wait_live
from tests.support.waits import wait_until

pytestmark = pytest.mark.browser

ACCOUNT = "50123"


def wait_chip(page: Any, signal_id: str, account: str, status: str) -> None:
    """The status is visible in the rendered row, not only in the model."""
    page.wait_for_selector(
        f'.vt-row[data-id="{signal_id}"] .chip[data-account="{account}"][data-status="{status}"]',
        timeout=WAIT_MS,
    )


def test_login_refuses_a_bad_token_then_accepts_a_good_one(hub: DashboardHub, page: Any) -> None:
    page.goto(hub.http + "/")
    page.fill("#token-input", "not-a-token")
    page.click("#login-submit")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0", timeout=WAIT_MS)
    assert "refused" in page.text_content("#login-error")
    assert page.evaluate("document.body.dataset.view") == "login"

    token = hub.token("dashboard", "wall", "--account", "*")
    page.fill("#token-input", token)
    page.click("#login-submit")
    wait_live(page)
    assert page.text_content("#who") == "wall · dashboard"
    assert page.get_attribute("#conn-state", "data-state") == "open"
    assert page.evaluate("sessionStorage.getItem('mtbridge.token')") == token
    # The page's own connection shows up in the connections view.
    page.wait_for_selector("#connections-body tr.self", timeout=WAIT_MS)
    # Health samples arrive every second and are drawn.
    page.wait_for_function("document.querySelector('#h-conn').textContent !== '\u2013'", timeout=WAIT_MS)
    # A reload keeps the session (sessionStorage) and reconnects.
    page.reload()
    wait_live(page)


def test_signal_and_trade_events_appear_with_status_changes(
    hub: DashboardHub, page: Any, ea_factory: Any
) -> None:
    login(page, hub, hub.token("admin", "ops", "--account", "*"))
    engine = hub.token("engine", "engine-1", "--publish", "signals:*")
    ea_token = hub.token(
        "ea", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*", "--publish", "account:*"
    )

    sig = make_signal("alpha", [ACCOUNT])
    r = hub.rest("POST", "/api/v1/signals", engine, sig)
    assert r.status_code == 201, r.text
    wait_chip(page, sig["id"], ACCOUNT, "pending")

    ea = ea_factory(hub, ea_token)
    result = ea.request("subscribe", channel="signals:alpha", payload={"since": 0})
    assert result["recovered"] is True
    msg = ea.next_message("signals:alpha")
    assert msg["payload"]["id"] == sig["id"]
    wait_chip(page, sig["id"], ACCOUNT, "delivered")

    ea.request("signal.ack", payload={"signalId": sig["id"], "account": ACCOUNT})
    wait_chip(page, sig["id"], ACCOUNT, "acked")

    deal = ea.trade_event(
        "deal",
        ACCOUNT,
        signalId=sig["id"],
        ticket=991,
        symbol="EURUSD",
        side="buy",
        entry="in",
        volume=0.1,
        price=1.0801,
    )
    wait_chip(page, sig["id"], ACCOUNT, "executed")
    # The trade event is in the stream, and the end-to-end latency is shown for the signal.
    page.wait_for_selector(f'#events-vt .vt-row[data-id="{deal["id"]}"]', timeout=WAIT_MS)
    e2e = page.text_content(f'.vt-row[data-id="{sig["id"]}"] .c:nth-child(6)')
    assert e2e and e2e.strip() != "\u2013"  # en dash: no value

    # An account snapshot updates the accounts view.
    ea.trade_event(
        "account",
        ACCOUNT,
        balance=10000.0,
        equity=10012.5,
        margin=100.0,
        freeMargin=9912.5,
        positions=[{"ticket": 991, "symbol": "EURUSD", "side": "buy", "volume": 0.1, "priceOpen": 1.0801}],
    )
    row = f'#accounts-body tr[data-id="{ACCOUNT}"]'
    page.wait_for_function(
        f"document.querySelector('{row} td:nth-child(4)')?.textContent === '10012.50'", timeout=WAIT_MS
    )
    assert page.text_content(f"{row} td:nth-child(7)") == "1"
    page.wait_for_function(f"document.querySelector('{row} .dot.on') !== null", timeout=WAIT_MS)

    # A rejected order for a second signal.
    sig2 = make_signal("alpha", [ACCOUNT])
    assert hub.rest("POST", "/api/v1/signals", engine, sig2).status_code == 201
    ea.trade_event(
        "order",
        ACCOUNT,
        signalId=sig2["id"],
        state="rejected",
        symbol="EURUSD",
        side="buy",
        orderType="market",
        volume=0.1,
        retcode=10019,
        message="no money",
    )
    wait_chip(page, sig2["id"], ACCOUNT, "rejected")

    # Filters on the event stream.
    page.select_option("#ev-kind", "deal")
    page.wait_for_function(
        "document.querySelectorAll('#events-vt .vt-row:not([hidden])').length === 1", timeout=WAIT_MS
    )
    page.select_option("#ev-kind", "")
    page.fill("#ev-account", "99999")
    page.wait_for_function(
        "document.querySelectorAll('#events-vt .vt-row:not([hidden])').length === 0", timeout=WAIT_MS
    )
    page.fill("#ev-account", ACCOUNT)
    page.wait_for_function(
        "document.querySelectorAll('#events-vt .vt-row:not([hidden])').length === 3", timeout=WAIT_MS
    )


def test_hub_restart_is_recovered_without_reload_or_duplicates(hub: DashboardHub, page: Any) -> None:
    login(page, hub, hub.token("dashboard", "wall", "--account", "*"))
    engine = hub.token("engine", "engine-1", "--publish", "signals:*")
    page.evaluate("window.__sameDocument = true")
    first = [make_signal("beta", [ACCOUNT]) for _ in range(20)]
    for sig in first:
        assert hub.rest("POST", "/api/v1/signals", engine, sig).status_code == 201
    page.wait_for_function("window.mtbDashboard.stats().signals === 20", timeout=WAIT_MS)

    hub.stop()
    page.wait_for_function("window.mtbDashboard.state !== 'open'", timeout=WAIT_MS)
    state = page.get_attribute("#conn-state", "data-state")
    assert state in ("reconnecting", "connecting", "authenticating")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "restart-reconnecting.png"))
    hub.start()
    # Published while the page may still be away: it must arrive by REST reload, exactly once.
    second = [make_signal("beta", [ACCOUNT]) for _ in range(10)]
    for sig in second:
        assert hub.rest("POST", "/api/v1/signals", engine, sig).status_code == 201
    wait_live(page)
    page.wait_for_function("window.mtbDashboard.stats().signals === 30", timeout=WAIT_MS)
    # Live after the restart.
    third = make_signal("beta", [ACCOUNT])
    assert hub.rest("POST", "/api/v1/signals", engine, third).status_code == 201
    page.wait_for_function("window.mtbDashboard.stats().signals === 31", timeout=WAIT_MS)

    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    stats = page.evaluate("window.mtbDashboard.stats()")
    assert stats["reconnects"] >= 1
    assert stats["reloads"] >= 2
    ids = page.evaluate("window.mtbDashboard.signalIds()")
    assert len(ids) == len(set(ids)) == 31
    assert set(ids) == {s["id"] for s in [*first, *second, third]}
    # Newest first, in the rendered rows as well (the table is redrawn at most 10 times a second, so
    # wait for the redraw that follows the last signal).
    page.wait_for_function(
        "id => document.querySelector('#signals-vt .vt-row:not([hidden])')?.dataset.id === id",
        arg=third["id"],
        timeout=WAIT_MS,
    )
    dom_ids = page.eval_on_selector_all(
        "#signals-vt .vt-row:not([hidden])", "rows => rows.map(r => r.dataset.id)"
    )
    assert dom_ids and len(dom_ids) == len(set(dom_ids))
    assert dom_ids[0] == third["id"]


def publish_many(hub: DashboardHub, token: str, signals: list[dict[str, Any]]) -> None:
    """Pipelined WebSocket publishes (an engine's fast path), then every result."""
    with connect(hub.url, subprotocols=SUBPROTOCOLS, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"type": "auth", "requestId": "auth", "payload": {"token": token}}))
        for i, sig in enumerate(signals):
            channel = f"signals:{sig['strategy']}"
            ws.send(json.dumps({"type": "publish", "requestId": str(i), "channel": channel, "payload": sig}))
        results = 0
        while results < len(signals):
            msg = json.loads(ws.recv(timeout=WAIT_S))
            assert msg["type"] != "error", msg
            if msg["type"] == "result" and msg.get("requestId") != "auth":
                results += 1


def test_long_outage_is_recovered_by_paging_back_over_rest(hub: DashboardHub, page: Any) -> None:
    """More signals than one REST page are published while the page is cut off from the hub."""
    gate = {"open": True}

    def route(ws: Any) -> None:
        if gate["open"]:
            ws.connect_to_server()
        else:
            ws.close(code=4008, reason="test: cut off")

    page.route_web_socket("**/ws", route)
    login(page, hub, hub.token("dashboard", "wall", "--account", "*"))
    engine = hub.token("engine", "engine-1", "--publish", "signals:*")
    page.evaluate("window.__sameDocument = true")
    first = [make_signal("delta", [ACCOUNT]) for _ in range(20)]
    publish_many(hub, engine, first)
    page.wait_for_function("window.mtbDashboard.stats().signals === 20", timeout=WAIT_MS)

    gate["open"] = False
    hub.stop()
    page.wait_for_function("window.mtbDashboard.state !== 'open'", timeout=WAIT_MS)
    hub.start()
    missed = [make_signal("delta", [ACCOUNT]) for _ in range(700)]
    publish_many(hub, engine, missed)
    assert page.evaluate("window.mtbDashboard.stats().signals") == 20
    gate["open"] = True
    wait_live(page)
    page.wait_for_function("window.mtbDashboard.stats().signals === 720", timeout=WAIT_MS)
    ids = page.evaluate("window.mtbDashboard.signalIds()")
    assert len(ids) == len(set(ids)) == 720
    assert set(ids) == {s["id"] for s in [*first, *missed]}
    assert page.evaluate("window.__sameDocument") is True


def test_dashboard_role_sees_no_controls_and_the_hub_refuses_them(
    hub: DashboardHub, page: Any, ea_factory: Any
) -> None:
    dash = hub.token("dashboard", "viewer", "--account", "*")
    ea_token = hub.token("ea", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*")
    ea = ea_factory(hub, ea_token)
    ea.trade_event("account", ACCOUNT, balance=1.0, equity=1.0, margin=0.0, freeMargin=1.0)
    login(page, hub, dash)
    page.wait_for_selector(f'#accounts-body tr[data-id="{ACCOUNT}"]', timeout=WAIT_MS)
    page.wait_for_function("document.querySelectorAll('#connections-body tr').length >= 2", timeout=WAIT_MS)
    assert page.query_selector("#panel-controls") is None
    assert page.query_selector_all("#accounts-body button, #connections-body button") == []
    assert page.query_selector_all("button.ctl, button.danger, #rv-submit") == []

    # The hub refuses the commands anyway.
    conns = hub.rest("GET", "/api/v1/connections", dash).json()["items"]
    assert (
        hub.rest(
            "POST", "/api/v1/control", dash, {"scope": "account", "account": ACCOUNT, "command": "pause"}
        ).status_code
        == 403
    )
    assert (
        hub.rest(
            "POST", "/api/v1/control", dash, {"scope": "strategy", "strategy": "alpha", "command": "pause"}
        ).status_code
        == 403
    )
    assert hub.rest("DELETE", f"/api/v1/connections/{conns[0]['id']}", dash).status_code == 403
    assert (
        hub.rest("POST", "/api/v1/tokens/revoke", dash, {"kind": "sub", "value": f"ea-{ACCOUNT}"}).status_code
        == 403
    )
    # Same calls made from the page itself, with its own token.
    statuses = page.evaluate(
        """async (acc) => {
          const h = {Authorization: 'Bearer ' + sessionStorage.getItem('mtbridge.token'),
                     'Content-Type': 'application/json'};
          const r1 = await fetch('/api/v1/control', {method: 'POST', headers: h,
                                 body: JSON.stringify({scope: 'account', account: acc, command: 'pause'})});
          const r2 = await fetch('/api/v1/tokens/revoke', {method: 'POST', headers: h,
                                 body: JSON.stringify({kind: 'sub', value: 'ea-' + acc})});
          return [r1.status, r2.status];
        }""",
        ACCOUNT,
    )
    assert statuses == [403, 403]
    admin = hub.token("admin", "ops", "--account", "*")
    assert hub.rest("GET", "/api/v1/control", admin).json() == {"accounts": [], "strategies": []}
    ea.request("heartbeat")  # still connected: nothing was closed or revoked


def test_admin_controls_pause_close_and_revoke(hub: DashboardHub, page: Any, ea_factory: Any) -> None:
    admin = hub.token("admin", "ops", "--account", "*")
    engine = hub.token("engine", "engine-1", "--publish", "signals:*")
    ea_token = hub.token("ea", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*")
    ea = ea_factory(hub, ea_token)
    ea.trade_event("account", ACCOUNT, balance=5.0, equity=5.0, margin=0.0, freeMargin=5.0)
    ctl = ea.request("subscribe", channel=f"account:{ACCOUNT}:control", payload={"since": 0})
    assert ctl["durable"] is True
    login(page, hub, admin)

    # Pause and resume a strategy.
    page.fill("#ctl-strategy", "gamma")
    page.click("#ctl-pause")
    page.wait_for_selector('#paused-list [data-scope="strategy"][data-key="gamma"]', timeout=WAIT_MS)
    assert hub.rest("GET", "/api/v1/control", admin).json()["strategies"] == ["gamma"]
    refused = hub.rest("POST", "/api/v1/signals", engine, make_signal("gamma", [ACCOUNT]))
    assert refused.status_code == 409 and refused.json()["detail"]["code"] == "paused"
    page.click("#ctl-resume")
    page.wait_for_function("!document.querySelector('#paused-list [data-key=\"gamma\"]')", timeout=WAIT_MS)
    assert hub.rest("POST", "/api/v1/signals", engine, make_signal("gamma", [ACCOUNT])).status_code == 201

    # Pause an account from its row: the EA gets the command on its control channel.
    button = f'#accounts-body tr[data-id="{ACCOUNT}"] button'
    page.wait_for_selector(button, timeout=WAIT_MS)
    page.click(button)
    msg = _account_command(ea)
    assert msg["payload"]["command"] == "pause" and msg["payload"]["account"] == ACCOUNT
    page.wait_for_function(f"document.querySelector('{button}').textContent === 'resume'", timeout=WAIT_MS)
    page.click(button)
    msg = _account_command(ea)
    assert msg["payload"]["command"] == "resume"

    # Close the EA's connection (two clicks): it is closed with 4006.
    ea_row = page.wait_for_selector("#connections-body tr:has(td.role-ea) button", timeout=WAIT_MS)
    ea_row.click()
    assert ea_row.text_content() == "confirm?"
    ea_row.click()
    code = wait_until(lambda: _closed_code(ea), "the EA's connection to close")
    assert code == 4006

    # Revoke the EA's subject: a new connection with its token is refused (4501).
    page.select_option("#rv-kind", "sub")
    page.fill("#rv-value", f"ea-{ACCOUNT}")
    page.click("#rv-submit")
    page.click("#rv-submit")
    page.wait_for_function(
        "document.querySelector('#ops-status').textContent.startsWith('revoked')", timeout=WAIT_MS
    )
    with connect(hub.url, subprotocols=SUBPROTOCOLS, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"type": "auth", "requestId": "1", "payload": {"token": ea_token}}))
        replies = []
        try:
            while True:
                replies.append(json.loads(ws.recv(timeout=WAIT_S)))
        except Exception:
            pass
        assert ws.close_code == 4501
        assert any(r.get("type") == "error" and r["payload"]["code"] == "token_revoked" for r in replies)


def _account_command(ea: Any) -> dict[str, Any]:
    """The next account-scoped command on the EA's control channel (strategy ones go there too)."""
    while True:
        msg = ea.next_message(f"account:{ACCOUNT}:control")
        if msg["payload"]["scope"] == "account":
            return msg  # type: ignore[no-any-return]


def _closed_code(ea: Any) -> int | None:
    try:
        ea.ws.recv(timeout=0.2)
    except TimeoutError:
        return None
    except Exception:
        return ea.ws.close_code  # type: ignore[no-any-return]
    return None


FLOOD_RATE = 1000  # signals per second offered
FLOOD_SECONDS = 3


def test_page_keeps_up_with_1000_signals_per_second(hub: DashboardHub, page: Any, ea_factory: Any) -> None:
    """Counts dropped frames and time to render while signals flow; asserts the UI kept up."""
    admin = hub.token("admin", "ops", "--account", "*")
    engine = hub.token("engine", "flood", "--publish", "signals:*")
    ea = ea_factory(hub, hub.token("ea", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*"))
    ea.trade_event("account", ACCOUNT, balance=10000.0, equity=10250.0, margin=300.0, freeMargin=9950.0)
    login(page, hub, admin)
    page.evaluate(
        """() => {
          const m = window.__frames = {gaps: [], last: performance.now(), running: true};
          const tick = (t) => {
            m.gaps.push(t - m.last); m.last = t; if (m.running) requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }"""
    )
    total = FLOOD_RATE * FLOOD_SECONDS
    ids: list[str] = []
    errors: list[str] = []
    sent_done = threading.Event()

    def flood() -> None:
        try:
            with connect(
                hub.url,
                subprotocols=SUBPROTOCOLS,
                open_timeout=WAIT_S,
                max_size=2**20,
            ) as ws:
                ws.send(json.dumps({"type": "auth", "requestId": "a", "payload": {"token": engine}}))
                acks = 0
                start = time.monotonic()
                for i in range(total):
                    # Pace to FLOOD_RATE: send in 10 ms slices.
                    due = start + i / FLOOD_RATE
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # the load under test: publishing paced to FLOOD_RATE
                    sig = make_signal("flood", [ACCOUNT, "50124"], id=str(uuid.uuid4()))
                    ids.append(sig["id"])
                    ws.send(
                        json.dumps(
                            {
                                "type": "publish",
                                "requestId": str(i),
                                "channel": "signals:flood",
                                "payload": sig,
                            }
                        )
                    )
                sent_done.set()
                while acks < total:
                    msg = json.loads(ws.recv(timeout=WAIT_S * 4))
                    if msg.get("type") == "result" and msg.get("requestId") != "a":
                        acks += 1
                    elif msg.get("type") == "error":
                        errors.append(json.dumps(msg)[:300])
                        acks += 1
        except Exception as exc:  # reported by the main thread
            errors.append(repr(exc))
            sent_done.set()

    t0 = time.monotonic()
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    sent_done.wait(timeout=WAIT_S * 4)
    offered_s = time.monotonic() - t0
    # Mid-flood screenshot of the live page.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "under-load.png"))
    sender.join(timeout=WAIT_S * 8)
    assert not sender.is_alive(), "publisher did not finish"
    assert not errors, errors[:5]
    committed_s = time.monotonic() - t0
    page.wait_for_function(f"window.mtbDashboard.stats().signalsSeen >= {total}", timeout=WAIT_MS * 4)
    rendered_s = time.monotonic() - t0
    # The newest signal is the top rendered row.
    page.wait_for_selector(f'#signals-vt .vt-row[data-id="{ids[-1]}"]', timeout=WAIT_MS)
    frames = page.evaluate(
        """() => { const m = window.__frames; m.running = false; const g = m.gaps.slice(1);
                   const sorted = [...g].sort((a, b) => a - b);
                   const dropped = g.reduce((n, x) => n + Math.max(0, Math.round(x / 16.7) - 1), 0);
                   return {frames: g.length, dropped, longest: sorted[sorted.length - 1] || 0,
                           p95: sorted[Math.floor(sorted.length * 0.95)] || 0,
                           over50: g.filter(x => x > 50).length}; }"""
    )
    stats = page.evaluate("window.mtbDashboard.stats()")
    figures = {
        "signals": total,
        "offeredRatePerSec": round(total / offered_s, 1),
        "committedRatePerSec": round(total / committed_s, 1),
        "allRenderedAfterS": round(rendered_s, 2),
        **frames,
        "appFrames": stats["frames"],
        "messagesApplied": stats["applied"],
    }
    (ARTIFACTS / "responsiveness.json").write_text(json.dumps(figures, indent=2))
    print("responsiveness:", json.dumps(figures))
    # Functional: every signal arrived once, the table is capped, the page answers.
    ids_seen = page.evaluate("window.mtbDashboard.signalIds()")
    assert len(ids_seen) == len(set(ids_seen))
    assert set(ids) <= set(ids_seen)
    # Everything received is applied by the next animation frame (a status push may still be in).
    page.wait_for_function("window.mtbDashboard.stats().inbox === 0", timeout=WAIT_MS)
    dom_rows = page.eval_on_selector_all("#signals-vt .vt-row", "rows => rows.length")
    assert dom_rows < 200, "the signal table is virtualised"
    assert frames["frames"] > 0
    # The only timing bound: very generous, it catches a frozen page, not a slow machine.
    assert frames["longest"] < 10_000


class EAWorker(threading.Thread):
    """An EA in a thread: acks every signal for its account, then executes or rejects it."""

    def __init__(
        self, hub: DashboardHub, account: str, strategy: str, expect: int, reject_every: int
    ) -> None:
        super().__init__(daemon=True)
        self.hub = hub
        self.account = account
        self.strategy = strategy
        self.expect = expect
        self.reject_every = reject_every
        self.token = hub.token("ea", f"ea-{account}", "--account", account, "--subscribe", "signals:*")
        self.handled = 0
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            self.errors.append(repr(exc))

    def _run(self) -> None:
        acc = self.account
        with connect(self.hub.url, subprotocols=SUBPROTOCOLS, open_timeout=WAIT_S, max_size=2**20) as ws:
            rid = 0

            def send(mtype: str, **fields: Any) -> None:
                nonlocal rid
                rid += 1
                ws.send(json.dumps({"type": mtype, "requestId": f"r{rid}", **fields}))

            send("auth", payload={"token": self.token})
            send("subscribe", channel=f"signals:{self.strategy}", payload={"since": 0})
            equity = 10_000.0
            answers = 0
            while self.handled < self.expect:
                msg = json.loads(ws.recv(timeout=WAIT_S * 4))
                if msg["type"] == "error":
                    self.errors.append(json.dumps(msg)[:300])
                if str(msg.get("requestId", "")).startswith("r"):
                    answers += 1
                if msg["type"] != "message":
                    continue
                sig = msg["payload"]
                self.handled += 1
                send("signal.ack", payload={"signalId": sig["id"], "account": acc})
                now = int(time.time() * 1000)
                base = {"id": str(uuid.uuid4()), "account": acc, "ts": now, "signalId": sig["id"]}
                if self.handled % self.reject_every == 0:
                    event = {
                        **base,
                        "kind": "order",
                        "state": "rejected",
                        "symbol": sig["symbol"],
                        "side": sig["side"],
                        "orderType": "market",
                        "volume": sig["volume"],
                        "retcode": 10019,
                        "message": "no money",
                    }
                else:
                    event = {
                        **base,
                        "kind": "deal",
                        "ticket": 1000 + self.handled,
                        "symbol": sig["symbol"],
                        "side": sig["side"],
                        "entry": "in",
                        "volume": sig["volume"],
                        "price": 1.08,
                        "profit": round((self.handled % 7 - 3) * 1.25, 2),
                    }
                send("trade.event", payload=event)
                if self.handled % 50 == 0:
                    equity += (self.handled % 3 - 1) * 12.5
                    send(
                        "trade.event",
                        payload={
                            "id": str(uuid.uuid4()),
                            "kind": "account",
                            "account": acc,
                            "ts": now,
                            "balance": 10_000.0,
                            "equity": equity,
                            "margin": 120.0,
                            "freeMargin": equity - 120.0,
                            "positions": [
                                {
                                    "ticket": 1000 + self.handled,
                                    "symbol": "EURUSD",
                                    "side": "buy",
                                    "volume": 0.1,
                                    "priceOpen": 1.08,
                                }
                            ],
                        },
                    )
            # Drain the answers to what was sent, so every event is committed before we leave.
            deadline = time.monotonic() + WAIT_S * 4
            answered = rid
            while answers < answered and time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=WAIT_S * 4))
                if msg["type"] == "error":
                    self.errors.append(json.dumps(msg)[:300])
                if str(msg.get("requestId", "")).startswith("r"):
                    answers += 1


def test_page_agrees_with_the_ledger_after_a_mixed_live_load(hub: DashboardHub, browser: Any) -> None:
    """Engines publish, two EAs ack and execute or reject, a third account never connects; then
    every status on the page equals the hub's ledger. Screenshots for docs/dashboard.md."""
    engine = hub.token("engine", "engine-mix", "--publish", "signals:*")
    admin = hub.token("admin", "ops", "--account", "*")
    total = 600
    eas = [EAWorker(hub, "50123", "mixed", total, 9), EAWorker(hub, "50124", "mixed", total, 4)]
    for ea in eas:
        ea.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = []
    for name, viewport, scheme in (
        ("laptop-dark", (1440, 1000), "dark"),
        ("wall-light", (2560, 1440), "light"),
    ):
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=scheme
        )
        shots.append((name, context, context.new_page()))
    try:
        for _, _, pg in shots:
            login(pg, hub, admin)
        signals = [make_signal("mixed", ["50123", "50124", "50125"]) for _ in range(total)]
        for i in range(0, total, 100):  # about 200 signals/s, in slices
            publish_many(hub, engine, signals[i : i + 100])
            time.sleep(0.5)  # the load under test: 100 signals per 0.5 s
            if i == 300:
                for name, _, pg in shots:
                    pg.screenshot(path=str(ARTIFACTS / f"live-{name}.png"))
        for ea in eas:
            ea.join(timeout=WAIT_S * 4)
            assert not ea.is_alive() and not ea.errors, ea.errors[:3]

        def ledger() -> dict[tuple[str, str], str]:
            out: dict[tuple[str, str], str] = {}
            cursor = None
            while True:
                q = "/api/v1/signals?strategy=mixed&limit=1000" + (f"&cursor={cursor}" if cursor else "")
                body = hub.rest("GET", q, admin).json()
                for item in body["items"]:
                    for d in item["deliveries"]:
                        out[(item["id"], d["account"])] = d["status"]
                cursor = body["nextCursor"]
                if not cursor:
                    return out

        def settled() -> dict[tuple[str, str], str] | None:
            state = ledger()
            done = all(s in ("executed", "rejected") for (_, acc), s in state.items() if acc != "50125")
            return state if done and len(state) == total * 3 else None

        truth = wait_until(settled, "every EA delivery to reach a final status", timeout=WAIT_S * 4)
        expected = {"executed": 0, "rejected": 0, "pending": 0}
        for status in truth.values():
            expected[status] = expected.get(status, 0) + 1
        assert expected["pending"] == total  # 50125 never connected
        for _, _, pg in shots:
            pg.wait_for_function(
                """(ids) => ids.every((id) => {
                     const s = window.mtbDashboard.signal(id);
                     const done = (a) => ['executed', 'rejected'].includes(s.deliveries[a].status);
                     return s && done('50123') && done('50124');
                   })""",
                arg=[s["id"] for s in signals],
                timeout=WAIT_MS * 2,
            )
            on_page = pg.evaluate(
                """(ids) => Object.fromEntries(ids.flatMap((id) => {
                     const s = window.mtbDashboard.signal(id);
                     return Object.entries(s.deliveries).map(([acc, d]) => [id + '/' + acc, d.status]);
                   }))""",
                [s["id"] for s in signals],
            )
            assert on_page == {f"{sid}/{acc}": status for (sid, acc), status in truth.items()}
        for name, _, pg in shots:
            pg.wait_for_timeout(1500)  # let the health charts take one more sample
            pg.screenshot(path=str(ARTIFACTS / f"settled-{name}.png"))
    finally:
        for _, context, _ in shots:
            context.close()


def test_token_refresh_banner_and_revocation_back_to_login(hub: DashboardHub, page: Any) -> None:
    # A token inside the hub's 60 s warning window: the banner asks for a new one at once.
    short = hub.token("dashboard", "night-shift", "--account", "*", "--ttl", "62")
    fresh = hub.token("dashboard", "night-shift", "--account", "*", "--ttl", "3600")
    login(page, hub, short)
    page.wait_for_selector("#banner:not([hidden]) #refresh-form:not([hidden])", timeout=WAIT_MS)
    page.fill("#refresh-input", fresh)
    page.click("#refresh-form button")
    page.wait_for_selector("#banner", state="hidden", timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.getItem('mtbridge.token')") == fresh
    assert page.evaluate("window.mtbDashboard.state") == "open"
    # The theme toggle flips and is remembered.
    before = page.evaluate("document.documentElement.dataset.theme")
    page.click("#theme")
    after = page.evaluate("document.documentElement.dataset.theme")
    assert {before, after} == {"dark", "light"}
    assert page.evaluate("localStorage.getItem('mtbridge.theme')") == after

    # Revoking the subject closes the page's connection with 4501: back to the login form.
    admin = hub.token("admin", "ops", "--account", "*")
    r = hub.rest("POST", "/api/v1/tokens/revoke", admin, {"kind": "sub", "value": "night-shift"})
    assert r.status_code == 200
    page.wait_for_function("document.body.dataset.view === 'login'", timeout=WAIT_MS)
    assert "4501" in page.text_content("#login-error")
    assert page.get_attribute("#conn-state", "data-state") == "closed"
    assert page.evaluate("sessionStorage.getItem('mtbridge.token')") is None
    # Logging in again with another token starts a fresh session.
    login(page, hub, hub.token("dashboard", "day-shift", "--account", "*"))
    assert page.text_content("#who") == "day-shift · dashboard"
