"""IterationBatch: what one loop iteration collects is handled together, batches keep their order,
and drain waits for every batch taken."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.hub.batch import IterationBatch


async def test_items_of_one_iteration_form_one_batch_and_batches_keep_their_order() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def handle(items: list[int]) -> None:
        seen.append(items)
        await release.wait()

    batch: IterationBatch[int] = IterationBatch(handle, "test")
    for n in range(3):
        batch.add(n)
    assert len(batch) == 3 and batch.running == 1
    await asyncio.sleep(0)  # the loop runs the batch's task: it takes what was collected
    assert seen == [[0, 1, 2]] and len(batch) == 0
    batch.add(3)  # a second batch starts while the first still waits for its "commit"
    batch.add(4)
    await asyncio.sleep(0)
    assert seen == [[0, 1, 2], [3, 4]] and batch.running == 2
    release.set()
    await batch.drain()
    assert batch.running == 0


async def test_a_failing_batch_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[list[str]] = []

    async def handle(items: list[str]) -> None:
        if "bad" in items:
            raise RuntimeError("boom")
        handled.append(items)

    batch: IterationBatch[str] = IterationBatch(handle, "test-fail")
    with caplog.at_level(logging.ERROR, logger="mtbridge.hub"):
        batch.add("bad")
        await batch.drain()
        batch.add("good")
        await batch.drain()
    assert handled == [["good"]]
    assert any("test-fail: a batch of 1 failed" in r.getMessage() for r in caplog.records)
    assert batch.running == 0 and len(batch) == 0
