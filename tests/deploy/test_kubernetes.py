"""deploy/kubernetes: every manifest valid against the Kubernetes schemas (offline), and the probes,
ports, environment variables and metric names in them are the ones the hub really has."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes_validate import validate as k8s_validate
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import Settings
from tests.support.hub import ROOT, WAIT, running_hub

K8S = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes release still widely run (and the newest the package knows).
VERSIONS = ["1.30.0", "1.37.0"]
#: CRDs: no schema ships with kubernetes-validate, and fetching the operator's CRD at test time would
#: need the network. ServiceMonitor is checked below by what the operator reads from it.
CRDS = {"servicemonitor.yaml"}


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((K8S / name).read_text())
    assert isinstance(doc, dict)
    return doc


def manifests() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def container() -> dict[str, Any]:
    c = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert isinstance(c, dict)
    return c


def test_kustomization_lists_every_manifest() -> None:
    kust = load("kustomization.yaml")
    assert sorted(kust["resources"]) == manifests()
    assert all((K8S / r).is_file() for r in kust["resources"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", [m for m in manifests() if m not in CRDS])
def test_manifest_is_valid(name: str, version: str) -> None:
    for doc in yaml.safe_load_all((K8S / name).read_text()):
        k8s_validate(doc, version, strict=True)  # raises ValidationError with the path


def test_service_monitor_selects_the_service_and_scrapes_its_port() -> None:
    sm, svc = load("servicemonitor.yaml"), load("service.yaml")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    labels = svc["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in ports and ep["path"] == "/metrics"


def test_ports_and_selectors_line_up() -> None:
    c = container()
    (port,) = c["ports"]
    settings = load("configmap.yaml")["data"]
    assert port["containerPort"] == int(settings["MTBRIDGE_PORT"])
    svc = load("service.yaml")["spec"]
    assert svc["ports"][0]["targetPort"] == port["name"]
    pod_labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= pod_labels.items()
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    backend = load("ingress.yaml")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == load("service.yaml")["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in svc["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] == port["name"]


def test_every_environment_variable_is_a_hub_setting() -> None:
    names = set(load("configmap.yaml")["data"]) | {e["name"] for e in container()["env"]}
    fields = set(Settings.model_fields)
    unknown = {
        n for n in names if not n.startswith("MTBRIDGE_") or n[len("MTBRIDGE_") :].lower() not in fields
    }
    assert not unknown, f"not settings of bridge/config.py: {sorted(unknown)}"
    # Values parse as the hub would parse them.
    env = {k[len("MTBRIDGE_") :].lower(): v for k, v in load("configmap.yaml")["data"].items()}
    Settings.model_validate({k: v for k, v in env.items() if k not in {"allowed_origins", "trusted_proxies"}})
    kust = load("kustomization.yaml")
    generated = {f.split("=", 1)[0] for g in kust["secretGenerator"] for f in g["files"]}
    for e in container()["env"]:
        ref = e["valueFrom"].get("secretKeyRef")
        assert ref is None or ref["key"] in generated, e


def test_grace_period_covers_pre_stop_drain_and_shutdown() -> None:
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    data = load("configmap.yaml")["data"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    need = pre_stop + float(data["MTBRIDGE_DRAIN_WINDOW"]) + float(data["MTBRIDGE_SHUTDOWN_TIMEOUT"])
    assert spec["terminationGracePeriodSeconds"] >= need + 5  # and a margin


def test_probe_paths_and_autoscaling_metric_exist_on_a_live_hub(tmp_path: Path) -> None:
    c = container()
    hpa = load("hpa.yaml")["spec"]["metrics"]
    sm = load("servicemonitor.yaml")["spec"]["endpoints"][0]

    async def probe() -> tuple[dict[str, int], str]:
        async with running_hub(tmp_path) as h, httpx.AsyncClient(base_url=h.http, timeout=WAIT) as http:
            paths = {c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
            codes = {p: (await http.get(p)).status_code for p in paths}
            return codes, (await http.get(sm["path"])).text

    codes, text = asyncio.run(probe())
    assert codes == {"/readyz": 200, "/healthz": 200}
    exported = {f.name for f in text_string_to_metric_families(text)}
    for metric in hpa:
        assert metric["pods"]["metric"]["name"] in exported
