"""PerChatUpdateProcessor: same-chat updates in order, different chats concurrently."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from itertools import count
from typing import Any

import pytest
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    ContextTypes,
    SimpleUpdateProcessor,
    TypeHandler,
)
from telegram.request import BaseRequest, RequestData

from bot.processor import PerChatUpdateProcessor

_update_ids = count(1)


class OfflineRequest(BaseRequest):
    """Answers every Bot API call with a canned getMe result, so Application can start."""

    __slots__ = ()

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        me = {"id": 1, "is_bot": True, "first_name": "Bot", "username": "test_bot"}
        return 200, json.dumps({"ok": True, "result": me}).encode()


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"}


def message(chat_id: int, text: str = "hi", user_id: int | None = None) -> Update:
    uid = next(_update_ids)
    data = {
        "update_id": uid,
        "message": {
            "message_id": uid,
            "date": 0,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": _user(user_id if user_id is not None else abs(chat_id)),
            "text": text,
        },
    }
    return Update.de_json(data, None)


def press(chat_id: int, data: str = "answer:A") -> Update:
    """A callback query from an inline button under a message in ``chat_id``."""
    uid = next(_update_ids)
    msg = {"message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "private"}, "text": "Q"}
    cq = {"id": str(uid), "from": _user(chat_id), "chat_instance": "ci", "data": data}
    return Update.de_json({"update_id": uid, "callback_query": {**cq, "message": msg}}, None)


def inline_query(user_id: int) -> Update:
    uid = next(_update_ids)
    query = {"id": str(uid), "from": _user(user_id), "query": "", "offset": ""}
    return Update.de_json({"update_id": uid, "inline_query": query}, None)


def tag(update: object) -> str:
    if isinstance(update, Update):
        if update.effective_message is not None and update.effective_message.text != "Q":
            return update.effective_message.text or ""
        if update.callback_query is not None:
            return update.callback_query.data or ""
    return str(update)


Callback = Callable[[object, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


@pytest.fixture
def app_factory() -> Callable[..., AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]]:
    """Build & start an Application (no updater) with one TypeHandler(object, callback)."""

    async def factory(
        processor: BaseUpdateProcessor, callback: Callback, error_callback: Callback | None = None
    ) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
        app = (
            ApplicationBuilder()
            .token("1:TEST")
            .request(OfflineRequest())
            .get_updates_request(OfflineRequest())
            .updater(None)
            .concurrent_updates(processor)
            .build()
        )
        app.add_handler(TypeHandler(object, callback))
        if error_callback is not None:
            app.add_error_handler(error_callback)
        async with app:
            await app.start()
            try:
                yield app
            finally:
                await app.stop()

    return factory


async def feed(app: Application[Any, Any, Any, Any, Any, Any], updates: Sequence[object]) -> None:
    for update in updates:
        await app.update_queue.put(update)
    async with asyncio.timeout(5):
        await app.update_queue.join()


def recorder(events: list[tuple[str, str]], delay: Callable[[str], float]) -> Callback:
    async def callback(update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        name = tag(update)
        events.append(("start", name))
        await asyncio.sleep(delay(name))
        events.append(("end", name))

    return callback


def sequential(events: list[tuple[str, str]], names: list[str]) -> bool:
    """True if ``names`` ran one after another, in this order, without overlapping."""
    mine = [event for event in events if event[1] in names]
    expected = [(kind, name) for name in names for kind in ("start", "end")]
    return mine == expected


# Earlier updates sleep longer, so any concurrency within a chat reorders the end events.
def _decreasing(name: str) -> float:
    return 0.002 * (20 - int(name.rsplit("-", 1)[1]))


async def test_same_chat_runs_in_arrival_order(app_factory: Any) -> None:
    events: list[tuple[str, str]] = []
    names = [f"a-{i}" for i in range(15)]
    async for app in app_factory(PerChatUpdateProcessor(256), recorder(events, _decreasing)):
        await feed(app, [message(111, name) for name in names])
    assert sequential(events, names)


async def test_baseline_concurrent_updates_would_interleave(app_factory: Any) -> None:
    """Sanity check of the test set-up: PTB's plain concurrent processing reorders them."""
    events: list[tuple[str, str]] = []
    names = [f"a-{i}" for i in range(15)]
    async for app in app_factory(SimpleUpdateProcessor(256), recorder(events, _decreasing)):
        await feed(app, [message(111, name) for name in names])
    assert not sequential(events, names)


