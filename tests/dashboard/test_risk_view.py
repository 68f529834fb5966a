"""The dashboard shows the EA's risk-limit refusals by label and a daily-loss pause an operator can resume."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.browser import WAIT_MS
from tests.support.dashboard import DashboardHub, login

pytestmark = pytest.mark.browser

ACCOUNT = "50123"


def test_limit_rejection_label_and_daily_loss_pause_with_resume(
    hub: DashboardHub, page: Any, ea_factory: Any
) -> None:
    admin = hub.token("admin", "ops", "--account", "*")
    ea_token = hub.token("ea", f"ea-{ACCOUNT}", "--account", ACCOUNT, "--subscribe", "signals:*")
    ea = ea_factory(hub, ea_token)
    ea.trade_event("account", ACCOUNT, balance=10_000.0, equity=10_000.0, margin=0.0, freeMargin=10_000.0)
    ctl = ea.request("subscribe", channel=f"account:{ACCOUNT}:control", payload={"since": 0})
    assert ctl["durable"] is True
    login(page, hub, admin)
    button = f'#accounts-body tr[data-id="{ACCOUNT}"] button'
    page.wait_for_selector(button, timeout=WAIT_MS)

    # A limit's rejection is shown with its label from codes.json (generated from the registry).
    rejected = ea.trade_event(
        "order",
        ACCOUNT,
        state="rejected",
        symbol="EURUSD",
        side="buy",
        volume=0.1,
        message="max_open_positions",
    )
    row = f'#events-vt .vt-row[data-id="{rejected["id"]}"]'
    page.wait_for_selector(row, timeout=WAIT_MS)
    shown = "rejected buy 0.1 EURUSD · max open positions"
    page.wait_for_function(
        f"document.querySelector('{row}').textContent.includes('{shown}')", timeout=WAIT_MS
    )

    # The daily loss limit pauses the account: the event says so and the accounts table offers resume.
    day_end = (int(time.time()) // 86_400 + 1) * 86_400_000
    paused = ea.trade_event(
        "account",
        ACCOUNT,
        balance=10_000.0,
        equity=9_690.0,
        margin=108.0,
        freeMargin=9_582.0,
        riskState="daily_loss",
        dayStartEquity=10_000.0,
        resumeAt=day_end,
    )
    page.wait_for_selector(f'#events-vt .vt-row[data-id="{paused["id"]}"]', timeout=WAIT_MS)
    assert "paused: daily loss limit" in page.text_content(f'#events-vt .vt-row[data-id="{paused["id"]}"]')
    status = f'#accounts-body tr[data-id="{ACCOUNT}"] td:nth-child(9)'
    page.wait_for_function(
        f"document.querySelector('{status}').textContent === 'daily loss'", timeout=WAIT_MS
    )
    page.wait_for_function(f"document.querySelector('{button}').textContent === 'resume'", timeout=WAIT_MS)
    page.click(button)
    while True:
        msg = ea.next_message(f"account:{ACCOUNT}:control")
        if msg["payload"]["scope"] == "account":
            break
    assert (msg["payload"]["command"], msg["payload"]["account"]) == ("resume", ACCOUNT)

    # The EA reports the end of the pause; the row goes back to normal.
    ea.trade_event(
        "account",
        ACCOUNT,
        balance=10_000.0,
        equity=9_690.0,
        margin=108.0,
        freeMargin=9_582.0,
        riskState="active",
        dayStartEquity=9_690.0,
    )
    page.wait_for_function(f"document.querySelector('{status}').textContent === ''", timeout=WAIT_MS)
    page.wait_for_function(f"document.querySelector('{button}').textContent === 'pause'", timeout=WAIT_MS)
