"""bridge/tasks.py: a stop cancels every task, waits for each, and goes on past a failed one."""

from __future__ import annotations

import asyncio

from bridge.tasks import cancel_and_wait


async def test_cancel_and_wait_finishes_every_task_and_skips_none_and_itself() -> None:
    cleaned: list[str] = []
    started = asyncio.Event()

    async def worker(name: str) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a finally that itself awaits still completes before the stop returns
            cleaned.append(name)

    async def failed() -> None:
        raise RuntimeError("died earlier")

    dead = asyncio.create_task(failed())
    await asyncio.gather(dead, return_exceptions=True)
    tasks = [asyncio.create_task(worker("a")), asyncio.create_task(worker("b"))]
    await started.wait()

    async def stopper() -> None:
        await cancel_and_wait([*tasks, None, dead, asyncio.current_task()])

    await asyncio.create_task(stopper())
    assert sorted(cleaned) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)
