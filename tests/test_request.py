"""AiohttpRequest against the fake Bot API, side by side with PTB's HTTPXRequest.

Every behavioural test is parametrised over both backends with the *same* expectations, so a
pass shows the aiohttp backend yields the same results, exception types and (where PTB derives
them from the HTTP answer) the same exception messages as the httpx backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.request import AiohttpRequest, SharedSession, build_request
from fakes.telegram import FakeBotApi

BACKENDS = ["aiohttp", "httpx"]
CHAT = 1001
POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)

RequestFactory = Callable[..., BaseRequest]


def make_request(backend: str, **kwargs: Any) -> BaseRequest:
    if backend == "aiohttp":
        return AiohttpRequest(**kwargs)
    return HTTPXRequest(**kwargs)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        fake.user(CHAT, first_name="Lan")
        yield fake


@pytest.fixture
async def new_bot(api: FakeBotApi, backend: str) -> AsyncIterator[Callable[..., Any]]:
    """``await new_bot(**request_kwargs)`` -> an initialized Bot on ``backend``; shut down at
    the end of the test."""
    bots: list[Bot] = []

    async def factory(**kwargs: Any) -> Bot:
        kwargs.setdefault("connection_pool_size", 4)
        bot = Bot(
            api.token,
            base_url=api.base_url,
            base_file_url=api.base_file_url,
            request=make_request(backend, **kwargs),
            get_updates_request=make_request(backend, connection_pool_size=1),
        )
        bots.append(bot)
        await bot.initialize()
        return bot

    yield factory
    for bot in bots:
        await bot.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- happy path ------------------------------------------------------------------------------


async def test_get_me_and_send_message(new_bot: Any, api: FakeBotApi) -> None:
    bot = await new_bot()
    me = await bot.get_me()
    assert (me.id, me.username) == (api.bot_id, api.bot_user["username"])

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Đáp án A", callback_data="a:1")]])
    message = await bot.send_message(
        CHAT, "Xin chào <b>bạn</b> &amp; chúc may mắn!", parse_mode="HTML", reply_markup=keyboard
    )
    assert message.text == "Xin chào bạn & chúc may mắn!"
    assert message.chat.id == CHAT
    call = api.calls_of("sendMessage")[-1]
    assert call.params["text"] == "Xin chào <b>bạn</b> &amp; chúc may mắn!"
    assert call.params["reply_markup"] == keyboard.to_dict()
    assert api.user(CHAT).last_bot_message() is not None


async def test_get_updates_long_poll(new_bot: Any, api: FakeBotApi) -> None:
    bot = await new_bot()
    await api.user(CHAT).send_text("/start")
    updates = await bot.get_updates(timeout=1)
    assert [u.effective_message.text for u in updates if u.effective_message] == ["/start"]


async def test_both_backends_send_identical_parameters(api: FakeBotApi) -> None:
    """The fake decodes the same parameters from both wire formats."""
    received = []
    for name in BACKENDS:
        async with make_request(name) as request:
            bot = Bot(api.token, base_url=api.base_url, request=request)
            await bot.send_message(
                CHAT,
                "a&b=c ✓ " + "x" * 100,
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("k", url="https://t.me")]]
                ),
                disable_notification=True,
            )
            await bot.send_document(CHAT, b"data", filename="r.txt", caption="cap+ü")
        received.append([(c.method, c.params) for c in list(api.calls)[-2:]])
    aiohttp_calls, httpx_calls = received
    assert aiohttp_calls == httpx_calls


# -- errors derived by PTB from status + body: identical for both backends --------------------


ERROR_CASES = [
    # status, injected description, expected exception type, expected str(exc)
    (403, None, Forbidden, "Forbidden: bot was blocked by the user"),
    (400, "Bad Request: message text is empty", BadRequest, "Message text is empty"),
    (401, None, InvalidToken, "Unauthorized"),
    (404, None, InvalidToken, "Not found"),
    (
        409,
        "Conflict: terminated by other getUpdates request",
        Conflict,
        "Conflict: terminated by other getUpdates request",
    ),
    (500, None, NetworkError, "Internal Server Error"),
    (502, None, NetworkError, "Bad Gateway"),
]


@pytest.mark.parametrize(
    ("status", "description", "exc_type", "message"),
    ERROR_CASES,
    ids=[str(case[0]) for case in ERROR_CASES],
)
async def test_http_errors_map_like_httpx(
    new_bot: Any,
    api: FakeBotApi,
    status: int,
    description: str | None,
    exc_type: type[TelegramError],
    message: str,
) -> None:
    bot = await new_bot()
    if status == 404:
        description = "Not found"
    api.inject_error("sendMessage", status, description=description)
    with pytest.raises(exc_type) as info:
        await bot.send_message(CHAT, "hi")
    assert type(info.value) is exc_type
    assert str(info.value) == message
    # The connection is still usable afterwards.
    assert (await bot.send_message(CHAT, "again")).text == "again"


async def test_retry_after(new_bot: Any, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without PTB_TIMEDELTA, PTB 22 emits a deprecation warning when building RetryAfter
    # (an error under filterwarnings=error).
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    bot = await new_bot()
    api.inject_error("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHAT, "hi")
    assert info.value.retry_after == timedelta(seconds=7)
    assert str(info.value) == "Flood control exceeded. Retry in 0:00:07"


async def test_natural_bad_request(new_bot: Any) -> None:
    bot = await new_bot()
    with pytest.raises(BadRequest, match=r"^Chat not found$"):
        await bot.send_message(424242, "nobody there")


# -- transport errors -------------------------------------------------------------------------


async def test_read_timeout_default_and_per_call(new_bot: Any, api: FakeBotApi) -> None:
    slow = await new_bot(read_timeout=0.2)
    api.inject_delay("sendMessage", 1.0)
    started = time.monotonic()
    with pytest.raises(TimedOut) as info:
        await slow.send_message(CHAT, "slow")
    assert time.monotonic() - started < 0.8
    assert str(info.value) == "Timed out"

    patient = await new_bot(read_timeout=30)
    api.inject_delay("sendMessage", 1.0)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await patient.send_message(CHAT, "slow", read_timeout=0.2)  # per-call override
    assert time.monotonic() - started < 0.8
    # Timeouts leave the pool usable.
    assert (await slow.send_message(CHAT, "fast")).text == "fast"


async def test_connect_timeout(backend: str) -> None:
    """A server whose accept queue is full drops new connection attempts (Linux): the
    connection never opens and the connect timeout fires."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued = []
        for _ in range(3):  # fill the accept queue; nobody ever accepts
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            queued.append(filler)
        await asyncio.sleep(0.2)
        try:
            url = f"http://127.0.0.1:{port}/bot123:X/getMe"
            async with make_request(backend, connect_timeout=0.5, read_timeout=5) as request:
                started = time.monotonic()
                with pytest.raises(TimedOut):
                    await request.post(url, connect_timeout=0.5)
                assert 0.4 < time.monotonic() - started < 3.0
        finally:
            for filler in queued:
                filler.close()


