"""The Grafana board and the alert rules name only metrics (and labels) a live hub exports; promtool
checks the Prometheus configuration and unit-tests the alert rules (deploy/prometheus/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.hub.metrics import HubMetrics
from tests.support.factories import numbered_signal
from tests.support.hub import ROOT, WAIT, Client, running_hub

BOARD = ROOT / "deploy" / "grafana" / "mtbridge.json"
PROMETHEUS = ROOT / "deploy" / "prometheus"
#: Series Prometheus makes itself, not the hub.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
}
#: Identifiers not followed by "(" (functions), once label sets, ranges, strings and groupings are gone.
METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
NOT_NAMES = re.compile(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)')
BY = re.compile(r"\bby\s*\(([^)]*)\)")
PROMQL_WORDS = {
    "sum", "max", "min", "count", "rate", "increase", "deriv", "histogram_quantile", "by", "and", "or",
    "label_values", "avg", "without", "offset", "on", "ignoring",
}  # fmt: skip


def board_queries() -> list[str]:
    board = json.loads(BOARD.read_text())
    out = []
    for panel in board["panels"]:
        out.extend(t["expr"] for t in panel.get("targets", []))
    for var in board["templating"]["list"]:
        if var["type"] == "query":  # label_values(<selector>, <label>): the selector is the query
            out.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", var["definition"]))
    return out


def rule_queries() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def names_in(expr: str) -> set[str]:
    return {m for m in METRIC.findall(NOT_NAMES.sub(" ", expr)) if m not in PROMQL_WORDS}


async def scrape_after_traffic(tmp_path: Path) -> str:
    """A live hub's /metrics after the traffic that creates every labelled series the board uses."""
    async with running_hub(tmp_path) as h:
        ea = await h.connect(h.token("ea", "ea-50123", accounts=["50123"], subscribe=["signals:*"]))
        engine = await h.connect(h.token("engine", "eng", publish=["signals:*"]))
        assert (await ea.request("subscribe", "signals:alpha", {"since": 0}))["type"] == "result"
        published = await engine.request("publish", "signals:alpha", numbered_signal(0, volume=0.01))
        assert published["type"] == "result", published
        live = await ea.until(lambda m: m.get("type") == "message")
        sid = live["payload"]["id"]
        assert (await ea.request("signal.ack", payload={"signalId": sid}))["type"] == "result"
        event = {
            "id": str(uuid.uuid4()), "kind": "deal", "account": "50123", "ts": 1_700_000_000_000,
            "signalId": sid, "ticket": 7, "symbol": "EURUSD", "side": "buy", "entry": "in",
            "volume": 0.01, "price": 1.08,
        }  # fmt: skip
        assert (await ea.request("trade.event", payload=event))["type"] == "result"
        late = await h.connect(h.token("ea", "ea-50123b", accounts=["50123"], subscribe=["signals:*"]))
        await late.request("subscribe", "signals:alpha", {"since": 0})
        await late.until(lambda m: m.get("type") == "message")  # a replay
        bad = await Client.open(h.url)
        await bad.request("auth", payload={"token": "not-a-token"})
        await bad.closed()
        await late.close()
        async with httpx.AsyncClient(base_url=h.http, timeout=WAIT) as http:
            return (await http.get("/metrics")).text


def declared_labels(sample: str) -> set[str]:
    """Label names a hub metric is declared with, for series the traffic above did not create (drops
    need a slow consumer): prometheus_client keeps them on the collector."""
    registry = HubMetrics().registry
    collector = registry._names_to_collectors.get(sample)  # no public lookup by name
    return set(getattr(collector, "_labelnames", ()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], dict[str, set[str]]]:
    """(every sample name the hub exports, the label names seen on each)."""
    import asyncio

    text = asyncio.run(scrape_after_traffic(tmp_path_factory.mktemp("hub")))
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


@pytest.mark.parametrize("source", ["board", "alerts"])
def test_every_query_names_metrics_and_labels_the_hub_exports(
    source: str, exported: tuple[set[str], dict[str, set[str]]]
) -> None:
    names, labels = exported
    queries = board_queries() if source == "board" else rule_queries()
    assert queries
    for expr in queries:
        assert names_in(expr), expr
        used = names_in(expr) - PROMETHEUS_OWN
        if not used:
            continue
        missing = used - names
        assert not missing, f"{source}: {expr!r} names {sorted(missing)}, which the hub does not export"
        # Grouping labels must exist on the metric (job and instance come from Prometheus).
        have = set().union(*(labels.get(n, set()) or declared_labels(n) for n in used))
        have |= {"job", "instance", "le"}
        for group in BY.findall(expr):
            wanted = {g.strip() for g in group.split(",") if g.strip()}
            assert wanted <= have, (
                f"{source}: {expr!r} groups by {sorted(wanted - have)}, not on {sorted(used)}"
            )


def test_latencies_are_histograms(exported: tuple[set[str], dict[str, set[str]]]) -> None:
    names, _ = exported
    for metric in (
        "mtbridge_signal_delivery_seconds",
        "mtbridge_store_commit_seconds",
        "mtbridge_publish_seconds",
    ):
        assert metric + "_bucket" in names
    assert not any(n.endswith("_quantile") for n in names)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is missing: scripts/test.sh installs it (apt-get install prometheus)")
        pytest.skip("promtool is missing (scripts/test.sh installs Debian's prometheus package)")
    return path


def test_promtool_checks_the_config_and_unit_tests_the_alerts() -> None:
    tool = promtool()
    for args in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts.test.yml"]):
        out = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=WAIT * 6)
        assert out.returncode == 0, out.stdout + out.stderr
