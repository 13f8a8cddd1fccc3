"""Timers on the event loop, without any messaging platform."""

from __future__ import annotations

import asyncio

from scheduler.timers import Timers


async def test_once_every_cancel_and_a_failing_callback():
    timers = Timers()
    timers.start()
    ran: list[str] = []

    async def once() -> None:
        ran.append("once")

    async def tick() -> None:
        ran.append("tick")

    async def boom() -> None:
        ran.append("boom")
        raise RuntimeError("secret detail")

    try:
        timers.once(once, 0.05, "once")
        cancelled = timers.once(once, 0.05, "cancelled")
        cancelled.cancel()
        repeating = timers.every(tick, 0.05, "tick")
        failing = timers.every(boom, 0.05, "boom")
        await asyncio.sleep(0.4)
        repeating.cancel()
        failing.cancel()
        await asyncio.sleep(0.1)  # a run dispatched just before the cancel may still finish
        count = ran.count("tick")
        await asyncio.sleep(0.2)
        assert ran.count("once") == 1
        assert count >= 3 and ran.count("tick") == count  # stopped
        assert ran.count("boom") >= 3  # a failure does not stop the timer
        cancelled.cancel()  # twice: no error
    finally:
        timers.shutdown()
