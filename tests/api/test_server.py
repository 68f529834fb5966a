"""The serving process keeps the cyclic garbage collector off its hot path (``gc_young_threshold``)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bridge.server import GC_MIDDLE_EVERY, GC_OLD_EVERY
from tests.support.hub import HubProcess

PROBE = (
    "import gc, sys; from bridge.server import tune_collector; tune_collector(int(sys.argv[1])); "
    "print(*gc.get_threshold(), gc.get_freeze_count())"
)


@pytest.mark.parametrize("young", [0, 20_000, 5_000])
def test_tune_collector(young: int) -> None:
    # A process of its own: freezing and thresholds are process-wide and would leak into other tests.
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(young)], capture_output=True, text=True, check=True
    )
    a, b, c, frozen = (int(x) for x in out.stdout.split())
    if young == 0:
        assert (a, b, c, frozen) == (700, 10, 10, 0)
    else:
        assert (a, b, c) == (young, GC_MIDDLE_EVERY, GC_OLD_EVERY)
        assert frozen > 10_000  # the imported modules


def _frozen(hub: HubProcess) -> tuple[int, str]:
    with urllib.request.urlopen(hub.http + "/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(r"^mtbridge_gc_frozen_objects ([0-9.e+]+)$", text, re.M)
    assert match, text[:2000]
    return int(float(match.group(1))), text


@pytest.mark.parametrize("young", ["20000", "0"])
def test_serve_freezes_startup_objects_unless_disabled(tmp_path: Path, young: str) -> None:
    hub = HubProcess(tmp_path / "data", env={"MTBRIDGE_GC_YOUNG_THRESHOLD": young}).start()
    try:
        frozen, text = _frozen(hub)
        assert 'python_gc_collections_total{generation="0"}' in text
        if young == "0":
            assert frozen == 0
        else:
            assert frozen > 50_000  # FastAPI, SQLAlchemy, the hub: everything built at startup
    finally:
        hub.stop()