async def test_write_timeout_on_an_upload_nobody_reads(backend: str) -> None:
    """The server accepts the connection but never reads: a large upload stalls once the
    socket buffers are full, and the write timeout (media_write_timeout for uploads) fires."""

    done = asyncio.Event()

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(32 * 1024 * 1024)  # far more than loopback buffers hold
    try:
        upload = _request_data(chat_id=CHAT, document=InputFile(payload, filename="big.bin"))
        url = f"http://127.0.0.1:{port}/bot123:X/sendDocument"
        async with make_request(backend, read_timeout=0.5, media_write_timeout=0.5) as request:
            started = time.monotonic()
            with pytest.raises(TimedOut):
                await request.post(url, request_data=upload)
            # The write timeout bounds each chunk, as with httpx: no waiting for the
            # connect + write + read budget, nor for the whole 32 MB.
            assert time.monotonic() - started < 3
    finally:
        done.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.1)  # the handlers close their ends


async def test_pool_timeout(new_bot: Any, api: FakeBotApi) -> None:
    bot = await new_bot(connection_pool_size=1, pool_timeout=0.1)
    api.inject_delay("sendMessage", 0.4)
    first = asyncio.create_task(bot.send_message(CHAT, "first"))
    await asyncio.sleep(0.1)  # `first` now holds the only connection
    with pytest.raises(TimedOut) as info:
        await bot.send_message(CHAT, "second")
    assert str(info.value) == POOL_TIMEOUT_MESSAGE
    assert (await first).text == "first"
    assert [c.params["text"] for c in api.calls_of("sendMessage")] == ["first"]


