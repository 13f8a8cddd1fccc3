"""Webhook mode end to end: the real bot behind its aiohttp server, the fake Bot API server
delivering updates to it by POST (setWebhook), and raw requests for what Telegram never sends."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application
from bot.logs import configure_logging
from bot.settings import Settings
from bot.webhook import (
    MAX_BODY_BYTES,
    SECRET_HEADER,
    RecentUpdateIds,
    WebhookServer,
    make_web_app,
    run_webhook,
    serve,
    start_webhook,
    stop_webhook,
)
from contest.clock import ManualClock
from contest.rules import ContestRules
from fakes.telegram import FakeBotApi, FakeUser
from storage.db import create_engine
from tests.conftest import has, pg_engine, register_civil_servant, say
from tests.test_logs import SavedLogging

SECRET = "s3cret_X"
PATH = "/hook/abc"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_settings(api: FakeBotApi, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": api.token,
        "bot_api_url": api.base_url,
        "database_url": "sqlite://",  # unused: the engine is given
        "webhook_url": f"http://127.0.0.1:{port}{PATH}",
        "webhook_secret": SECRET,
        "webhook_port": port,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def hooked(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[WebhookServer]:
    """The bot in webhook mode on the seeded database, registered with the fake server."""
    settings = webhook_settings(fake_api, free_port())
    app = build_application(
        settings, rules, clock=clock, engine=pg_engine(database_url), polling=False
    )
    server = await start_webhook(app, settings)
    try:
        yield server
    finally:
        await stop_webhook(server)


def command_update(user: FakeUser, update_id: int, text: str) -> dict[str, Any]:
    """An update as Telegram would POST it: ``user`` sends the command ``text``."""
    command = text.split()[0]
    message = user.chat.add_message(
        False,
        user.to_dict(),
        text=text,
        raw_text=text,
        entities=[{"type": "bot_command", "offset": 0, "length": len(command)}],
    )
    return {"update_id": update_id, "message": message.to_dict()}


async def post(
    url: str, body: dict[str, Any] | bytes, secret: str | None = SECRET
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=headers) as response,
    ):
        return response.status, await response.text()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


# ------------------------------------------------------------------ delivery by Telegram


async def test_webhook_registers_and_serves_the_conversation(
    hooked: WebhookServer, fake_api: FakeBotApi
):
    call = fake_api.calls_of("setWebhook")[-1]
    assert call.params["url"] == hooked.config.url == f"http://127.0.0.1:{hooked.port}{PATH}"
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    assert call.params["drop_pending_updates"] is False
    assert fake_api.webhook_url == hooked.config.url and fake_api.webhook_secret == SECRET

    user = fake_api.user(2001, first_name="An")
    await say(user, "/start", "Xin chào")
    await register_civil_servant(user, name="Nguyễn Văn An")
    profile = await say(user, "/hoso", "HỒ SƠ")
    assert "Nguyễn Văn An" in profile.text

    assert len(fake_api.webhook_delivered) >= 10  # every step came by webhook delivery
    assert not fake_api.calls_of("getUpdates")
    assert await get(f"http://127.0.0.1:{hooked.port}/healthz") == (200, '{"status": "ok"}')


async def test_the_webhook_answers_before_the_update_is_processed(
    hooked: WebhookServer, fake_api: FakeBotApi
):
    """Telegram waits for the 200 before it sends that chat anything else: a slow reply
    (here, the Bot API answering sendMessage after 1.5 s) must not hold the 200 back."""
    user = fake_api.user(2003)
    since = user.mark()
    fake_api.inject_delay("sendMessage", 1.5)
    started = time.monotonic()
    assert await post(hooked.local_url, command_update(user, 900_101, "/start")) == (200, "")
    acknowledged = time.monotonic() - started
    assert acknowledged < 1.2, f"the 200 took {acknowledged:.2f} s"
    await user.wait_for(has("Xin chào"), since=since)
    assert time.monotonic() - started >= 1.5  # the reply itself was slow


# ------------------------------------------------------------------ what Telegram never sends


async def test_refuses_bad_requests_and_drops_repeated_updates(
    hooked: WebhookServer, fake_api: FakeBotApi
):
    user = fake_api.user(2002)
    since = user.mark()
    start = command_update(user, 900_001, "/start")
    assert (await post(hooked.local_url, start, secret=None))[0] == 403
    assert (await post(hooked.local_url, start, secret="s3cret_Y"))[0] == 403
    assert (await post(hooked.local_url, start, secret="ş3cret_X"))[0] == 403  # non-ASCII
    assert (await post(hooked.local_url, b"{not json", SECRET))[0] == 400
    assert (await post(hooked.local_url, b"[1, 2]", SECRET))[0] == 400
    assert (await post(hooked.local_url, {"update_id": "7"}, SECRET))[0] == 400
    base = f"http://127.0.0.1:{hooked.port}"
    assert (await get(hooked.local_url))[0] == 404
    assert (await get(f"{base}/hook"))[0] == 404
    assert (await post(f"{base}/other", start))[0] == 404
    assert (await post(f"{base}/healthz", start))[0] == 404

    # The same update twice: both acknowledged, processed once.
    profile = command_update(user, 900_002, "/hoso")
    assert await post(hooked.local_url, profile) == (200, "")
    assert await post(hooked.local_url, profile) == (200, "")
    # A fence: one chat's updates are processed in arrival order, so once /thele is answered
    # anything queued before it (the refused /start, a second /hoso) would have been too.
    assert (await post(hooked.local_url, command_update(user, 900_003, "/thele")))[0] == 200
    await user.wait_for(has("THỂ LỆ"), since=since)
    texts = [m.text for m in user.bot_messages()]
    assert sum("chưa đăng ký" in t for t in texts) == 1, user.transcript()
    assert not any("Xin chào" in t for t in texts), user.transcript()

    # A refused request did not mark its update_id as seen: sent properly, it is processed.
    assert (await post(hooked.local_url, start))[0] == 200
    await user.wait_for(has("Xin chào"))


HOSTILE_BODIES: dict[str, bytes] = {
    "nested 100,000 deep": b'{"update_id": 5, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nested 100 deep": b'{"update_id": 5, "x": ' + b"[" * 100 + b"]" * 100 + b"}",
    "reply chain 2,000 deep": (
        b'{"update_id": 5, "message": '
        + b'{"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, '
        b'"reply_to_message": ' * 2_000 + b"null" + b"}" * 2_001
    ),
    "message is a string": b'{"update_id": 5, "message": "PERSONAL-0912345678"}',
    "message is a number": b'{"update_id": 5, "message": 3}',
    "message is a list": b'{"update_id": 5, "message": [1]}',
    "sender is a string": (
        b'{"update_id": 5, "message": {"message_id": 1, "date": 0, '
        b'"chat": {"id": 1, "type": "private"}, "from": "PERSONAL-0912345678"}}'
    ),
    "entities are strings": (
        b'{"update_id": 5, "message": {"message_id": 1, "date": 0, '
        b'"chat": {"id": 1, "type": "private"}, "text": "hi", "entities": ["x"]}}'
    ),
    "date is a string": (
        b'{"update_id": 5, "message": {"message_id": 1, "date": "PERSONAL", '
        b'"chat": {"id": 1, "type": "private"}}}'
    ),
    "not UTF-8": b'{"update_id": 5, "message": "\xff\xfe"}',
}


async def test_hostile_bodies_are_refused_with_400_and_no_traceback(
    hooked: WebhookServer, fake_api: FakeBotApi, caplog: pytest.LogCaptureFixture
):
    """Deep nesting, wrong types: 400 (never a 500 with aiohttp's traceback), one short log
    line each without the body, and the server goes on serving."""
    caplog.set_level(logging.INFO)
    for name, body in HOSTILE_BODIES.items():
        status, answer = await post(hooked.local_url, body)
        assert (status, answer) == (400, "not an update"), name
    refused = [r for r in caplog.records if "webhook body refused" in r.getMessage()]
    assert len(refused) == len(HOSTILE_BODIES)
    for record in caplog.records:
        assert record.levelno < logging.ERROR, record.getMessage()
        assert record.exc_info is None, record.getMessage()
        assert "PERSONAL" not in record.getMessage()
    user = fake_api.user(2004)
    assert (await post(hooked.local_url, command_update(user, 900_201, "/start")))[0] == 200
    await user.wait_for(has("Xin chào"))


async def test_a_body_over_the_limit_is_refused_with_413(
    hooked: WebhookServer, fake_api: FakeBotApi
):
    body = io.BytesIO(b'{"update_id": 5' + b" " * MAX_BODY_BYTES + b"}")
    headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
    async with (
        aiohttp.ClientSession() as session,
        session.post(hooked.local_url, data=body, headers=headers) as response,
    ):
        assert response.status == 413
    small = command_update(fake_api.user(2005), 900_301, "/start")
    assert (await post(hooked.local_url, small))[0] == 200  # the limit is far above an update


async def test_refused_requests_are_logged_once_a_minute_not_once_each(
    hooked: WebhookServer, caplog: pytest.LogCaptureFixture
):
    """5,000 requests with a wrong secret: one WARNING line, not 5,000."""
    caplog.set_level(logging.INFO)
    body = json.dumps({"update_id": 1}).encode()
    headers = {"Content-Type": "application/json", SECRET_HEADER: "wrong"}
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def forged(count: int) -> list[int]:
            statuses = []
            for _ in range(count):
                async with session.post(hooked.local_url, data=body, headers=headers) as r:
                    statuses.append(r.status)
            return statuses

        results = await asyncio.gather(*(forged(5_000 // 32 + 1) for _ in range(32)))
    statuses = [s for chunk in results for s in chunk]
    assert len(statuses) >= 5_000 and set(statuses) == {403}
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines[:5]]
    assert lines[0].levelno == logging.WARNING


async def test_refusal_reports_count_what_they_summarise(
    fake_api: FakeBotApi, rules: ContestRules, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    engine = create_engine("sqlite://")
    settings, app = broken_app(fake_api, rules, engine)
    try:
        web_app = make_web_app(app, settings, secret_path=PATH, refusal_log_interval=0.5)
        async with TestClient(TestServer(web_app)) as client:

            async def forge(times: int) -> None:
                for _ in range(times):
                    response = await client.post(PATH, data=b"{}", headers={SECRET_HEADER: "x"})
                    assert response.status == 403

            await forge(10)  # reported: the first; counted: the other 9
            await asyncio.sleep(0.6)
            await forge(4)  # reported: 9 + 1; counted: 3, reported when the server stops
    finally:
        await engine.dispose()
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 3, lines
    assert "(1 refused since the last report, 1 in all" in lines[0]
    assert "(10 refused since the last report, 11 in all" in lines[1]
    assert "(3 refused since the last report, 14 in all" in lines[2]


def test_recent_update_ids_are_bounded():
    recent = RecentUpdateIds(3)
    assert [recent.seen(i) for i in (1, 2, 3, 1)] == [False, False, False, True]
    assert recent.seen(4) is False  # evicts 2, the least recently seen
    assert len(recent) == 3
    assert [recent.seen(i) for i in (1, 3, 4, 2)] == [True, True, True, False]


# ------------------------------------------------------------------ health


def broken_app(api: FakeBotApi, rules: ContestRules, engine: AsyncEngine) -> tuple[Settings, Any]:
    """A bot (never started) whose database is ``engine``."""
    settings = webhook_settings(api, 8080)
    return settings, build_application(settings, rules, engine=engine, polling=False)


async def test_healthz_is_503_when_the_database_refuses_connections(
    fake_api: FakeBotApi, rules: ContestRules
):
    """A PostgreSQL address where nothing listens (no thread, no timing: refused at once)."""
    engine = create_engine(f"postgresql://nobody:pw-{SECRET}@127.0.0.1:{free_port()}/contest")
    settings, app = broken_app(fake_api, rules, engine)
    try:
        web_app = make_web_app(app, settings, secret_path=PATH)
        async with TestClient(TestServer(web_app)) as client:
            response = await client.get("/healthz")
            assert response.status == 503
            assert await response.text() == '{"status": "error"}'  # nothing about the cause
    finally:
        await engine.dispose()


async def test_healthz_is_503_when_the_database_does_not_answer_in_time(
    fake_api: FakeBotApi, rules: ContestRules
):
    """A PostgreSQL address that accepts connections and never answers."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    engine = create_engine(f"postgresql://nobody@127.0.0.1:{port}/contest")
    settings, app = broken_app(fake_api, rules, engine)
    try:
        web_app = make_web_app(app, settings, secret_path=PATH, health_timeout=0.2)
        async with TestClient(TestServer(web_app)) as client:
            response = await client.get("/healthz")
            assert response.status == 503
        assert accepted  # it did try
    finally:
        await engine.dispose()
        for writer in accepted:
            writer.close()
        listener.close()
        await listener.wait_closed()


# ------------------------------------------------------------------ the process


@pytest.fixture
def raw_debug_log() -> Iterator[io.StringIO]:
    """The product's logging at DEBUG with raw payloads (python-telegram-bot logs every
    request's parameters), written to a string; put back afterwards."""
    saved = SavedLogging.save()
    out = io.StringIO()
    configure_logging("DEBUG", raw_payloads=True, stream=out)
    try:
        yield out
    finally:
        saved.restore()


async def test_serve_runs_until_sigterm_and_keeps_the_webhook(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    tmp_path: Path,
    raw_debug_log: io.StringIO,
):
    settings = webhook_settings(fake_api, free_port())
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'contest.db'}")
    app = build_application(settings, rules, clock=clock, engine=engine, polling=False)
    task = asyncio.create_task(serve(app, settings))
    try:
        user = fake_api.user(2003)
        await say(user, "/start", "Xin chào")  # served: setWebhook was called, handlers are in
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 5)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not app.running
    assert fake_api.webhook_url == settings.webhook_url  # not deleted on stop
    assert not fake_api.calls_of("deleteWebhook")
    logged = raw_debug_log.getvalue()
    assert "setWebhook" in logged  # its parameters were logged, masked
    assert SECRET not in logged and PATH not in logged


