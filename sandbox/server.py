"""The sandbox: the fake Bot API, the real bot on it, and the web chat page, in one process.

What runs here::

    FakeBotApi (127.0.0.1, a free port)   the Telegram side: chats, files, updates
    FakeZaloApi (127.0.0.1, a free port)  the Zalo side: plain-text chats, one update a poll
    the bot (bot.app.build_application)   as ``contest-bot run --channel telegram,zalo``
                                          builds and starts it, on the fakes' URLs (made-up
                                          tokens that never leave the machine), with an
                                          OffsetClock
    the page (aiohttp, --port)            static HTML/CSS/JS and a small JSON API that plays
                                          the personas through the fake's Python API, plus
                                          server-sent events for what changes in a chat

A persona is a Telegram user or a Zalo user. A Zalo chat is plain text only, as Zalo shows it:
no buttons, no edits, no contact card (the person types the phone number).

The page never talks to the fakes directly: it cannot forge a button the bot did not send,
and it downloads only the files the bot sent to that persona.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from sqlalchemy import func, select

from bot.app import build_application, clock_moved, runtime, start, stop
from bot.config import load_rules
from bot.settings import Settings
from contest.clock import OffsetClock
from contest.errors import ContestError
from contest.importing import validate_questions, validate_units
from contest.model import Account, Role
from contest.rules import LOCAL_TZ, ContestRules
from contest.ui import texts
from contest.usecases.staff import Actor
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from fakes.zalo import FakeZaloApi, FakeZaloUser, ZaloMessage
from handlers.console import refresh_menus
from storage import models as m
from storage.files import read_table

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "700000:SANDBOX-NOT-A-REAL-TOKEN"
SANDBOX_ZALO_TOKEN = "800000:SANDBOX-ZALO-NOT-A-REAL-TOKEN"
ORGANISER_ID = 700_001  # the organiser of the settings (CONTEST_ADMIN_IDS)
FIRST_PERSONA_ID = 700_101
MAX_PERSONAS = 200
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the bot itself refuses files over 5 MB, with a message
MAX_TEXT = 4096
MAX_ZALO_TEXT = 2000  # Zalo's own limit on a message
MAX_NAME = 64
EVENT_HEARTBEAT_SECONDS = 15.0
CALLBACK_WAIT_SECONDS = 10.0
SWEEP_SECONDS = 2.0  # deadline sweeps and the campaign's look for due reminders
MAX_ADVANCE = timedelta(days=400)

ROLE_NAMES = {
    "contestant": "Thí sinh",
    "organiser": "Ban Tổ chức",
    "focal": "Đầu mối đơn vị",
}
CHANNEL_NAMES = {"telegram": "Telegram", "zalo": "Zalo"}
STATIC = resources.files("sandbox") / "static"
STATIC_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}


class Refusal(Exception):
    """A request of the page the sandbox will not do (shown to the user, in Vietnamese)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Persona:
    id: int
    name: str
    role: str
    phone: str
    unit_code: str | None = None
    unit_name: str | None = None
    channel: str = "telegram"

    @property
    def zalo_id(self) -> str:
        """The persona's Zalo user id (a Zalo persona's; made up, like the fake's token)."""
        return str(self.id)

    @property
    def account(self) -> Account:
        return Account.zalo(self.zalo_id) if self.channel == "zalo" else Account.telegram(self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "role_name": ROLE_NAMES[self.role],
            "channel": self.channel,
            "channel_name": CHANNEL_NAMES[self.channel],
            "phone": self.phone,
            "unit_code": self.unit_code,
            "unit_name": self.unit_name,
        }


def phone_of(user_id: int) -> str:
    """A persona's phone number (the one its contact card shares): unique per persona."""
    return f"09{user_id % 100_000_000:08d}"


def message_record(message: FakeMessage) -> dict[str, Any]:
    """What the page needs of one message: its visible text with Telegram's entities (the
    page renders them; everything else is shown as text), its inline buttons, a document."""
    document = message.document
    return {
        "id": message.message_id,
        "from_bot": message.from_bot,
        "text": message.text,
        "entities": message.entities,
        "buttons": [
            [
                {
                    "text": str(button.get("text", "")),
                    "data": button.get("callback_data"),
                    "url": button.get("url"),
                }
                for button in row
            ]
            for row in message.inline_keyboard
        ],
        "document": (
            {
                "file_id": document.file_id,
                "name": document.file_name,
                "size": document.file_size,
            }
            if document is not None
            else None
        ),
        "contact": (
            {"phone": str(message.contact.get("phone_number", ""))}
            if message.contact is not None
            else None
        ),
        "edited": message.edits > 0,
        "deleted": message.deleted,
        "seq": message.seq,
    }


