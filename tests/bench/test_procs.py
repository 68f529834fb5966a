"""The harness's reading of /proc/stat: steal time of the server's core, which the results carry so that
a figure measured while the hypervisor took the core away can be told apart."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.bench.procs import CoreTicks, core_ticks, cpu_probe_ms, parse_core_ticks, steal_between

STAT = """cpu  32181 0 4952 66426 935 0 285 510 0 0
cpu0 17554 0 1982 33043 218 0 96 196 0 0
cpu1 14626 0 2969 33382 717 0 189 314 0 0
intr 123 0 0
"""


def test_parses_the_named_core_only() -> None:
    assert parse_core_ticks(STAT, 0) == CoreTicks(17554 + 1982 + 33043 + 218 + 96 + 196, 196)
    assert parse_core_ticks(STAT, 1) == CoreTicks(14626 + 2969 + 33382 + 717 + 189 + 314, 314)
    assert parse_core_ticks(STAT, 2) is None  # no such core; "cpu " (all cores) is never taken for it


def test_steal_share_of_an_interval() -> None:
    before, after = CoreTicks(1000, 10), CoreTicks(1200, 60)
    assert after.steal_since(before) == 0.25
    assert CoreTicks(5, 1).steal_since(CoreTicks(5, 1)) is None  # no ticks passed
    assert steal_between(None, after) is None
    assert steal_between(before, after) == 0.25


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=4, max_size=12), st.integers(0, 64))
def test_any_counter_line_parses_or_is_absent(fields: list[int], core: int) -> None:
    line = f"cpu{core} " + " ".join(map(str, fields))
    ticks = parse_core_ticks(f"cpu  1 2 3 4\n{line}\n", core)
    assert ticks is not None
    assert ticks.total == sum(fields[:8])
    assert ticks.steal == (fields[7] if len(fields) > 7 else 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_reads_this_machine() -> None:
    ticks = core_ticks(0)
    assert ticks is not None and ticks.total > 0 and 0 <= ticks.steal <= ticks.total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU affinity is Linux's")
def test_cpu_probe_runs_on_the_core_and_gives_the_process_its_cores_back() -> None:
    before = os.sched_getaffinity(0)
    ms = cpu_probe_ms(min(before), rounds=1)
    assert ms > 0
    assert os.sched_getaffinity(0) == before