async def test_double_press_never_interleaves_with_itself(app_factory: Any) -> None:
    inside: set[int] = set()
    overlaps: list[str] = []
    handled: list[str] = []

    async def callback(update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert isinstance(update, Update) and update.effective_chat is not None
        chat = update.effective_chat.id
        if chat in inside:
            overlaps.append(tag(update))
        inside.add(chat)
        await asyncio.sleep(0.005)  # e.g. a database round trip
        handled.append(tag(update))
        inside.discard(chat)

    async for app in app_factory(PerChatUpdateProcessor(256), callback):
        await feed(app, [press(7, "p1"), press(7, "p2"), press(8, "q1"), press(7, "p3")])
    assert overlaps == []
    assert [name for name in handled if name.startswith("p")] == ["p1", "p2", "p3"]


async def test_different_chats_run_concurrently(app_factory: Any) -> None:
    started: set[str] = set()
    both_running = asyncio.Event()

    async def callback(update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        started.add(tag(update))
        if len(started) == 2:
            both_running.set()
        # Deadlocks (-> timeout) unless the two chats are processed at the same time.
        await asyncio.wait_for(both_running.wait(), 2)

    async for app in app_factory(PerChatUpdateProcessor(256), callback):
        await feed(app, [message(1, "x"), message(2, "y")])
    assert started == {"x", "y"}


async def test_global_limit_is_respected(app_factory: Any) -> None:
    running = 0
    peak = 0

    async def callback(update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    processor = PerChatUpdateProcessor(3)
    async for app in app_factory(processor, callback):
        assert app.concurrent_updates == 3
        await feed(app, [message(chat) for chat in range(1, 11)])
    assert peak == 3
    assert processor.current_concurrent_updates == 0


async def test_order_kept_per_chat_when_limit_is_saturated(app_factory: Any) -> None:
    """With one slot and interleaved chats, each chat still sees its own arrival order."""
    events: list[tuple[str, str]] = []
    names = {chat: [f"{chat}-{i}" for i in range(8)] for chat in ("a", "b", "c")}
    updates = [
        message({"a": 1, "b": 2, "c": 3}[chat], names[chat][i])
        for i in range(8)
        for chat in ("a", "b", "c")
    ]
    async for app in app_factory(PerChatUpdateProcessor(2), recorder(events, _decreasing)):
        await feed(app, updates)
    for chat_names in names.values():
        assert sequential(events, chat_names)


async def test_busy_chat_does_not_starve_other_chats(app_factory: Any) -> None:
    """A chat with a backlog occupies one slot, not all of them."""
    events: list[tuple[str, str]] = []
    flood = [message(1, f"flood-{i}") for i in range(30)]
    async for app in app_factory(PerChatUpdateProcessor(2), recorder(events, lambda _: 0.005)):
        await feed(app, [*flood, message(2, "other-0")])
    finished = [name for kind, name in events if kind == "end"]
    # If waiting for the chat's turn held a slot, "other" would come after the whole flood.
    assert finished.index("other-0") <= 2


async def test_exception_does_not_break_the_chain(app_factory: Any) -> None:
    handled: list[str] = []
    errors: list[str] = []

    async def callback(update: object, _: ContextTypes.DEFAULT_TYPE) -> None:
        await asyncio.sleep(0.001)
        if tag(update) == "boom":
            raise RuntimeError("boom")
        handled.append(tag(update))

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(f"{tag(update)}: {context.error}")

    processor = PerChatUpdateProcessor(256)
    async for app in app_factory(processor, callback, on_error):
        await feed(app, [message(5, "one"), message(5, "boom"), message(5, "two")])
    assert handled == ["one", "two"]
    assert errors == ["boom: boom"]
    assert processor.pending_chats == 0


async def test_unkeyed_updates_are_not_serialised(app_factory: Any) -> None:
    """Objects without chat or user (custom updates) run concurrently."""
    events: list[tuple[str, str]] = []
    names = [f"job-{i}" for i in range(10)]
    async for app in app_factory(PerChatUpdateProcessor(256), recorder(events, _decreasing)):
        await feed(app, names)
    assert not sequential(events, names)


def test_ordering_key() -> None:
    key = PerChatUpdateProcessor.ordering_key
    assert key(message(-100123, user_id=42)) == -100123  # group chat, not the sender
    assert key(press(77)) == 77
    assert key(inline_query(99)) == 99  # no chat -> user
    assert key(Update(update_id=1)) is None
    assert key("custom") is None


def test_invalid_limit() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        PerChatUpdateProcessor(0)
    assert PerChatUpdateProcessor().max_concurrent_updates == 256


# Direct use of the processor, without Application.


def _job(order: list[int], i: int, gate: asyncio.Event | None = None) -> Awaitable[None]:
    async def job() -> None:
        if gate is not None:
            await gate.wait()
        order.append(i)

    return job()


async def test_cancelled_waiter_keeps_order_and_closes_its_coroutine() -> None:
    order: list[int] = []
    gate = asyncio.Event()
    async with PerChatUpdateProcessor(4) as processor:
        first = asyncio.create_task(processor.process_update(message(1), _job(order, 1, gate)))
        second = asyncio.create_task(processor.process_update(message(1), _job(order, 2)))
        third = asyncio.create_task(processor.process_update(message(1), _job(order, 3)))
        await asyncio.sleep(0.01)
        second.cancel()  # cancelled while waiting for `first`
        await asyncio.sleep(0.01)
        assert order == []  # `third` still waits for `first`, not for the cancelled `second`
        gate.set()
        await asyncio.gather(first, third)
        with pytest.raises(asyncio.CancelledError):
            await second
        assert order == [1, 3]
        assert processor.pending_chats == 0
    # The never-started coroutine of `second` was closed: no "never awaited" warning
    # (pytest runs with filterwarnings=error).


async def test_exception_propagates_and_chain_continues() -> None:
    order: list[int] = []

    async def failing() -> None:
        raise ValueError("handler failed")

    async with PerChatUpdateProcessor(4) as processor:
        bad = asyncio.create_task(processor.process_update(message(3), failing()))
        good = asyncio.create_task(processor.process_update(message(3), _job(order, 2)))
        with pytest.raises(ValueError, match="handler failed"):
            await bad
        await good
        assert order == [2]
        assert processor.pending_chats == 0


async def test_shutdown_waits_for_in_flight_updates() -> None:
    order: list[int] = []
    gate = asyncio.Event()
    processor = PerChatUpdateProcessor(4)
    await processor.initialize()
    task = asyncio.create_task(processor.process_update(message(9), _job(order, 1, gate)))
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.02, gate.set)
    await processor.shutdown()
    assert order == [1]
    assert processor.pending_chats == 0
    await task
    await processor.shutdown()  # idempotent