def zalo_record(message: ZaloMessage) -> dict[str, Any]:
    """A Zalo message as the page shows it: plain text only (no formatting, no buttons, no
    edits). Its id is its place in the fake's sequence (Zalo's own ids are not ordered)."""
    text = message.text
    if not text and message.kind != "text":
        text = {"photo": "[Ảnh]", "image": "[Ảnh]", "sticker": "[Nhãn dán]"}.get(
            message.kind, "[Tin nhắn không hỗ trợ]"
        )
    return {
        "id": message.seq,
        "from_bot": message.from_bot,
        "text": text,
        "entities": [],
        "buttons": [],
        "document": None,
        "contact": None,
        "edited": False,
        "deleted": False,
        "seq": message.seq,
    }


def zalo_seq(user: FakeZaloUser) -> int:
    return user.messages[-1].seq if user.messages else 0


def reply_keyboard(user: FakeUser) -> list[list[dict[str, Any]]] | None:
    markup = user.chat.reply_keyboard
    if not markup:
        return None
    rows: list[list[dict[str, Any]]] = []
    for row in markup.get("keyboard", []):
        buttons = []
        for button in row:
            if isinstance(button, dict):
                buttons.append(
                    {
                        "text": str(button.get("text", "")),
                        "contact": bool(button.get("request_contact")),
                    }
                )
            else:
                buttons.append({"text": str(button), "contact": False})
        rows.append(buttons)
    return rows


