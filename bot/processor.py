"""Per-chat ordered, cross-chat concurrent update processing for PTB.

PTB processes one update at a time by default, and ``concurrent_updates(True)`` gives up any
ordering, so a double press of the same button can interleave with itself.
:class:`PerChatUpdateProcessor` runs updates of *different* chats concurrently (bounded by
``max_concurrent_updates``) and updates of the *same* chat strictly one after another, in
arrival order.

How the ordering is guaranteed
------------------------------
``Application`` takes updates from ``update_queue`` one by one and, for each, creates a task
that calls ``processor.process_update(update, coroutine)``. That method is ``@final`` in
:class:`~telegram.ext.BaseUpdateProcessor` and acquires a global semaphore *before* calling
:meth:`do_process_update`. Waiting for a chat's previous update inside that semaphore would
(a) let one busy chat occupy every slot, starving all other chats, and (b) make the order in
which same-chat updates reach :meth:`do_process_update` depend on the semaphore's wake-up order.

So the base-class semaphore is given an effectively unbounded capacity: acquiring it never
suspends, and each task reaches :meth:`do_process_update` within its first step, i.e. in task
creation order = ``update_queue`` order. There, *synchronously* (before any ``await``), the
update appends itself to its chat's chain: it takes the chat's current tail future as its
predecessor and installs its own future as the new tail. It then waits for the predecessor,
and only then acquires the real, bounded limiter and runs. A chat therefore holds at most one
limiter slot at a time, and each update waits for exactly its predecessor - a strict FIFO per
chat (unlike a dict of ``asyncio.Lock``, whose wake-up order is not part of its contract and
which cannot be cleaned up safely while tasks still queue on it).

Each update's future is resolved in ``finally`` - after success, exception or cancellation -
so a failing handler never breaks the chain. If an update is cancelled while still waiting,
its future is resolved only once its predecessor is done, so the order of the remaining
updates is still preserved. A chat's entry is deleted when its last update finishes, so memory
is proportional to the number of chats with work in flight.

Only blocking handlers are ordered: handlers registered with ``block=False`` are spawned as
separate tasks by PTB and escape any update processor.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Hashable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

__all__ = ["PerChatUpdateProcessor"]

# Capacity of the base-class semaphore, which must never make a task wait (see module doc).
_UNBOUNDED = sys.maxsize


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Process updates of different chats concurrently and updates of one chat in order.

    Use with ``ApplicationBuilder().concurrent_updates(PerChatUpdateProcessor(256))``.

    Args:
        max_concurrent_updates: Maximum number of updates whose handlers run at the same time.
            Updates waiting for an earlier update of their own chat do not count.

    Raises:
        ValueError: If ``max_concurrent_updates`` is not a positive integer.
    """

    __slots__ = ("_limit", "_limiter", "_running", "_tails")

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        if max_concurrent_updates < 1:
            raise ValueError("`max_concurrent_updates` must be a positive integer!")
        # The base class bounds its own semaphore by the `max_concurrent_updates` it sees during
        # __init__; our property reports _UNBOUNDED until _limit is set below.
        super().__init__(_UNBOUNDED)
        self._limit = max_concurrent_updates
        self._limiter = asyncio.Semaphore(max_concurrent_updates)
        self._running = 0
        # chat key -> future of the most recently arrived update of that chat
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    @property
    def max_concurrent_updates(self) -> int:
        """:obj:`int`: Maximum number of updates whose handlers run concurrently."""
        # getattr: the base-class __init__ reads this property before _limit is set.
        limit: int = getattr(self, "_limit", _UNBOUNDED)
        return limit

    @property
    def current_concurrent_updates(self) -> int:
        """:obj:`int`: Number of updates whose handlers are running right now (a snapshot)."""
        return self._running

    @property
    def pending_chats(self) -> int:
        """:obj:`int`: Number of chats that currently have updates running or waiting."""
        return len(self._tails)

    @staticmethod
    def ordering_key(update: object) -> Hashable | None:
        """Return the key whose updates must be processed in order, ``None`` for "unordered".

        The chat id if the update has a chat, else the user id, else ``None``. Private chats
        share their id with the user, so e.g. inline-message callback queries of a user are
        ordered together with that user's private chat.
        """
        if not isinstance(update, Update):
            return None
        if (chat := update.effective_chat) is not None:
            return chat.id
        if (user := update.effective_user) is not None:
            return user.id
        return None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for the previous update of the same chat, then run ``coroutine`` under the
        concurrency limit. Exceptions of ``coroutine`` propagate, like with PTB's
        :class:`~telegram.ext.SimpleUpdateProcessor`, after the chain has been advanced.
        """
        key = self.ordering_key(update)
        if key is None:
            await self._run(coroutine, previous=None)
            return

        # Everything up to the first await runs synchronously, so chain order = call order.
        previous = self._tails.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[key] = done
        try:
            await self._run(coroutine, previous)
        finally:
            if previous is None or previous.done():
                self._finish(key, done)
            else:
                # Cancelled while waiting: successors must still wait for our predecessor.
                previous.add_done_callback(lambda _: self._finish(key, done))

    async def _run(self, coroutine: Awaitable[Any], previous: asyncio.Future[None] | None) -> None:
        try:
            if previous is not None:
                # shield: cancelling this task must not cancel the predecessor's future.
                await asyncio.shield(previous)
            async with self._limiter:
                self._running += 1
                try:
                    await coroutine
                finally:
                    self._running -= 1
        finally:
            # Cancelled before it could start: close it instead of leaking a
            # "coroutine ... was never awaited" RuntimeWarning.
            _close_unawaited(coroutine)

    def _finish(self, key: Hashable, done: asyncio.Future[None]) -> None:
        if not done.done():
            done.set_result(None)
        # Only the last update of a chat removes the entry; a newer tail must stay.
        if self._tails.get(key) is done:
            del self._tails[key]

    async def initialize(self) -> None:
        """Reset the limiter when idle (a semaphore binds to the loop of its first waiter)."""
        if not self._tails and self._running == 0:
            self._limiter = asyncio.Semaphore(self._limit)

    async def shutdown(self) -> None:
        """Wait until every update handed to this processor has finished.

        ``Application.stop()`` already awaits the update tasks before ``shutdown()`` is called,
        so normally there is nothing left to wait for.
        """
        while self._tails:
            await asyncio.wait(list(self._tails.values()))


def _close_unawaited(coroutine: Awaitable[Any]) -> None:
    """Close ``coroutine`` if it was never started; no-op otherwise."""
    if inspect.iscoroutine(coroutine) and (
        inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
    ):
        coroutine.close()
