"""Tests of the fake Telegram Bot API, driven by the real python-telegram-bot stack."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from fakes.telegram import DEFAULT_TOKEN, FakeBotApi, HtmlParseError, parse_html, utf16_len

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it PTB emits a PTBDeprecationWarning while *constructing* RetryAfter, which the
    # suite's `filterwarnings = error` turns into the exception raised instead of RetryAfter.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as tg_bot:
        yield tg_bot


@asynccontextmanager
async def running_app(
    api: FakeBotApi, handlers: Sequence[BaseHandler[Any, Any, Any]]
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    app = (
        Application.builder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .job_queue(None)
        .build()
    )
    app.add_handlers(list(handlers))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=dtm.timedelta(seconds=2))
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


# -- identity / basics --------------------------------------------------------------------------


async def test_get_me_and_bot_settings(api: FakeBotApi, bot: Bot) -> None:
    assert bot.id == 123456
    assert bot.username == "cchc_test_bot"
    me = await bot.get_me()
    assert me.is_bot and me.can_join_groups
    assert [c.method for c in api.calls_of("GETME")] == ["getMe", "getMe"]

    assert await bot.set_my_commands([("start", "Bắt đầu"), ("help", "Trợ giúp")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.set_my_description("Cuộc thi")
    assert (await bot.get_my_description()).description == "Cuộc thi"
    assert await bot.set_chat_menu_button()
    assert await bot.log_out()
    assert await bot.close()

    user = api.user(42, first_name="An", username="an_nguyen")
    chat = await bot.get_chat(42)
    assert (chat.id, chat.type, chat.first_name, chat.username) == (
        42,
        "private",
        "An",
        "an_nguyen",
    )
    assert user.chat.id == 42
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat(43)


async def test_wrong_token_and_unknown_method(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=api.base_url):
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    # Method names are case-insensitive.
    assert (await bot.do_api_request("GETME"))["username"] == "cchc_test_bot"


# -- updates ------------------------------------------------------------------------------------


async def test_get_updates_offset_and_long_poll(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(1001, first_name="Bình")
    await user.send_text("hello")
    await user.send_text("/start ref_42")
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["hello", "/start ref_42"]
    start = updates[1].message
    assert start is not None and start.from_user is not None
    assert start.from_user.first_name == "Bình"
    assert start.entities[0].type == "bot_command" and start.entities[0].length == 6
    assert all(u.update_id in api.update_delivered_at for u in updates)

    # Not confirmed yet -> delivered again; confirmed with offset -> gone.
    assert len(await bot.get_updates(limit=1)) == 1
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
    assert api.pending_updates == 0

    # Long poll: returns [] on timeout ...
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await bot.get_updates(timeout=dtm.timedelta(seconds=0.2)) == ()
    assert loop.time() - t0 >= 0.19

    # ... and wakes up immediately when an update is queued.
    poll = asyncio.create_task(bot.get_updates(timeout=dtm.timedelta(seconds=5)))
    await asyncio.sleep(0.1)
    assert not poll.done()
    t0 = loop.time()
    await user.send_text("wake up")
    result = await asyncio.wait_for(poll, 2)
    assert loop.time() - t0 < 1
    assert [u.message.text for u in result if u.message] == ["wake up"]


async def test_stop_ends_long_poll_and_webhook_retries() -> None:
    api = FakeBotApi()
    await api.start()
    async with Bot(api.token, base_url=api.base_url) as tg_bot:
        poll = asyncio.create_task(tg_bot.get_updates(timeout=dtm.timedelta(seconds=5)))
        await asyncio.sleep(0.05)
        t0 = asyncio.get_running_loop().time()
        await api.stop()
        assert await asyncio.wait_for(poll, 1) == ()
        assert asyncio.get_running_loop().time() - t0 < 1

    api = FakeBotApi()
    await api.start()
    async with Bot(api.token, base_url=api.base_url) as tg_bot:
        poll = asyncio.create_task(tg_bot.get_updates(timeout=dtm.timedelta(seconds=5)))
        await asyncio.sleep(0.05)
        # setWebhook ends a pending long poll; a webhook to a closed port keeps retrying.
        assert await tg_bot.set_webhook("http://127.0.0.1:9/hook")
        assert await asyncio.wait_for(poll, 1) == ()
        await api.user(1).send_text("never delivered")
        await asyncio.sleep(0.1)
        info = await tg_bot.get_webhook_info()
        assert info.pending_update_count == 1 and info.last_error_message
        await api.stop()
    assert api.webhook_delivered == []


# -- messages -----------------------------------------------------------------------------------


async def test_send_edit_delete_message_state(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(7, first_name="Cường")
    await user.send_text("hi")
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Đồng ý ✅", callback_data="agree")],
            [InlineKeyboardButton("Từ chối", callback_data="decline")],
        ]
    )
    sent = await bot.send_message(7, "<b>Câu 1</b>: chọn", parse_mode="HTML", reply_markup=keyboard)
    assert sent.message_id == 2  # per-chat ids shared by user and bot messages
    assert sent.text == "Câu 1: chọn"
    assert sent.entities[0].type == "bold" and sent.entities[0].length == 5
    assert sent.reply_markup == keyboard

    message = user.last_bot_message()
    assert message is not None and message.from_bot and message.message_id == 2
    assert message.raw_text == "<b>Câu 1</b>: chọn"
    assert message.buttons == [["Đồng ý ✅"], ["Từ chối"]]
    assert message.inline_data == {"Đồng ý ✅": "agree", "Từ chối": "decline"}
    assert [m.from_bot for m in user.messages] == [False, True]

    edited = await bot.edit_message_text(
        "<b>Câu 1</b>: đã chọn", chat_id=7, message_id=2, parse_mode="HTML", reply_markup=keyboard
    )
    assert isinstance(edited, type(sent)) and edited.edit_date is not None
    assert (message.text, message.edits) == ("Câu 1: đã chọn", 1)
    assert message.edit_history[0]["text"] == "Câu 1: chọn"

    # Same parse result (<strong> == <b>) and same markup -> not modified.
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<strong>Câu 1</strong>: đã chọn",
            chat_id=7,
            message_id=2,
            parse_mode="HTML",
            reply_markup=keyboard,
        )
    # Editing the text without reply_markup drops the inline keyboard, as in Telegram.
    await bot.edit_message_text("<b>Câu 1</b>: đã chọn", chat_id=7, message_id=2, parse_mode="HTML")
    assert message.buttons == [] and message.edits == 2
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(chat_id=7, message_id=2)
    await bot.edit_message_reply_markup(chat_id=7, message_id=2, reply_markup=keyboard)
    assert message.buttons == [["Đồng ý ✅"], ["Từ chối"]]

    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=7, message_id=99)
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat_id=7, message_id=1)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(7, "  ")

    # Reply keyboard with a contact button, then removal.
    await bot.send_message(
        7,
        "Chia sẻ số điện thoại",
        reply_markup=ReplyKeyboardMarkup([[KeyboardButton("📱 Gửi số", request_contact=True)]]),
        reply_parameters={"message_id": 1},  # type: ignore[arg-type]
    )
    assert user.reply_keyboard == [["📱 Gửi số"]]
    last = user.last_bot_message()
    assert last is not None and last.reply_to is not None and last.reply_to.message_id == 1

    assert await bot.delete_message(7, 2)
    assert 2 not in [m.message_id for m in user.messages]
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(7, 2)
    assert await bot.send_chat_action(7, "typing")


async def test_chat_not_found_and_blocked_user(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(404, "hi")
    user = api.user(8)
    user.block()
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(8, "hi")
    user.unblock()
    assert (await bot.send_message(8, "hi")).text == "hi"


async def test_callback_data_must_be_1_to_64_bytes(api: FakeBotApi, bot: Bot) -> None:
    api.user(9)

    def markup(data: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data=data)]])

    assert await bot.send_message(9, "ok", reply_markup=markup("a" * 64))
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(9, "too long", reply_markup=markup("a" * 65))
    # 22 characters, but 66 UTF-8 bytes.
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(9, "too long", reply_markup=markup("đượ" * 11))
    with pytest.raises(BadRequest, match=r"(?i)Text buttons are unallowed"):
        await bot.send_message(9, "x", reply_markup={"inline_keyboard": [[{"text": "x"}]]})  # type: ignore[arg-type]


async def test_message_length_is_checked_in_utf16_on_visible_text(
    api: FakeBotApi, bot: Bot
) -> None:
    api.user(10)
    assert await bot.send_message(10, "a" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(10, "a" * 4097)
    # Tags do not count, entities count as one character.
    assert await bot.send_message(10, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
    # An emoji outside the BMP is 2 UTF-16 code units.
    assert utf16_len("😀") == 2
    assert await bot.send_message(10, "😀" * 2048)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(10, "😀" * 2048 + "a")


@pytest.mark.parametrize(
    "text",
    [
        "<b>bold",
        "<foo>x</foo>",
        "a < b",
        "A & B",
        "<b>x</i>",
        "x</b>",
        "<span>x</span>",
        '<a href="https://x.vn">x',
    ],
)
async def test_html_parse_errors(api: FakeBotApi, bot: Bot, text: str) -> None:
    api.user(11)
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(11, text, parse_mode="HTML")


async def test_html_visible_text_round_trip(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(12)
    raw = '&lt;b&gt; 😀 <b>đậm</b> &amp; <a href="https://a.vn/?x=1&amp;y=2">link</a> &quot;'
    sent = await bot.send_message(12, raw, parse_mode="HTML")
    assert sent.text == '<b> 😀 đậm & link "'
    bold, link = sent.entities
    assert (bold.type, bold.offset, bold.length) == ("bold", 7, 3)  # 😀 counts as 2
    assert (link.type, link.url) == ("text_link", "https://a.vn/?x=1&y=2")
    message = user.last_bot_message()
    assert message is not None
    assert (message.text, message.raw_text, message.parse_mode) == (sent.text, raw, "HTML")
    # Without parse_mode the text is stored verbatim.
    assert (await bot.send_message(12, "<b>&lt;")).text == "<b>&lt;"


def test_parse_html_unit() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre><tg-spoiler>s</tg-spoiler>'
        '<span class="tg-spoiler">p</span><blockquote expandable>q</blockquote>&#128512;&#x41;'
    )
    assert text == "x = 1spq😀A"
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("pre", 0, 5),
        ("spoiler", 5, 1),
        ("spoiler", 6, 1),
        ("expandable_blockquote", 7, 1),
    ]
    assert entities[0]["language"] == "python"
    assert parse_html("A & B", strict=False)[0] == "A & B"
    with pytest.raises(HtmlParseError, match='Unsupported start tag "" at byte offset 2'):
        parse_html("a < b")
    with pytest.raises(HtmlParseError, match='expected "</b>", found "</i>"'):
        parse_html("<b>x</i>")


# -- error injection ----------------------------------------------------------------------------


async def test_injected_errors_map_to_ptb_exceptions(api: FakeBotApi, bot: Bot) -> None:
    api.user(13)
    api.inject_error("sendmessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as retry:
        await bot.send_message(13, "x")
    assert retry.value.retry_after == dtm.timedelta(seconds=7)

    api.inject_error("sendMessage", 403)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(13, "x")
    api.inject_error("sendMessage", 500)
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await bot.send_message(13, "x")
    api.inject_error("*", 502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
            await bot.get_me()
    assert (await bot.send_message(13, "finally")).text == "finally"

    statuses = [call.status for call in api.calls_of("sendMessage")]
    assert statuses == [429, 403, 500, 200]
    assert api.calls_of("sendMessage")[0].description == "Too Many Requests: retry after 7"
    assert api.calls_of("sendMessage")[0].params == {"chat_id": 13, "text": "x"}


async def test_injected_delay_causes_client_timeout(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(14)
    api.inject_delay("sendMessage", 0.5, after=True)
    with pytest.raises(TimedOut):
        await bot.send_message(14, "slow", read_timeout=0.1)
    # after=True: processed, only the answer was late (the classic "sent twice" trap).
    assert [m.text for m in user.bot_messages()] == ["slow"]
    api.inject_delay("getMe", 0.5)
    with pytest.raises(TimedOut):
        await bot.get_me(read_timeout=0.1)
    assert (await bot.get_me()).username == "cchc_test_bot"


# -- a real Application ------------------------------------------------------------------------


async def test_application_commands_callbacks_and_contacts(api: FakeBotApi) -> None:
    seen_calls: list[str] = []
    api.on_bot_call(lambda method, params, t: seen_calls.append(method))

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_html(
            f"Xin chào! ref=<code>{' '.join(context.args or [])}</code>",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("Đồng ý tham gia", callback_data="join:1")]]
            ),
        )

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        if query.data == "join:1":
            await query.answer("Đã ghi nhận")
            await query.edit_message_text("Bạn đã đồng ý ✅")
        else:
            await query.answer("Nút đã hết hạn", show_alert=True)

    async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.contact is not None
        own = message.contact.user_id == message.chat_id
        await message.reply_text(f"contact {message.contact.phone_number} own={own}")

    handlers: list[BaseHandler[Any, Any, Any]] = [
        CommandHandler("start", start),
        CallbackQueryHandler(on_button),
        MessageHandler(filters.CONTACT, on_contact),
    ]
    async with running_app(api, handlers):
        user = api.user(2001, first_name="Dũng")
        await user.send_text("/start ref_99")
        welcome = await user.wait_for(lambda m: "Xin chào" in m.text, timeout=3)
        assert welcome.text == "Xin chào! ref=ref_99"

        query_id = await user.press("Đồng ý")  # prefix match
        answer = await user.wait_callback_answer(query_id, timeout=3)
        assert (answer.text, answer.show_alert) == ("Đã ghi nhận", False)
        edited = await user.wait_for(lambda m: "đồng ý" in m.text, timeout=3)
        assert edited.message_id == welcome.message_id and edited.edits == 1
        assert api.callbacks[query_id].answered
        update_id = api.callback_update_ids[query_id]
        assert update_id in api.update_delivered_at

        stale_id = await user.press_data("join:old", welcome.message_id)
        stale = await user.wait_callback_answer(stale_id, timeout=3)
        assert (stale.text, stale.show_alert) == ("Nút đã hết hạn", True)

        await user.share_contact("+84901234567")
        reply = await user.wait_for_new_message(timeout=3)
        assert reply.text == "contact +84901234567 own=True"
        await user.share_contact("+84900000000", user_id=None, first_name="Khác")
        other = await user.wait_for(lambda m: "+84900000000" in m.text, timeout=3)
        assert other.text.endswith("own=False")

        with pytest.raises(AssertionError, match=r"(?i)Available buttons"):
            await user.press("Không có nút này")
        with pytest.raises(TimeoutError, match=r"(?i)Transcript"):
            await user.wait_for(lambda m: "never" in m.text, timeout=0.05)

    async with Bot(api.token, base_url=api.base_url) as tg_bot:
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await tg_bot.answer_callback_query(query_id)
    assert {"getMe", "getUpdates", "sendMessage", "answerCallbackQuery"} <= set(seen_calls)


# -- webhook ------------------------------------------------------------------------------------


async def test_webhook_delivery_with_secret_and_retry(api: FakeBotApi, bot: Bot) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return web.Response(status=500)
        received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        user = api.user(3001)
        await user.send_text("queued before webhook")
        assert await bot.set_webhook(
            f"http://127.0.0.1:{port}/hook", secret_token="s3cr3t", drop_pending_updates=True
        )
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        await user.send_text("one")
        await user.send_text("two")
        for _ in range(200):
            if len(received) == 2:
                break
            await asyncio.sleep(0.01)
        assert [body["message"]["text"] for body, _ in received] == ["one", "two"]
        assert {secret for _, secret in received} == {"s3cr3t"}
        assert attempts == 3  # first attempt failed and was retried
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert info.last_error_message is not None and "500" in info.last_error_message
        assert all(body["update_id"] in api.update_delivered_at for body, _ in received)
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates(timeout=0) == ()
    finally:
        await runner.cleanup()


# -- files --------------------------------------------------------------------------------------


async def test_send_document_multipart_and_get_file(api: FakeBotApi, bot: Bot) -> None:
    user = api.user(4001)
    payload = bytes(range(256)) * 40
    sent = await bot.send_document(
        4001,
        document=payload,
        filename="ket_qua.xlsx",
        caption="<b>Báo cáo</b> &amp; kết quả",
        parse_mode="HTML",
    )
    assert sent.document is not None and sent.document.file_name == "ket_qua.xlsx"
    assert sent.caption == "Báo cáo & kết quả"
    message = user.last_bot_message()
    assert message is not None and message.document is not None
    assert (message.document.filename, message.document.data) == ("ket_qua.xlsx", payload)
    call = api.calls_of("sendDocument")[0]
    assert call.params["document"].filename == "ket_qua.xlsx"

    tg_file = await bot.get_file(sent.document.file_id)
    assert bytes(await tg_file.download_as_bytearray()) == payload

    # A document sent by the user can be fetched by the bot.
    await user.send_document("cau_hoi.xlsx", b"PK\x03\x04data", caption="import")
    updates = await bot.get_updates(timeout=0)
    document = updates[-1].message.document  # type: ignore[union-attr]
    assert document is not None and document.file_name == "cau_hoi.xlsx"
    downloaded = await (await bot.get_file(document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == b"PK\x03\x04data"


# -- control HTTP API and standalone mode -------------------------------------------------------


async def test_control_http_api(api: FakeBotApi, bot: Bot) -> None:
    async with ClientSession(api.url) as http:
        resp = await http.post("/_fake/users/5001/text", json={"text": "/start", "first_name": "E"})
        assert resp.status == 200 and (await resp.json())["result"]["text"] == "/start"
        updates = await bot.get_updates(timeout=0)
        assert updates[-1].message is not None and updates[-1].message.text == "/start"

        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Bắt đầu", callback_data="go")]])
        await bot.send_message(5001, "Chào E", reply_markup=keyboard)
        resp = await http.get("/_fake/chats/5001/messages")
        records = await resp.json()
        assert [(r["from_bot"], r["text"]) for r in records] == [
            (False, "/start"),
            (True, "Chào E"),
        ]
        assert records[1]["buttons"] == [["Bắt đầu"]]

        resp = await http.post("/_fake/users/5001/press", json={"label": "Bắt đầu"})
        query_id = (await resp.json())["result"]["callback_query_id"]
        assert api.callbacks[query_id].data == "go"
        resp = await http.post("/_fake/users/5001/press", json={"label": "Nope"})
        assert resp.status == 400 and "Available buttons" in (await resp.json())["description"]

        resp = await http.post("/_fake/users/5001/contact", json={"phone_number": "0901"})
        assert (await resp.json())["result"]["contact"]["user_id"] == 5001

        resp = await http.post("/_fake/inject", json={"method": "getMe", "status": 429})
        assert resp.status == 200
        with pytest.raises(RetryAfter):
            await bot.get_me()

        resp = await http.get("/_fake/chats/5001/poll", params={"after": "0", "timeout": "1"})
        assert (await resp.json())["seq"] == 3  # /start, "Chào E", contact

        stats = await (await http.get("/_fake/stats")).json()
        assert stats["calls"]["sendMessage"] == 1 and stats["calls"]["getMe"] == 2
        assert stats["pending_updates"] == 3  # /start is delivered but not confirmed


def test_standalone_entry_point() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes.telegram", "--port", "0", "--token", DEFAULT_TOKEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        assert first_line.startswith("Fake Telegram Bot API listening on http://127.0.0.1:")
        url = first_line.rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/bot{DEFAULT_TOKEN}/getMe", timeout=5) as resp:
            assert json.load(resp)["result"]["username"] == "cchc_test_bot"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
