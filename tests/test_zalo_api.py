"""The Zalo Bot API client against the project's fake Zalo server (over real HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from fakes.zalo import SECRET_HEADER, FakeZaloApi
from zalo.api import ZaloApi, ZaloError, ZaloNetworkError


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi() as api:
        yield api


@pytest.fixture
async def client(zalo: FakeZaloApi) -> AsyncIterator[ZaloApi]:
    api = ZaloApi(zalo.token, zalo.base_url)
    try:
        yield api
    finally:
        await api.close()


async def test_get_me_and_a_wrong_token(zalo: FakeZaloApi, client: ZaloApi):
    me = await client.get_me()
    assert me["account_name"] == zalo.bot_name and me["id"] == zalo.bot_id
    wrong = ZaloApi("1:WRONG", zalo.base_url)
    try:
        with pytest.raises(ZaloError) as caught:
            await wrong.get_me()
        assert caught.value.code == 401
        assert "WRONG" not in str(caught.value)  # the token never reaches a message
    finally:
        await wrong.close()


async def test_updates_come_one_per_call_and_a_quiet_poll_is_none(
    zalo: FakeZaloApi, client: ZaloApi
):
    user = zalo.user("u1", "An")
    await user.send_text("xin chào")
    await user.send_text("/dangky")
    first = await client.get_update(timeout=1)
    second = await client.get_update(timeout=1)
    assert first is not None and second is not None
    assert first["event_name"] == "message.text.received"
    assert (first["message"]["text"], second["message"]["text"]) == ("xin chào", "/dangky")
    assert first["message"]["from"] == {"id": "u1", "display_name": "An", "is_bot": False}
    started = time.monotonic()
    assert await client.get_update(timeout=1) is None
    assert time.monotonic() - started >= 0.9
    # A long poll returns as soon as something arrives.
    waiting = asyncio.create_task(client.get_update(timeout=10))
    await asyncio.sleep(0.1)
    await user.send_text("nhanh")
    update = await asyncio.wait_for(waiting, 2)
    assert update is not None and update["message"]["text"] == "nhanh"


async def test_send_limits_and_blocked_people(zalo: FakeZaloApi, client: ZaloApi):
    user = zalo.user("u2")
    sent = await client.send_message("u2", "Xin chào bạn")
    assert sent["message_id"] and user.last_bot_message is not None
    assert user.last_bot_message.text == "Xin chào bạn"
    with pytest.raises(ZaloError) as too_long:
        await client.send_message("u2", "x" * 2001)
    assert too_long.value.code == 400 and not too_long.value.unreachable
    await client.send_message("u2", "x" * 2000)
    user.blocked = True
    with pytest.raises(ZaloError) as blocked:
        await client.send_message("u2", "Bạn còn đó không?")
    assert blocked.value.unreachable and not blocked.value.transient
    zalo.inject_error("sendMessage", 500)
    user.blocked = False
    with pytest.raises(ZaloError) as server:
        await client.send_message("u2", "lỗi máy chủ")
    assert server.value.transient


async def test_a_server_that_does_not_answer_is_a_network_error(zalo: FakeZaloApi):
    client = ZaloApi(zalo.token, zalo.base_url, timeout=0.3)
    zalo.inject_delay("sendMessage", 2.0)
    zalo.user("u3")
    try:
        with pytest.raises(ZaloNetworkError):
            await client.send_message("u3", "chậm")
    finally:
        await client.close()


async def test_the_webhook_gets_each_update_with_the_secret(zalo: FakeZaloApi, client: ZaloApi):
    received: list[tuple[str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get(SECRET_HEADER), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/zalo", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(ZaloError):
            await client.set_webhook(f"http://127.0.0.1:{port}/zalo", "short")
        await client.set_webhook(f"http://127.0.0.1:{port}/zalo", "bi-mat-cua-bot-123")
        assert (await client.webhook_info())["url"].endswith("/zalo")
        with pytest.raises(ZaloError) as conflict:
            await client.get_update(timeout=1)
        assert conflict.value.code == 409
        await zalo.user("u4", "Bình").send_text("qua webhook")
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.05)
        [(secret, body)] = received
        assert secret == "bi-mat-cua-bot-123"
        assert body["ok"] is True
        assert body["result"]["message"]["text"] == "qua webhook"  # type: ignore[index]
        await client.delete_webhook()
        assert (await client.webhook_info())["url"] == ""
    finally:
        await runner.cleanup()
