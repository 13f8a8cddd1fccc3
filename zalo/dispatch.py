"""Where Zalo updates come from and in which order they are handled.

* ``PerChat``: updates of one chat are handled one after the other, in the order they
  arrived; different chats at the same time (up to ``limit`` updates in flight).
* ``Poller``: long polling. The Zalo Bot API gives ONE update per ``getUpdates`` call and
  has no offset (an update is gone once returned), so one poll runs at a time: two would
  hand two updates of one chat to the runner in either order.
* ``webhook_handler``: an aiohttp handler for the webhook; the secret in the
  ``X-Bot-Api-Secret-Token`` header is checked (403 otherwise), the update queued, 200 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from zalo.api import ZaloApi, ZaloError, ZaloNetworkError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 256 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[None]]


def chat_of(update: dict[str, Any]) -> str:
    message = update.get("message")
    if isinstance(message, dict):
        chat = message.get("chat")
        if isinstance(chat, dict) and chat.get("id") is not None:
            return str(chat["id"])
    return ""


class PerChat:
    """Runs a handler per update: one chat in order, chats concurrently."""

    def __init__(self, handler: Handler, limit: int = 256) -> None:
        self._handler = handler
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[str, deque[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, update: dict[str, Any]) -> None:
        chat = chat_of(update)
        queue = self._queues.get(chat)
        if queue is not None:  # a task is draining this chat: it takes this one too
            queue.append(update)
            return
        self._queues[chat] = deque([update])
        task = asyncio.get_running_loop().create_task(self._drain(chat), name="zalo-chat")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def _drain(self, chat: str) -> None:
        queue = self._queues[chat]
        try:
            while queue:
                update = queue.popleft()
                async with self._slots:
                    try:
                        await self._handler(update)
                    except Exception as exc:  # one update's failure never stops the chat
                        log.error("a Zalo update failed: %s", type(exc).__name__)
                        log.debug("a Zalo update failed", exc_info=exc)
        finally:
            del self._queues[chat]

    async def join(self, timeout: float = 5.0) -> None:
        """Wait for the updates taken so far (shutdown); cancel what is left after
        ``timeout`` seconds."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class Poller:
    """Long polling, one getUpdates at a time, until stopped."""

    def __init__(self, api: ZaloApi, runner: PerChat, timeout: int = 30) -> None:
        self.api = api
        self.runner = runner
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="zalo-poll")

    async def stop(self) -> None:
        """Stop after the poll in flight: with no offset, an update the server hands to a
        poll that was abandoned is lost, so the last poll is awaited (its timeout at most)
        and what it brings is handled."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.timeout + 5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.runner.join()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                update = await self.api.get_update(self.timeout)
            except (ZaloError, ZaloNetworkError) as exc:
                if self._stopping:
                    break
                failures += 1
                delay = min(0.5 * 2 ** min(failures, 6), 30.0)
                log.warning("Zalo getUpdates failed (%s); again in %.1f s", _kind(exc), delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if update is not None:
                self.runner.submit(update)


def _kind(exc: Exception) -> str:
    if isinstance(exc, ZaloError):
        return f"{exc.code} {exc.description[:80]}"
    if isinstance(exc, ZaloNetworkError):
        return exc.kind
    return type(exc).__name__


def webhook_handler(
    runner: PerChat, secret: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The webhook route: Zalo POSTs ``{"ok": true, "result": <update>}`` (a bare update
    is accepted too) with the secret in the header."""
    expected = secret.encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise web.HTTPNotFound
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            log.info("a Zalo webhook request without the right secret was refused")
            raise web.HTTPForbidden
        body = await request.read()
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise web.HTTPBadRequest(text="not JSON") from None
        update = data.get("result") if isinstance(data, dict) and "result" in data else data
        if not isinstance(update, dict) or not isinstance(update.get("message"), dict):
            raise web.HTTPBadRequest(text="not an update")
        runner.submit(update)
        return web.Response()

    return handle