@pytest.mark.parametrize(
    ("url", "secret", "variable"),
    [
        (None, SECRET, "CONTEST_WEBHOOK_URL"),
        ("", SECRET, "CONTEST_WEBHOOK_URL"),
        ("ftp://bot.example.org/hook", SECRET, "CONTEST_WEBHOOK_URL"),
        ("https://bot.example.org/hook", None, "CONTEST_WEBHOOK_SECRET"),
        ("https://bot.example.org/hook", "has space", "CONTEST_WEBHOOK_SECRET"),
        ("https://bot.example.org/hook", "bí_mật", "CONTEST_WEBHOOK_SECRET"),
        ("https://bot.example.org/hook", "x" * 257, "CONTEST_WEBHOOK_SECRET"),
    ],
)
def test_run_webhook_refuses_incomplete_settings(
    rules: ContestRules,
    capsys: pytest.CaptureFixture[str],
    url: str | None,
    secret: str | None,
    variable: str,
):
    settings = Settings(
        _env_file=None,
        bot_token="123456:TEST",
        bot_api_url="http://127.0.0.1:9/bot",  # never called
        webhook_url=url,
        webhook_secret=secret,
    )
    app = build_application(settings, rules, engine=create_engine("sqlite://"), polling=False)
    assert run_webhook(app, settings) == 2
    err = capsys.readouterr().err
    assert variable in err
    if secret:
        assert secret not in err