async def test_server_down_is_network_error(backend: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/bot123:X/getMe"
    async with make_request(backend, connect_timeout=2) as request:
        with pytest.raises(NetworkError) as info:
            await request.post(url)
    assert not isinstance(info.value, TimedOut)
    # httpx: "httpx.ConnectError: ...", aiohttp: "aiohttp.ClientConnectorError: ..."
    assert str(info.value).startswith(f"{backend}.")


async def test_use_after_shutdown(backend: str, api: FakeBotApi) -> None:
    request = make_request(backend)
    await request.initialize()
    await request.initialize()  # idempotent
    await request.shutdown()
    await request.shutdown()  # idempotent
    class_name = type(request).__name__
    with pytest.raises(RuntimeError, match=f"^This {class_name} is not initialized!$"):
        await request.do_request(f"{api.base_url}{api.token}/getMe", "POST")
    # Through post(), BaseRequest wraps it the same way for both backends.
    with pytest.raises(NetworkError, match="Unknown error in HTTP implementation"):
        await request.post(f"{api.base_url}{api.token}/getMe")
    # ... and it can be brought back.
    async with request:
        me = await request.post(f"{api.base_url}{api.token}/getMe")
        assert isinstance(me, dict) and me["id"] == api.bot_id


# -- uploads and downloads --------------------------------------------------------------------


async def test_upload_arrives_intact(new_bot: Any, api: FakeBotApi) -> None:
    bot = await new_bot()
    payload = os.urandom(300_000) + b'\r\n--boundary"\r\n' + bytes(range(256))
    filename = "Kết quả vòng 1 (Đống Đa).xlsx"
    message = await bot.send_document(CHAT, payload, filename=filename, caption="Bảng điểm")
    assert message.caption == "Bảng điểm"
    assert message.document is not None
    stored = api.files[message.document.file_id]
    assert stored.data == payload
    assert stored.file_name == filename
    assert stored.mime_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    # And back down again through BaseRequest.retrieve() (a GET on the file URL).
    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == payload


async def test_a_large_upload_that_keeps_moving_is_not_cut_by_the_write_timeout(
    new_bot: Any, api: FakeBotApi
) -> None:
    """The write timeout bounds a stall, not the whole upload."""
    bot = await new_bot(media_write_timeout=0.3, read_timeout=10)
    payload = os.urandom(24 * 1024 * 1024)
    message = await bot.send_document(CHAT, payload, filename="xuat-ket-qua.xlsx")
    assert message.document is not None
    assert api.files[message.document.file_id].data == payload


async def test_upload_from_unread_file_handle(new_bot: Any, api: FakeBotApi) -> None:
    bot = await new_bot()
    payload = os.urandom(200_000)
    handle = io.BytesIO(payload)
    handle.seek(1234)  # both backends rewind, like httpx does
    document = InputFile(handle, filename="export.csv", read_file_handle=False)
    message = await bot.send_document(CHAT, document)
    assert message.document is not None
    stored = api.files[message.document.file_id]
    assert (stored.data, stored.file_name, stored.mime_type) == (payload, "export.csv", "text/csv")
    assert not handle.closed  # the caller owns the handle


async def test_proxy_from_the_environment(
    backend: str, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An office network reaches Telegram through a proxy named in HTTP(S)_PROXY: httpx
    follows it, and so must the aiohttp backend. The fake server plays the proxy for a host
    that does not exist."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = api.base_url.split("/bot")[0]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    request = make_request(backend)
    async with Bot(api.token, base_url="http://api.telegram.invalid/bot", request=request) as bot:
        assert (await bot.send_message(CHAT, "qua proxy")).text == "qua proxy"
    assert api.calls_of("sendMessage")[-1].params["text"] == "qua proxy"


# -- aiohttp specifics ------------------------------------------------------------------------


async def test_shared_session_is_not_closed(api: FakeBotApi) -> None:
    async with aiohttp.ClientSession() as session:
        request = AiohttpRequest(session=session, connection_pool_size=2)
        async with Bot(api.token, base_url=api.base_url, request=request) as bot:
            assert request.session is session
            assert (await bot.send_message(CHAT, "shared")).text == "shared"
        assert not session.closed
        assert request.session is None


async def test_requests_on_a_shared_session_send_through_one_session(api: FakeBotApi) -> None:
    shared = SharedSession()
    answers = AiohttpRequest(session=shared, connection_pool_size=4)
    bulk = AiohttpRequest(session=shared, connection_pool_size=1)
    async with Bot(api.token, base_url=api.base_url, request=answers) as bot:
        async with Bot(api.token, base_url=api.base_url, request=bulk) as bulk_bot:
            session = shared.session
            assert session is not None
            assert answers.session is session and bulk.session is session
            assert (await bulk_bot.send_message(CHAT, "bulk")).text == "bulk"
        # One user shut down: the session stays open for the other.
        assert bulk.session is None and not session.closed
        assert (await bot.send_message(CHAT, "still open")).text == "still open"
    # The last user closes it; a new start opens a new one.
    assert session.closed and shared.session is None
    async with Bot(api.token, base_url=api.base_url, request=answers) as bot:
        assert shared.session is not None and shared.session is not session
        assert (await bot.send_message(CHAT, "again")).text == "again"
    assert shared.session is None


async def test_a_full_pool_does_not_hold_up_another_on_the_same_session(
    api: FakeBotApi,
) -> None:
    """Bulk sends that fill their own pool leave the answers' pool free."""
    shared = SharedSession()
    answers = AiohttpRequest(session=shared, connection_pool_size=2, pool_timeout=0.2)
    bulk = AiohttpRequest(session=shared, connection_pool_size=1, pool_timeout=0.1)
    async with (
        Bot(api.token, base_url=api.base_url, request=answers) as bot,
        Bot(api.token, base_url=api.base_url, request=bulk) as bulk_bot,
    ):
        api.inject_delay("sendMessage", 2.0)
        slow = asyncio.create_task(bulk_bot.send_message(CHAT, "bulk"))
        await asyncio.sleep(0.2)  # `slow` holds the bulk pool's only slot
        with pytest.raises(TimedOut, match="Pool timeout"):
            await bulk_bot.send_message(CHAT, "bulk 2")
        started = time.monotonic()
        assert (await bot.get_me()).is_bot
        assert (await bot.send_message(CHAT, "answer")).text == "answer"
        assert time.monotonic() - started < 1.5  # not behind the delayed bulk send
        assert not slow.done()
        assert (await slow).text == "bulk"


def _request_data(**params: Any) -> RequestData:
    return RequestData([RequestParameter.from_input(k, v) for k, v in params.items()])


def test_timeout_mapping() -> None:
    request = AiohttpRequest(
        read_timeout=1, write_timeout=2, connect_timeout=3, pool_timeout=4, media_write_timeout=9
    )
    default = BaseRequest.DEFAULT_NONE
    text = _request_data(chat_id=1, text="x")
    upload = _request_data(chat_id=1, document=InputFile(b"abc", filename="a.txt"))

    plain = request._timeout(text, default, default, default)
    assert (plain.connect, plain.sock_connect, plain.sock_read, plain.total) == (3, 3, 1, 6)
    # Uploads: no overall ceiling; the write timeout is applied to each chunk instead.
    media = request._timeout(upload, default, default, default)
    assert (media.sock_read, media.connect, media.total) == (1, 3, None)
    explicit = request._timeout(upload, 10, 20, 30)
    assert (explicit.sock_read, explicit.connect, explicit.total) == (10, 30, None)
    unbounded = request._timeout(text, None, default, default)
    assert (unbounded.sock_read, unbounded.total) == (None, None)
    no_body = request._timeout(None, default, default, default)
    assert no_body.total is None  # downloads are only bounded per read, like httpx
    assert request.read_timeout == 1


def test_build_request() -> None:
    request = build_request("aiohttp", pool_size=8)
    assert isinstance(request, AiohttpRequest)
    assert request.connection_pool_size == 8
    assert request.read_timeout == 5.0
    polling = build_request(" HTTPX ", pool_size=1, read_timeout=7)
    assert isinstance(polling, HTTPXRequest)
    assert polling.read_timeout == 7
    assert isinstance(build_request(pool_size=1), AiohttpRequest)
    shared = SharedSession()
    on_shared = build_request("aiohttp", pool_size=2, shared=shared)
    assert isinstance(on_shared, AiohttpRequest) and on_shared._shared_session is shared
    assert isinstance(build_request("httpx", pool_size=2, shared=shared), HTTPXRequest)
    with pytest.raises(ValueError, match="Unknown request backend 'requests'"):
        build_request("requests", pool_size=1)
    with pytest.raises(ValueError):
        AiohttpRequest(connection_pool_size=0)