class Sandbox:
    """Everything ``contest-bot sandbox`` runs, started and stopped together."""

    def __init__(
        self,
        *,
        database_url: str,
        config: Path,
        host: str = "127.0.0.1",
        port: int = 8080,
        clock: OffsetClock | None = None,
    ) -> None:
        self.database_url = database_url
        self.config = config
        self.host = host
        self.port = port
        self.clock = clock or OffsetClock()
        self.api = FakeBotApi(
            SANDBOX_TOKEN,
            bot_username="cchc_dongda_sandbox_bot",
            bot_first_name="Cuộc thi CCHC (diễn tập)",
        )
        self.zalo = FakeZaloApi(SANDBOX_ZALO_TOKEN, bot_name="bot.CuocThiCCHC_DienTap")
        self.app: Any = None
        self.rules: ContestRules | None = None
        self.personas: dict[int, Persona] = {}
        self.units: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._clock_lock = asyncio.Lock()
        self._persona_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.api.start()
        try:
            await self.zalo.start()
            values: dict[str, Any] = {
                "bot_token": self.api.token,
                "bot_api_url": self.api.base_url,
                "zalo_token": self.zalo.token,
                "zalo_api_url": self.zalo.base_url,
                "database_url": self.database_url,
                "config": self.config,
                "admin_ids": str(ORGANISER_ID),
                "sweep_seconds": SWEEP_SECONDS,
                # A stop waits for the Zalo poll in flight (no offset: an abandoned poll loses
                # its update): short polls, so Ctrl+C stops the sandbox at once.
                "poll_timeout": 2,
                "_env_file": None,  # never a .env's real token
            }
            settings = Settings(**values)
            self.rules = load_rules(settings.config_path())
            # The same assembly as `contest-bot run --channel telegram,zalo`, with the
            # sandbox's clock.
            self.app = build_application(settings, self.rules, clock=self.clock, zalo=True)
            # Two personas to begin with: a contestant, and the organiser of the settings.
            first = FIRST_PERSONA_ID
            self.add_persona_user(Persona(first, "Nguyễn Văn An", "contestant", phone_of(first)))
            self.add_persona_user(
                Persona(ORGANISER_ID, "Trưởng ban tổ chức", "organiser", phone_of(ORGANISER_ID))
            )
            await start(self.app, poll_timeout=settings.poll_timeout)
            await self._seed()
            await self._restore_personas()
            await self._start_web()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.app is not None:
            with contextlib.suppress(Exception):
                await stop(self.app)
            self.app = None
        await self.zalo.stop()
        await self.api.stop()

    async def _seed(self) -> None:
        """The sample units and bank, into an empty database (a kept one keeps its own)."""
        service = runtime(self.app).service
        engine = runtime(self.app).engine
        samples = resources.files("storage") / "samples"
        async with engine.connect() as conn:
            questions = await conn.scalar(select(func.count()).select_from(m.QuestionRow))
            units = await conn.scalar(select(func.count()).select_from(m.UnitRow))
        if not units:
            with resources.as_file(samples / "units.csv") as path:
                header, rows = read_table(path)
            await service.console.import_units(validate_units(header, rows))
        if not questions:
            with resources.as_file(samples / "questions.csv") as path:
                header, rows = read_table(path)
            await service.console.import_questions(validate_questions(header, rows))
        async with engine.connect() as conn:
            found = await conn.execute(
                select(m.UnitRow.code, m.UnitRow.name).order_by(m.UnitRow.name)
            )
            self.units = [(str(code), str(name)) for code, name in found]

    async def _restore_personas(self) -> None:
        """A kept database (--database-url) brings back the personas of earlier runs: the
        sandbox's accounts (Telegram or Zalo) that registered or were given a role."""
        service = runtime(self.app).service
        engine = runtime(self.app).engine
        low, high = FIRST_PERSONA_ID, FIRST_PERSONA_ID + 10 * MAX_PERSONAS

        def ours(external_id: str) -> bool:
            return external_id.isdigit() and low <= int(external_id) < high

        names: dict[int, str] = {}
        channels: dict[int, str] = {}
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(m.AccountRow.channel, m.AccountRow.external_id, m.PersonRow.full_name)
                .join(m.PersonRow, m.PersonRow.id == m.AccountRow.person_id)
                .where(m.AccountRow.channel.in_(CHANNEL_NAMES))
            )
            for channel, external_id, full_name in rows:
                if ours(str(external_id)):
                    names[int(external_id)] = str(full_name)
                    channels[int(external_id)] = str(channel)
            unit_rows = await conn.execute(select(m.UnitRow.id, m.UnitRow.code, m.UnitRow.name))
            units = {int(uid): (str(code), str(name)) for uid, code, name in unit_rows}
        roles: dict[int, tuple[str, int | None]] = {}
        for held in await service.staff.holders():
            account_id = held.account.user_id
            if held.account.channel.value in CHANNEL_NAMES and ours(account_id):
                role = "organiser" if held.role is Role.ORGANISER else "focal"
                roles[int(account_id)] = (role, held.unit_id)
                channels[int(account_id)] = held.account.channel.value
        for user_id in sorted(set(names) | set(roles)):
            if user_id in self.personas or len(self.personas) >= MAX_PERSONAS:
                continue
            role, unit_id = roles.get(user_id, ("contestant", None))
            persona = Persona(
                user_id,
                names.get(user_id, f"{ROLE_NAMES[role]} {user_id}"),
                role,
                phone_of(user_id),
                channel=channels[user_id],
            )
            if unit_id is not None and unit_id in units:
                persona.unit_code, persona.unit_name = units[unit_id]
            self.add_persona_user(persona)

    async def _start_web(self) -> None:
        web_app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 64 * 1024)
        web_app.middlewares.append(_refusals)
        routes = web_app.router
        routes.add_get("/", self._index)
        routes.add_get("/static/{name}", self._static)
        routes.add_get("/api/state", self._state)
        routes.add_post("/api/personas", self._new_persona)
        routes.add_get("/api/personas/{id}/chat", self._chat)
        routes.add_get("/api/personas/{id}/events", self._events)
        routes.add_post("/api/personas/{id}/text", self._text)
        routes.add_post("/api/personas/{id}/press", self._press)
        routes.add_post("/api/personas/{id}/contact", self._contact)
        routes.add_post("/api/personas/{id}/document", self._document)
        routes.add_get("/api/personas/{id}/files/{file_id}", self._download)
        routes.add_post("/api/clock", self._move_clock)
        runner = web.AppRunner(
            web_app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a page closed ends its event stream
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    # ------------------------------------------------------------------ personas

    def add_persona_user(self, persona: Persona) -> None:
        self.personas[persona.id] = persona
        if persona.channel == "zalo":
            self.zalo.user(persona.zalo_id, persona.name)
        else:
            self.api.user(persona.id, first_name=persona.name)

    async def create_persona(
        self, name: str, role: str, unit_code: str | None, channel: str = "telegram"
    ) -> Persona:
        """A new persona, on Telegram or Zalo; an organiser is promoted and a focal person
        assigned to their unit by the sandbox's organiser, through the organisers' own use
        cases (audited), whatever the channel."""
        name = " ".join(name.split())
        if not name or len(name) > MAX_NAME:
            raise Refusal(f"Tên vai phải có từ 1 đến {MAX_NAME} ký tự.")
        if role not in ROLE_NAMES:
            raise Refusal("Vai không hợp lệ: chọn Thí sinh, Ban Tổ chức hoặc Đầu mối đơn vị.")
        if channel not in CHANNEL_NAMES:
            raise Refusal("Kênh không hợp lệ: chọn Telegram hoặc Zalo.")
        unit_name = None
        if role == "focal":
            unit_name = dict(self.units).get(unit_code or "")
            if unit_name is None:
                raise Refusal("Hãy chọn đơn vị của đầu mối.")
        async with self._persona_lock:
            if len(self.personas) >= MAX_PERSONAS:
                raise Refusal(f"Hộp thử đã có {MAX_PERSONAS} vai, không tạo thêm được.")
            user_id = max([FIRST_PERSONA_ID - 1, *self.personas]) + 1
            persona = Persona(user_id, name, role, phone_of(user_id), channel=channel)
            if role == "focal":
                persona.unit_code, persona.unit_name = unit_code, unit_name
            self.add_persona_user(persona)
            if role != "contestant":
                service = runtime(self.app).service
                actor = Actor(
                    Account.telegram(ORGANISER_ID), Role.ORGANISER, name="Hộp thử (diễn tập)"
                )
                target = str(persona.account)  # telegram:<id> or zalo:<id>
                try:
                    if role == "organiser":
                        await service.staff.promote(actor, target)
                    else:
                        assert unit_code is not None
                        await service.staff.assign_focal(actor, unit_code, target)
                except ContestError as exc:
                    del self.personas[user_id]
                    raise Refusal(texts.error(exc.code, **exc.params)) from None
                await refresh_menus(self.app)  # their console commands in the menu
        return persona

    def persona_of(self, request: web.Request) -> Persona:
        try:
            persona_id = int(request.match_info["id"])
        except ValueError:
            raise Refusal("Không có vai này.", 404) from None
        persona = self.personas.get(persona_id)
        if persona is None:
            raise Refusal("Không có vai này.", 404)
        return persona

    def persona_user(self, request: web.Request, refusal: str = "", status: int = 400) -> FakeUser:
        """The Telegram user of the persona; a Zalo persona is refused with ``refusal``
        (what Zalo does not have: buttons, contact cards, files)."""
        persona = self.persona_of(request)
        if persona.channel != "telegram":
            raise Refusal(refusal or "Zalo không có chức năng này.", status)
        return self.api.user(persona.id)

    def zalo_user(self, persona: Persona) -> FakeZaloUser:
        return self.zalo.user(persona.zalo_id, persona.name)

    def commands_of(self, user_id: int) -> list[dict[str, str]]:
        """The bot's command menu in this chat (its own scope, else the default one)."""
        fallback: list[dict[str, Any]] = []
        for key, commands in self.api.commands.items():
            scope, _language = json.loads(key)
            if scope.get("type") == "chat" and scope.get("chat_id") == user_id:
                return [_command(c) for c in commands]
            if scope.get("type") == "default":
                fallback = commands
        return [_command(c) for c in fallback]

    def chat_state(self, user: FakeUser, since: int = 0) -> dict[str, Any]:
        return {
            "seq": user.chat.seq,
            "messages": [message_record(m) for m in user.chat.all_messages if m.seq > since],
            "keyboard": reply_keyboard(user),
            "commands": self.commands_of(user.id),
        }

    def zalo_chat_state(self, user: FakeZaloUser, since: int = 0) -> dict[str, Any]:
        """A Zalo chat: its messages as plain text; no reply keyboard, no command menu."""
        return {
            "seq": zalo_seq(user),
            "messages": [zalo_record(m) for m in user.messages if m.seq > since],
            "keyboard": None,
            "commands": [],
        }

    def persona_chat_state(self, persona: Persona, since: int = 0) -> dict[str, Any]:
        if persona.channel == "zalo":
            return self.zalo_chat_state(self.zalo_user(persona), since)
        return self.chat_state(self.api.user(persona.id), since)

    # ------------------------------------------------------------------ the clock

    async def move_clock(self, step: timedelta) -> datetime:
        """Move the sandbox's clock forward, then let the bot catch up: overdue attempts
        closed, warnings and reminders due sent, deadline timers armed again."""
        if step <= timedelta():
            raise Refusal("Chỉ có thể chỉnh đồng hồ tiến lên (thời gian không quay lại được).")
        if step > MAX_ADVANCE:
            raise Refusal("Mỗi lần chỉ chỉnh tiến tối đa 400 ngày.")
        async with self._clock_lock:
            self.clock.advance(step)
            await clock_moved(self.app)
        return self.clock.now()

    def clock_state(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "now": now.isoformat(),
            "local": now.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M:%S"),
            "offset_seconds": self.clock.offset.total_seconds(),
        }

    def schedule_state(self) -> dict[str, str]:
        assert self.rules is not None

        def show(moment: datetime) -> str:
            return moment.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")

        window = self.rules.round1.window
        return {"round1_opens": show(window.opens), "round1_closes": show(window.closes)}

    # ------------------------------------------------------------------ HTTP: the page

    async def _index(self, request: web.Request) -> web.Response:
        return self._static_file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return self._static_file(request.match_info["name"])

    def _static_file(self, name: str) -> web.Response:
        suffix = Path(name).suffix
        if not re.fullmatch(r"[a-z]+\.[a-z]+", name) or suffix not in STATIC_TYPES:
            raise Refusal("Không có tệp này.", 404)
        resource = STATIC / name
        if not resource.is_file():
            raise Refusal("Không có tệp này.", 404)
        return web.Response(
            body=resource.read_bytes(),
            content_type=STATIC_TYPES[suffix],
            charset="utf-8",
            headers={
                "Cache-Control": "no-cache",
                # Only the page's own files: no script or style from anywhere else.
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # ------------------------------------------------------------------ HTTP: the API

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "personas": [p.to_dict() for p in self.personas.values()],
                "roles": ROLE_NAMES,
                "channels": CHANNEL_NAMES,
                "units": [{"code": code, "name": name} for code, name in self.units],
                "clock": self.clock_state(),
                "schedule": self.schedule_state(),
            }
        )

    async def _new_persona(self, request: web.Request) -> web.Response:
        body = await _json(request)
        persona = await self.create_persona(
            str(body.get("name", "")),
            str(body.get("role", "")),
            body.get("unit_code") or None,
            str(body.get("channel") or "telegram"),
        )
        return web.json_response(persona.to_dict())

    async def _chat(self, request: web.Request) -> web.Response:
        return web.json_response(self.persona_chat_state(self.persona_of(request)))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: what changed in the chat (sent, edited, deleted messages, the
        reply keyboard, the menu) since the event id the page last saw; for a Zalo persona,
        the messages sent since then."""
        persona = self.persona_of(request)
        last = request.headers.get("Last-Event-ID") or request.query.get("since") or "0"
        since = int(last) if last.isdigit() else 0
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        if persona.channel == "zalo":
            await self._zalo_events(self.zalo_user(persona), since, response)
            return response
        user = self.api.user(persona.id)
        chat = user.chat
        with contextlib.suppress(ConnectionResetError):
            while True:
                version = chat.notifier.version
                if chat.seq != since:
                    state = self.chat_state(user, since)
                    since = chat.seq
                    data = json.dumps(state, ensure_ascii=False)
                    await response.write(f"id: {since}\ndata: {data}\n\n".encode())
                if chat.notifier.version != version:
                    continue
                if not await chat.notifier.wait(EVENT_HEARTBEAT_SECONDS):
                    await response.write(b": ping\n\n")
        return response

    async def _zalo_events(
        self, user: FakeZaloUser, since: int, response: web.StreamResponse
    ) -> None:
        with contextlib.suppress(ConnectionResetError):
            while True:
                if zalo_seq(user) > since:
                    state = self.zalo_chat_state(user, since)
                    since = state["seq"]
                    data = json.dumps(state, ensure_ascii=False)
                    await response.write(f"id: {since}\ndata: {data}\n\n".encode())
                    continue
                # No await between the look above and the wait: no message slips between.
                await user.wake.wait(EVENT_HEARTBEAT_SECONDS)
                if zalo_seq(user) <= since:
                    await response.write(b": ping\n\n")

    async def _text(self, request: web.Request) -> web.Response:
        persona = self.persona_of(request)
        text = str((await _json(request)).get("text", "")).strip()
        limit = MAX_ZALO_TEXT if persona.channel == "zalo" else MAX_TEXT
        if not text:
            raise Refusal("Hãy nhập nội dung tin nhắn.")
        if len(text) > limit:
            raise Refusal(f"Tin nhắn dài quá {limit} ký tự.")
        if persona.channel == "zalo":
            await self.zalo_user(persona).send_text(text)
        else:
            await self.api.user(persona.id).send_text(text)
        return web.json_response({"ok": True})

    async def _press(self, request: web.Request) -> web.Response:
        """Press an inline button the bot sent (only those: a Telegram app sends nothing
        else); the answer to the press (a toast or an alert) comes back."""
        user = self.persona_user(request, "Zalo không có nút bấm: hãy gõ câu trả lời.")
        body = await _json(request)
        message = user.chat.by_id.get(_int(body.get("message_id")))
        data = body.get("data")
        if (
            message is None
            or message.deleted
            or not isinstance(data, str)
            or data not in message.inline_data.values()
        ):
            raise Refusal("Nút này không còn trên tin nhắn.")
        query = await user.press_data(data, message.message_id)
        try:
            answer = await user.wait_callback_answer(query, CALLBACK_WAIT_SECONDS)
        except TimeoutError:
            return web.json_response({"text": None, "alert": False})
        return web.json_response({"text": answer.text, "alert": answer.show_alert})

    async def _contact(self, request: web.Request) -> web.Response:
        """Share the persona's own contact card (the reply keyboard's button)."""
        user = self.persona_user(
            request, "Zalo không chia sẻ được danh bạ: hãy gõ số điện thoại của vai."
        )
        await user.share_contact(self.personas[user.id].phone)
        # Telegram hides a one-time keyboard once it is used.
        markup = user.chat.reply_keyboard
        if markup and markup.get("one_time_keyboard"):
            user.chat.reply_keyboard = None
            user.chat.bump()
            user.chat.changed()
        return web.json_response({"ok": True})

    async def _document(self, request: web.Request) -> web.Response:
        user = self.persona_user(request, "Hộp thử chưa gửi được tệp qua Zalo: hãy dùng Telegram.")
        if not request.content_type.startswith("multipart/"):
            raise Refusal("Hãy chọn một tệp để gửi.")
        reader = await request.multipart()
        name, data, mime, caption = "", b"", "application/octet-stream", ""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                name = part.filename or "tep"
                mime = part.headers.get("Content-Type", mime)
                data = await part.read(decode=False)
            elif part.name == "caption":
                caption = (await part.text())[:1024]
        if not name or not data:
            raise Refusal("Tệp rỗng hoặc chưa chọn tệp.")
        await user.send_document(Path(name).name[:200], bytes(data), caption or None, mime)
        return web.json_response({"ok": True})

    async def _download(self, request: web.Request) -> web.Response:
        """A file the bot sent in this persona's chat (an export), as an attachment."""
        user = self.persona_user(request, "Không tìm thấy tệp này trong cuộc trò chuyện.", 404)
        file_id = request.match_info["file_id"]
        for message in user.chat.all_messages:
            document = message.document
            if message.from_bot and document is not None and document.file_id == file_id:
                quoted = re.sub(r"[^A-Za-z0-9._-]", "_", document.file_name) or "tep"
                return web.Response(
                    body=document.data,
                    content_type=document.mime_type or "application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{quoted}"'},
                )
        raise Refusal("Không tìm thấy tệp này trong cuộc trò chuyện.", 404)

    async def _move_clock(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if "to" in body:
            try:
                when = datetime.fromisoformat(str(body["to"]))
            except ValueError:
                raise Refusal("Thời điểm không hợp lệ (ví dụ: 2024-08-15T20:00).") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=LOCAL_TZ)
            step = when - self.clock.now()
        else:
            minutes = body.get("minutes")
            if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                raise Refusal("Số phút không hợp lệ.")
            step = timedelta(minutes=minutes)
        await self.move_clock(step)
        return web.json_response(self.clock_state())


def _command(command: dict[str, Any]) -> dict[str, str]:
    return {
        "command": str(command.get("command", "")),
        "description": str(command.get("description", "")),
    }


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return -1
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Refusal("Yêu cầu không hợp lệ.") from None
    if not isinstance(body, dict):
        raise Refusal("Yêu cầu không hợp lệ.")
    return body


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Refusal as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status == 413:
            return web.json_response({"error": "Tệp quá lớn."}, status=413)
        raise
