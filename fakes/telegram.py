"""A fake Telegram Bot API server for tests, benchmarks and local rehearsals.

The real python-telegram-bot stack talks to it over HTTP::

    async with FakeBotApi() as api:
        app = Application.builder().token(api.token).base_url(api.base_url).build()
        user = api.user(1001, first_name="An")
        await user.send_text("/start")
        reply = await user.wait_for(lambda m: "Welcome" in m.text)
        await user.press("Register")

Bot methods are served at ``/bot{token}/{method}`` (form, multipart or JSON parameters, method
names case-insensitive) and answer ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": ...}`` with HTTP status ``N``, like Telegram.
A small control API lives under ``/_fake/`` for a fake running in another process.

Run standalone with ``python -m fakes.telegram --port 8081 --token 123456:TEST-TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import html
import itertools
import json
import logging
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import ClientSession, ClientTimeout, web

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "CallbackAnswer",
    "FakeBotApi",
    "FakeCallback",
    "FakeChat",
    "FakeDocument",
    "FakeMessage",
    "FakeUser",
    "HtmlParseError",
    "parse_html",
    "utf16_len",
]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "123456:TEST-TOKEN"
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_ANSWER_LENGTH = 200

ERR_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
ERR_QUERY_TOO_OLD = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
ERR_BLOCKED = "Forbidden: bot was blocked by the user"

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: ERR_BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Parameters whose string form-values are JSON documents / ints / booleans.
_JSON_KEYS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "allowed_updates",
        "commands",
        "scope",
        "menu_button",
        "media",
        "results",
        "reaction",
        "permissions",
    }
)
_INT_KEYS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "user_id",
        "max_connections",
        "cache_time",
        "reply_to_message_id",
        "message_thread_id",
        "from_chat_id",
    }
)
_FLOAT_KEYS = frozenset({"timeout"})
_BOOL_KEYS = frozenset(
    {
        "disable_web_page_preview",
        "show_alert",
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "is_personal",
        "for_channels",
    }
)
_INLINE_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram uses for limits/offsets."""
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    """An error answer of the fake API (``ok: false``)."""

    def __init__(self, status: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


# --------------------------------------------------------------------------------------------
# HTML parse mode (modelled on TDLib's parser; stricter about a bare "&" by default)
# --------------------------------------------------------------------------------------------


class HtmlParseError(ValueError):
    """Raised for text Telegram would reject with "can't parse entities"."""


_HTML_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{0,31});")


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "-_")


def _decode_html_entity(text: str, pos: int) -> tuple[str | None, int]:
    match = _ENTITY_RE.match(text, pos)
    if match is None:
        return None, pos
    body = match.group(1)
    if body.startswith("#"):
        code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None, pos
        return chr(code), match.end()
    decoded = _NAMED_ENTITIES.get(body)
    if decoded is None:
        return None, pos
    return decoded, match.end()


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the visible text
    byte_offset: int
    language: str | None = None


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML; return ``(visible_text, entities)`` or raise :class:`HtmlParseError`.

    ``strict`` also rejects a bare ``&`` that does not start a valid entity (Telegram's docs
    require escaping it; the real server silently keeps it).
    """
    out: list[str] = []
    pos16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(text)

    def byte_offset(index: int) -> int:
        return len(text[:index].encode("utf-8"))

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    while i < n:
        ch = text[i]
        if ch == "&":
            decoded, end = _decode_html_entity(text, i)
            if decoded is None:
                if strict:
                    raise HtmlParseError(
                        f'Character "&" must be escaped as "&amp;" at byte offset {byte_offset(i)}'
                    )
                emit("&")
                i += 1
            else:
                emit(decoded)
                i = end
            continue
        if ch != "<":
            j = i
            while j < n and text[j] not in "<&":
                j += 1
            emit(text[i:j])
            i = j
            continue

        begin = i
        i += 1
        if i < n and text[i] == "/":
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            name = text[i + 1 : j].lower()
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
            i = j + 1
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
            open_tag = stack.pop()
            if open_tag.name != name:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(begin)}, expected "
                    f'"</{open_tag.name}>", found "</{name}>"'
                )
            _close_html_tag(open_tag, stack, pos16, entities)
            continue

        j = i
        while j < n and _is_name_char(text[j]):
            j += 1
        name = text[i:j].lower()
        if name not in _HTML_TAG_TYPES:
            raise HtmlParseError(
                f'Unsupported start tag "{name}" at byte offset {byte_offset(begin)}'
            )
        attrs: dict[str, str] = {}
        i = j
        while True:
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise HtmlParseError(
                    f'Unclosed start tag "{name}" at byte offset {byte_offset(begin)}'
                )
            if text[i] == ">":
                i += 1
                break
            j = i
            while j < n and _is_name_char(text[j]):
                j += 1
            attr_name = text[i:j].lower()
            if not attr_name:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {byte_offset(begin)}'
                )
            i = j
            while i < n and text[i].isspace():
                i += 1
            value = ""
            if i < n and text[i] == "=":
                i += 1
                while i < n and text[i].isspace():
                    i += 1
                if i >= n:
                    raise HtmlParseError(
                        f'Unclosed start tag "{name}" at byte offset {byte_offset(begin)}'
                    )
                if text[i] in "\"'":
                    end = text.find(text[i], i + 1)
                    if end < 0:
                        raise HtmlParseError(
                            f'Unclosed start tag "{name}" at byte offset {byte_offset(begin)}'
                        )
                    value = html.unescape(text[i + 1 : end])
                    i = end + 1
                else:
                    j = i
                    while j < n and not text[j].isspace() and text[j] not in "<>\"'":
                        j += 1
                    value = html.unescape(text[i:j])
                    i = j
            attrs[attr_name] = value
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}'
            )
        if name == "tg-emoji" and not attrs.get("emoji-id"):
            raise HtmlParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {byte_offset(begin)}'
            )
        stack.append(_OpenTag(name, attrs, pos16, byte_offset(begin)))

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_html_tag(
    tag: _OpenTag, stack: list[_OpenTag], pos16: int, entities: list[dict[str, Any]]
) -> None:
    length = pos16 - tag.start
    entity_type = _HTML_TAG_TYPES[tag.name]
    entity: dict[str, Any] = {"type": entity_type, "offset": tag.start, "length": length}
    if tag.name == "code":
        language = tag.attrs.get("class", "")
        if language.startswith("language-") and stack and stack[-1].name == "pre":
            stack[-1].language = language.removeprefix("language-")
            return
    elif tag.name == "pre":
        if tag.language:
            entity["language"] = tag.language
    elif tag.name == "a":
        href = tag.attrs.get("href", "")
        if not href:
            return
        entity["url"] = href
    elif tag.name == "blockquote":
        if "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
    elif tag.name == "tg-emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    if length > 0:
        entities.append(entity)


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


class _Notifier:
    """Wake-up primitive usable from synchronous code: ``notify()`` wakes every waiter."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        self.version += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next ``notify()``; return False on timeout."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


@dataclass
class FakeDocument:
    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    data: bytes

    @property
    def filename(self) -> str:
        return self.file_name

    @property
    def file_size(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_size": self.file_size,
        }


@dataclass
class CallbackAnswer:
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    answered_at: float


@dataclass
class FakeCallback:
    id: str
    update_id: int
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float
    answer: CallbackAnswer | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None


@dataclass(eq=False)
class FakeMessage:
    """State of one message in a fake chat (a user's or the bot's)."""

    chat: FakeChat
    message_id: int
    from_bot: bool
    sender: dict[str, Any]
    date: int
    text: str = ""
    raw_text: str = ""
    parse_mode: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    document: FakeDocument | None = None
    contact: dict[str, Any] | None = None
    reply_to: FakeMessage | None = None
    link_preview_options: dict[str, Any] | None = None
    edits: int = 0
    edit_date: int | None = None
    edit_history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    seq: int = 0  # chat event sequence number of the last change (send/edit)

    @property
    def chat_id(self) -> int:
        return self.chat.id

    @property
    def is_caption(self) -> bool:
        return self.document is not None

    @property
    def inline_keyboard(self) -> list[list[dict[str, Any]]]:
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            return list(self.reply_markup["inline_keyboard"])
        return []

    @property
    def buttons(self) -> list[list[str]]:
        """Rows of inline button labels."""
        return [[str(b.get("text", "")) for b in row] for row in self.inline_keyboard]

    @property
    def inline_data(self) -> dict[str, str]:
        """Inline button label -> callback_data (buttons without callback_data are skipped)."""
        return {
            str(b.get("text", "")): str(b["callback_data"])
            for row in self.inline_keyboard
            for b in row
            if "callback_data" in b
        }

    @property
    def keyboard(self) -> list[list[str]] | None:
        """Rows of reply-keyboard labels if this message sent a reply keyboard."""
        if not self.reply_markup or "keyboard" not in self.reply_markup:
            return None
        return [[_reply_button_text(b) for b in row] for row in self.reply_markup["keyboard"]]

    def to_dict(self, *, with_reply: bool = True) -> dict[str, Any]:
        """The message as a Telegram ``Message`` JSON object."""
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "from": dict(self.sender),
            "chat": self.chat.to_dict(),
            "date": self.date,
        }
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.document is not None:
            data["document"] = self.document.to_dict()
            if self.text:
                data["caption"] = self.text
                if self.entities:
                    data["caption_entities"] = [dict(e) for e in self.entities]
        elif self.contact is not None:
            data["contact"] = dict(self.contact)
        else:
            data["text"] = self.text
            if self.entities:
                data["entities"] = [dict(e) for e in self.entities]
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            data["reply_markup"] = self.reply_markup
        if with_reply and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_dict(with_reply=False)
        return data

    def to_record(self) -> dict[str, Any]:
        """A flat JSON-able record for the control API / web chat page."""
        return {
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "date": self.date,
            "text": self.text,
            "raw_text": self.raw_text,
            "parse_mode": self.parse_mode,
            "entities": self.entities,
            "reply_markup": self.reply_markup,
            "buttons": self.buttons,
            "inline_data": self.inline_data,
            "keyboard": self.keyboard,
            "edits": self.edits,
            "deleted": self.deleted,
            "document": (
                {"file_name": self.document.file_name, "size": self.document.file_size}
                if self.document
                else None
            ),
            "contact": self.contact,
            "reply_to_message_id": self.reply_to.message_id if self.reply_to else None,
            "seq": self.seq,
        }

    def describe(self) -> str:
        who = "bot " if self.from_bot else "user"
        line = f"#{self.message_id} {who}: {self.text!r}"
        if self.document is not None:
            line += f" [document {self.document.file_name!r}, {self.document.file_size} bytes]"
        if self.contact is not None:
            line += f" [contact {self.contact.get('phone_number')}]"
        if self.buttons:
            line += f" buttons={self.buttons}"
        if self.keyboard:
            line += f" keyboard={self.keyboard}"
        if self.edits:
            line += f" (edited {self.edits}x)"
        if self.deleted:
            line += " (deleted)"
        return line


def _reply_button_text(button: Any) -> str:
    if isinstance(button, dict):
        return str(button.get("text", ""))
    return str(button)


class FakeChat:
    """A private chat (chat id == user id) with its ordered message list."""

    def __init__(self, user: FakeUser) -> None:
        self.user = user
        self.id = user.id
        self.type = "private"
        self.all_messages: list[FakeMessage] = []
        self.by_id: dict[int, FakeMessage] = {}
        self.next_message_id = 1
        self.seq = 0
        self.notifier = _Notifier()
        self.reply_keyboard: dict[str, Any] | None = None
        self.menu_button: dict[str, Any] | None = None

    @property
    def messages(self) -> list[FakeMessage]:
        return [m for m in self.all_messages if not m.deleted]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "first_name": self.user.first_name,
        }
        if self.user.last_name:
            data["last_name"] = self.user.last_name
        if self.user.username:
            data["username"] = self.user.username
        return data

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    def changed(self) -> None:
        self.notifier.notify()

    def add_message(self, from_bot: bool, sender: dict[str, Any], **fields: Any) -> FakeMessage:
        message = FakeMessage(
            chat=self,
            message_id=self.next_message_id,
            from_bot=from_bot,
            sender=sender,
            date=int(time.time()),
            seq=self.bump(),
            **fields,
        )
        self.next_message_id += 1
        self.all_messages.append(message)
        self.by_id[message.message_id] = message
        return message

    def transcript(self) -> str:
        if not self.all_messages:
            return "  (no messages)"
        return "\n".join(f"  {m.describe()}" for m in self.all_messages)


class _Own(enum.Enum):
    OWN = "own"


class FakeUser:
    """The user side of a private chat, driven by tests."""

    def __init__(
        self,
        api: FakeBotApi,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        self.api = api
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.blocked = False
        self.chat = FakeChat(self)
        self._cursor = 0

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    # -- state --------------------------------------------------------------------------------

    @property
    def messages(self) -> list[FakeMessage]:
        """All non-deleted messages of the chat, user's and bot's, in order."""
        return self.chat.messages

    def bot_messages(self) -> list[FakeMessage]:
        return [m for m in self.chat.messages if m.from_bot]

    def last_bot_message(self) -> FakeMessage | None:
        bot_messages = self.bot_messages()
        return bot_messages[-1] if bot_messages else None

    def message(self, message_id: int) -> FakeMessage:
        try:
            return self.chat.by_id[message_id]
        except KeyError:
            raise AssertionError(
                f"No message #{message_id} in chat {self.id}.\n{self.chat.transcript()}"
            ) from None

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the reply keyboard currently shown to the user (None if none)."""
        markup = self.chat.reply_keyboard
        if not markup:
            return None
        return [[_reply_button_text(b) for b in row] for row in markup.get("keyboard", [])]

    def transcript(self) -> str:
        return self.chat.transcript()

    def mark(self) -> int:
        """Current chat event number; pass as ``since=`` to :meth:`wait_for`."""
        return self.chat.seq

    def block(self) -> None:
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False

    # -- actions ------------------------------------------------------------------------------

    def _start_action(self) -> None:
        self._cursor = self.chat.seq

    async def send_text(self, text: str) -> dict[str, Any]:
        """Send a text message to the bot; returns the Telegram Message dict."""
        self._start_action()
        entities: list[dict[str, Any]] = []
        if text.startswith("/"):
            command = re.split(r"\s", text, maxsplit=1)[0]
            if len(command) > 1:
                entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command)})
        message = self.chat.add_message(
            False, self.to_dict(), text=text, raw_text=text, entities=entities
        )
        return self._queue_message(message)

    async def share_contact(
        self,
        phone_number: str,
        user_id: int | Literal[_Own.OWN] | None = _Own.OWN,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """Share a contact card (own by default; ``user_id=None`` or another id for others)."""
        self._start_action()
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": first_name if first_name is not None else self.first_name,
        }
        card_last_name = last_name if last_name is not None else self.last_name
        if card_last_name and (first_name is None or last_name is not None):
            contact["last_name"] = card_last_name
        contact_user_id = self.id if user_id is _Own.OWN else user_id
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        message = self.chat.add_message(False, self.to_dict(), contact=contact)
        return self._queue_message(message)

    async def send_document(
        self,
        file_name: str,
        data: bytes,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Send a document to the bot (downloadable through getFile)."""
        self._start_action()
        document = self.api._store_file(file_name, mime_type, data)
        message = self.chat.add_message(
            False,
            self.to_dict(),
            document=document,
            text=caption or "",
            raw_text=caption or "",
        )
        return self._queue_message(message)

    def _queue_message(self, message: FakeMessage) -> dict[str, Any]:
        payload = message.to_dict()
        self.chat.changed()
        self.api._queue_update("message", payload)
        return payload

    async def press(self, label: str, message_id: int | None = None) -> str:
        """Press an inline button by label (exact, else prefix); returns the callback query id."""
        message, button = self._find_button(label, message_id)
        if "callback_data" not in button:
            raise AssertionError(
                f"Button {button.get('text')!r} of message #{message.message_id} has no "
                f"callback_data: {button}"
            )
        return self._press(message, str(button["callback_data"]))

    async def press_data(self, data: str, message_id: int) -> str:
        """Send a callback query with arbitrary data for a message (forged/stale buttons)."""
        return self._press(self.message(message_id), data)

    def _press(self, message: FakeMessage, data: str) -> str:
        self._start_action()
        return self.api._queue_callback(self, message, data)

    def _find_button(
        self, label: str, message_id: int | None
    ) -> tuple[FakeMessage, dict[str, Any]]:
        if message_id is not None:
            candidates = [self.message(message_id)]
        else:
            candidates = [m for m in reversed(self.bot_messages()) if m.inline_keyboard]
        for exact in (True, False):
            for message in candidates:
                for row in message.inline_keyboard:
                    for button in row:
                        text = str(button.get("text", ""))
                        if (text == label) if exact else text.startswith(label):
                            return message, button
        available = "\n".join(f"  #{m.message_id}: {m.buttons}" for m in candidates[:10])
        raise AssertionError(
            f"No inline button {label!r} in chat {self.id}"
            + (f" message #{message_id}" if message_id is not None else "")
            + f". Available buttons:\n{available or '  (none)'}\n"
            f"Transcript:\n{self.chat.transcript()}"
        )

    # -- waiting ------------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int | None = None,
    ) -> FakeMessage:
        """Wait for a bot message sent or edited after the last user action matching predicate.

        Only messages whose latest change happened after ``since`` (default: the start of
        this user's last action) are considered, earliest change first.
        """
        cursor = self._cursor if since is None else since
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = sorted(
                (m for m in self.chat.all_messages if m.from_bot and not m.deleted),
                key=lambda m: m.seq,
            )
            for message in changed:
                if message.seq > cursor and (predicate is None or predicate(message)):
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"No matching bot message in chat {self.id} within {timeout}s "
                    f"(after event {cursor}).\nTranscript:\n{self.chat.transcript()}"
                )
            await self.chat.notifier.wait(remaining)

    async def wait_for_new_message(
        self,
        timeout: float = 5.0,
        predicate: Callable[[FakeMessage], bool] | None = None,
    ) -> FakeMessage:
        """Wait for a bot message sent after this call (edits don't count)."""
        first_new_id = self.chat.next_message_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for message in self.chat.all_messages:
                if (
                    message.message_id >= first_new_id
                    and message.from_bot
                    and (predicate is None or predicate(message))
                ):
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"No new bot message in chat {self.id} within {timeout}s.\n"
                    f"Transcript:\n{self.chat.transcript()}"
                )
            await self.chat.notifier.wait(remaining)

    async def wait_callback_answer(self, query_id: str, timeout: float = 5.0) -> CallbackAnswer:
        """Wait until the bot answers the callback query; returns the answer."""
        callback = self.api.callbacks[query_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while callback.answer is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"Callback query {query_id} (data={callback.data!r}) not answered within "
                    f"{timeout}s.\nTranscript:\n{self.chat.transcript()}"
                )
            await self.chat.notifier.wait(remaining)
        return callback.answer


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass
class ApiCall:
    method: str  # canonical name (e.g. "sendMessage") when known
    params: dict[str, Any]
    t: float  # time.monotonic() when the request arrived
    status: int = 0  # HTTP status of the answer (0 while in flight)
    description: str | None = None  # error description for failed calls


@dataclass
class _QueuedUpdate:
    update_id: int
    kind: str
    payload: dict[str, Any]


@dataclass
class _Injection:
    status: int | None  # None for a pure delay
    description: str | None
    retry_after: float | None
    delay: float
    after: bool
    remaining: int | None  # None = forever


BotCallListener = Callable[[str, dict[str, Any], float], None]
_Handler = Callable[["_Params"], Awaitable[Any]]


class _Params:
    """Decoded request parameters with Telegram-like validation helpers."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key)
        if value in (None, ""):
            return default
        if isinstance(value, bool):
            raise _bad_request(f"invalid {key} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad_request(f"invalid {key} specified") from None

    def get_float(self, key: str, default: float = 0.0) -> float:
        value = self.data.get(key)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad_request(f"invalid {key} specified") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def get_json(self, key: str) -> Any:
        value = self.data.get(key)
        if isinstance(value, str) and key in _JSON_KEYS:
            try:
                return json.loads(value)
            except ValueError:
                raise _bad_request(f"can't parse {key} JSON object") from None
        return value


def _normalize_params(raw: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _JSON_KEYS:
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            elif key in _INT_KEYS and re.fullmatch(r"-?\d+", value):
                value = int(value)
            elif key in _FLOAT_KEYS and re.fullmatch(r"-?\d+(\.\d*)?", value):
                value = float(value)
            elif key in _BOOL_KEYS and value.lower() in ("true", "false"):
                value = value.lower() == "true"
        params[key] = value
    return params


def _error_response(
    status: int, description: str, retry_after: float | None = None
) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


class FakeBotApi:
    """A fake Telegram Bot API HTTP server plus a Python API to play the users."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_username: str = "cchc_test_bot",
        bot_first_name: str = "CCHC Test Bot",
        strict_html: bool = True,
        max_calls: int = 100_000,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.strict_html = strict_html
        self.webhook_timeout = webhook_timeout
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 123456
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

        self.users: dict[int, FakeUser] = {}
        self.calls: deque[ApiCall] = deque(maxlen=max_calls)
        self.call_counts: Counter[str] = Counter()
        self.callbacks: dict[str, FakeCallback] = {}
        self.callback_update_ids: dict[str, int] = {}
        self.update_created_at: dict[int, float] = {}
        self.update_delivered_at: dict[int, float] = {}
        self.files: dict[str, FakeDocument] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.descriptions: dict[str, dict[str, str]] = {
            "description": {},
            "short_description": {},
            "name": {},
        }
        self.default_menu_button: dict[str, Any] = {"type": "default"}

        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_max_connections = 40
        self.webhook_delivered: list[int] = []
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None

        self._pending: deque[_QueuedUpdate] = deque()
        self._updates_notifier = _Notifier()
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._next_update_id = 10_000
        self._callback_ids = itertools.count(4_242_000_000_000_000)
        self._file_counter = itertools.count(1)
        self._injections: dict[str, list[_Injection]] = {}
        self._listeners: list[BotCallListener] = []
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._methods: dict[str, tuple[str, _Handler]] = {}
        self._register_methods()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeBotApi already started")
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_request)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file_download)
        self._add_control_routes(app)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        self._closing = True
        self._updates_notifier.notify()
        await self._stop_webhook_task()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- test API -----------------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "vi",
    ) -> FakeUser:
        """Get or create a user (and its private chat)."""
        existing = self.users.get(user_id)
        if existing is not None:
            return existing
        user = FakeUser(self, user_id, first_name, last_name, username, language_code)
        self.users[user_id] = user
        return user

    def chat(self, chat_id: int) -> FakeChat:
        return self.users[chat_id].chat

    def calls_of(self, method: str) -> list[ApiCall]:
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def on_bot_call(self, callback: BotCallListener) -> None:
        """Register ``callback(method, params, t)``, called synchronously for every bot call."""
        self._listeners.append(callback)

    def remove_bot_call_listener(self, callback: BotCallListener) -> None:
        self._listeners.remove(callback)

    def inject_error(
        self,
        method: str,
        status: int,
        description: str | None = None,
        retry_after: float | None = None,
        times: int | None = 1,
    ) -> None:
        """Make the next ``times`` calls (None = all) of ``method`` ("*" = any) fail."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        self._injections.setdefault(method.lower(), []).append(
            _Injection(status, description, retry_after, 0.0, False, times)
        )

    def inject_delay(
        self, method: str, seconds: float, times: int | None = 1, *, after: bool = False
    ) -> None:
        """Delay the next ``times`` calls of ``method``.

        ``after=False`` sleeps before processing (a client that times out cancels the call);
        ``after=True`` processes the call first and delays only the answer.
        """
        self._injections.setdefault(method.lower(), []).append(
            _Injection(None, None, None, seconds, after, times)
        )

    def clear_injections(self) -> None:
        self._injections.clear()

    @property
    def pending_updates(self) -> int:
        return len(self._pending)

    def drop_pending_updates(self) -> None:
        self._pending.clear()

    # -- internals: updates -------------------------------------------------------------------

    def _queue_update(self, kind: str, obj: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._pending.append(_QueuedUpdate(update_id, kind, {"update_id": update_id, kind: obj}))
        self.update_created_at[update_id] = time.monotonic()
        self._updates_notifier.notify()
        return update_id

    def _queue_callback(self, user: FakeUser, message: FakeMessage, data: str) -> str:
        query_id = str(next(self._callback_ids))
        payload = {
            "id": query_id,
            "from": user.to_dict(),
            "message": message.to_dict(),
            "chat_instance": str((user.chat.id * 7_919 + self.bot_id) % 10**18),
            "data": data,
        }
        update_id = self._queue_update("callback_query", payload)
        self.callbacks[query_id] = FakeCallback(
            id=query_id,
            update_id=update_id,
            user_id=user.id,
            chat_id=user.chat.id,
            message_id=message.message_id,
            data=data,
            created_at=time.monotonic(),
        )
        self.callback_update_ids[query_id] = update_id
        return query_id

    def _drop_disallowed(self) -> None:
        if not self._allowed_updates:
            return
        allowed = set(self._allowed_updates)
        if any(u.kind not in allowed for u in self._pending):
            self._pending = deque(u for u in self._pending if u.kind in allowed)

    def _store_file(self, file_name: str, mime_type: str, data: bytes) -> FakeDocument:
        number = next(self._file_counter)
        document = FakeDocument(
            file_id=f"BQACAgIAAxkBAAI{number:06d}{uuid.uuid4().hex[:16]}",
            file_unique_id=f"AgAD{number:06d}",
            file_name=file_name,
            mime_type=mime_type,
            data=data,
        )
        self.files[document.file_id] = document
        return document

    # -- internals: HTTP ----------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        try:
                            raw[key] = UploadedFile(
                                value.filename, value.content_type, value.file.read()
                            )
                        finally:
                            value.file.close()
                    elif isinstance(value, bytes | bytearray):
                        raw[key] = bytes(value).decode("utf-8", "replace")
                    else:
                        raw[key] = value
        return _normalize_params(raw)

    def _take_injection(self, method: str, *, delay: bool) -> _Injection | None:
        for key in (method.lower(), "*"):
            rules = self._injections.get(key)
            if not rules:
                continue
            for rule in rules:
                if (rule.status is None) != delay:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.remove(rule)
                return rule
        return None

    async def _handle_bot_request(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized")
        requested = request.match_info["method"]
        method, handler = self._methods.get(requested.lower(), (requested, None))
        try:
            params = await self._read_params(request)
        except ValueError:
            return _error_response(400, "Bad Request: can't parse request body")
        call = ApiCall(method, params, time.monotonic())
        self.calls.append(call)
        self.call_counts[method] += 1
        for listener in list(self._listeners):
            try:
                listener(method, params, call.t)
            except Exception:
                logger.exception("on_bot_call listener failed")

        response = await self._answer(method, handler, params)
        call.status = response.status
        if response.status != 200 and response.text:
            with contextlib.suppress(ValueError):
                call.description = json.loads(response.text).get("description")
        return response

    async def _answer(
        self, method: str, handler: _Handler | None, params: dict[str, Any]
    ) -> web.Response:
        delay = self._take_injection(method, delay=True)
        if delay is not None and not delay.after:
            await asyncio.sleep(delay.delay)
        error = self._take_injection(method, delay=False)
        if error is not None:
            assert error.status is not None
            response = _error_response(
                error.status, error.description or "Error", error.retry_after
            )
        elif handler is None:
            response = _error_response(404, "Not Found")
        else:
            try:
                result = await handler(_Params(params))
            except ApiError as exc:
                response = _error_response(exc.status, exc.description, exc.retry_after)
            else:
                response = web.json_response({"ok": True, "result": result})
        if delay is not None and delay.after:
            await asyncio.sleep(delay.delay)
        return response

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        path = request.match_info["path"]
        for document in self.files.values():
            if self._file_path(document) == path:
                return web.Response(body=document.data, content_type=document.mime_type)
        return web.Response(status=404, text="Not Found")

    @staticmethod
    def _file_path(document: FakeDocument) -> str:
        return f"documents/{document.file_unique_id}_{document.file_name}"

    # -- bot methods --------------------------------------------------------------------------

    def _register_methods(self) -> None:
        handlers: dict[str, _Handler] = {
            "getMe": self._m_get_me,
            "logOut": self._m_true,
            "close": self._m_true,
            "getUpdates": self._m_get_updates,
            "setWebhook": self._m_set_webhook,
            "deleteWebhook": self._m_delete_webhook,
            "getWebhookInfo": self._m_get_webhook_info,
            "setMyCommands": self._m_set_my_commands,
            "getMyCommands": self._m_get_my_commands,
            "deleteMyCommands": self._m_delete_my_commands,
            "setMyDescription": self._described("description"),
            "getMyDescription": self._get_described("description"),
            "setMyShortDescription": self._described("short_description"),
            "getMyShortDescription": self._get_described("short_description"),
            "setMyName": self._described("name"),
            "getMyName": self._get_described("name"),
            "setChatMenuButton": self._m_set_chat_menu_button,
            "getChatMenuButton": self._m_get_chat_menu_button,
            "getChat": self._m_get_chat,
            "sendMessage": self._m_send_message,
            "editMessageText": self._m_edit_message_text,
            "editMessageCaption": self._m_edit_message_caption,
            "editMessageReplyMarkup": self._m_edit_message_reply_markup,
            "deleteMessage": self._m_delete_message,
            "answerCallbackQuery": self._m_answer_callback_query,
            "sendDocument": self._m_send_document,
            "sendChatAction": self._m_send_chat_action,
            "getFile": self._m_get_file,
        }
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    async def _m_true(self, p: _Params) -> Any:
        return True

    async def _m_get_me(self, p: _Params) -> Any:
        return dict(self.bot_user)

    async def _m_get_updates(self, p: _Params) -> Any:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.get_int("offset", 0) or 0
        limit = min(max(p.get_int("limit", 100) or 100, 1), 100)
        timeout = max(p.get_float("timeout", 0.0), 0.0)
        allowed = p.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        if offset > 0:
            while self._pending and self._pending[0].update_id < offset:
                self._pending.popleft()
        elif offset < 0:
            self._pending = deque(list(self._pending)[offset:])

        # A new long poll supersedes the previous one, which then answers [].
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_notifier.notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._drop_disallowed()
            if self._pending or self._closing or generation != self._poll_generation:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._updates_notifier.wait(remaining)
        if self._closing or generation != self._poll_generation:
            return []
        batch = list(itertools.islice(self._pending, limit))
        now = time.monotonic()
        for update in batch:
            self.update_delivered_at.setdefault(update.update_id, now)
        return [update.payload for update in batch]

    async def _m_set_webhook(self, p: _Params) -> Any:
        url = p.get_str("url", "") or ""
        if url and not url.startswith(("http://", "https://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if p.get_bool("drop_pending_updates"):
            self._pending.clear()
        allowed = p.get_json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        self.webhook_secret = p.get_str("secret_token") or None
        self.webhook_max_connections = p.get_int("max_connections", 40) or 40
        await self._stop_webhook_task()
        self.webhook_url = url
        self._webhook_last_error = None
        if url:
            self._poll_generation += 1  # a pending long poll ends (Telegram answers 409)
            self._webhook_task = asyncio.create_task(self._webhook_loop(), name="fake-webhook")
        self._updates_notifier.notify()
        return True

    async def _m_delete_webhook(self, p: _Params) -> Any:
        if p.get_bool("drop_pending_updates"):
            self._pending.clear()
        await self._stop_webhook_task()
        self.webhook_url = ""
        self.webhook_secret = None
        return True

    async def _m_get_webhook_info(self, p: _Params) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook_url:
            info["max_connections"] = self.webhook_max_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self) -> None:
        if self._session is None:
            self._session = ClientSession()
        session = self._session
        backoff = 0.05
        while not self._closing:
            self._drop_disallowed()
            if not self._pending:
                await self._updates_notifier.wait(None)
                continue
            update = self._pending[0]
            headers = {}
            if self.webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
            started = time.monotonic()
            error: str | None = None
            try:
                async with session.post(
                    self.webhook_url,
                    json=update.payload,
                    headers=headers,
                    timeout=ClientTimeout(total=self.webhook_timeout),
                ) as response:
                    await response.read()
                    if response.status != 200:
                        error = f"Wrong response from the webhook: {response.status} " + (
                            response.reason or ""
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"Connection failed: {exc!r}"
            if error is None:
                if self._pending and self._pending[0] is update:
                    self._pending.popleft()
                self.update_delivered_at.setdefault(update.update_id, started)
                self.webhook_delivered.append(update.update_id)
                backoff = 0.05
            else:
                self._webhook_last_error = (int(time.time()), error.strip())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _command_key(self, p: _Params) -> str:
        scope = p.get_json("scope") or {"type": "default"}
        return json.dumps([scope, p.get_str("language_code", "") or ""], sort_keys=True)

    async def _m_set_my_commands(self, p: _Params) -> Any:
        commands = p.get_json("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name) or not command.get("description"):
                raise _bad_request("BOT_COMMAND_INVALID")
        self.commands[self._command_key(p)] = commands
        return True

    async def _m_get_my_commands(self, p: _Params) -> Any:
        return self.commands.get(self._command_key(p), [])

    async def _m_delete_my_commands(self, p: _Params) -> Any:
        self.commands.pop(self._command_key(p), None)
        return True

    def _described(self, kind: str) -> _Handler:
        async def handler(p: _Params) -> Any:
            self.descriptions[kind][p.get_str("language_code", "") or ""] = (
                p.get_str(kind, "") or ""
            )
            return True

        return handler

    def _get_described(self, kind: str) -> _Handler:
        async def handler(p: _Params) -> Any:
            values = self.descriptions[kind]
            language = p.get_str("language_code", "") or ""
            return {kind: values.get(language, values.get("", ""))}

        return handler

    async def _m_set_chat_menu_button(self, p: _Params) -> Any:
        button = p.get_json("menu_button") or {"type": "default"}
        if p.has("chat_id"):
            self._chat_for(p, check_blocked=False).menu_button = button
        else:
            self.default_menu_button = button
        return True

    async def _m_get_chat_menu_button(self, p: _Params) -> Any:
        if p.has("chat_id"):
            return self._chat_for(p, check_blocked=False).menu_button or self.default_menu_button
        return self.default_menu_button

    async def _m_get_chat(self, p: _Params) -> Any:
        chat = self._chat_for(p, check_blocked=False)
        data = chat.to_dict()
        data.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        return data

    def _chat_for(self, p: _Params, *, check_blocked: bool = True) -> FakeChat:
        raw = p.data.get("chat_id")
        if raw in (None, ""):
            raise _bad_request("chat_id is empty")
        user: FakeUser | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            user = self.users.get(raw)
        elif isinstance(raw, str) and raw.startswith("@"):
            user = next((u for u in self.users.values() if u.username == raw[1:]), None)
        if user is None:
            raise _bad_request("chat not found")
        if check_blocked and user.blocked:
            raise ApiError(403, ERR_BLOCKED)
        return user.chat

    def _parse_text(
        self,
        text: str,
        parse_mode: str | None,
        entities: Any,
        *,
        limit: int,
        too_long: str,
        allow_empty: bool = False,
    ) -> tuple[str, list[dict[str, Any]]]:
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                visible, parsed = parse_html(text, strict=self.strict_html)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):
            # Markdown modes are stored as sent (not parsed).
            visible = text
            parsed = [dict(e) for e in entities] if isinstance(entities, list) and not mode else []
        else:
            raise _bad_request("unsupported parse_mode")
        if not allow_empty and not visible.strip():
            raise _bad_request("message text is empty")
        if utf16_len(visible) > limit:
            raise _bad_request(too_long)
        return visible, parsed

    def _parse_markup(self, p: _Params, *, inline_only: bool = False) -> dict[str, Any] | None:
        markup = p.get_json("reply_markup")
        if markup in (None, ""):
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request("can't parse inline keyboard markup JSON object")
            for row in rows:
                for button in row:
                    _validate_inline_button(button)
            return markup
        if inline_only:
            raise _bad_request("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request("can't parse reply keyboard markup JSON object")
            for row in rows:
                for button in row:
                    if not _reply_button_text(button):
                        raise _bad_request("keyboard button text is empty")
            return markup
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return markup
        raise _bad_request("can't parse reply keyboard markup JSON object")

    def _reply_target(self, chat: FakeChat, p: _Params) -> FakeMessage | None:
        reply_parameters = p.get_json("reply_parameters")
        allow_without = p.get_bool("allow_sending_without_reply")
        reply_to_id = p.get_int("reply_to_message_id")
        if isinstance(reply_parameters, dict):
            reply_to_id = reply_parameters.get("message_id", reply_to_id)
            allow_without = bool(reply_parameters.get("allow_sending_without_reply", allow_without))
        if reply_to_id is None:
            return None
        target = chat.by_id.get(int(reply_to_id))
        if target is None or target.deleted:
            if allow_without:
                return None
            raise _bad_request("message to be replied not found")
        return target

    def _apply_reply_keyboard(self, chat: FakeChat, markup: dict[str, Any] | None) -> None:
        if markup is None:
            return
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None

    async def _m_send_message(self, p: _Params) -> Any:
        chat = self._chat_for(p)
        raw_text = p.get_str("text", "") or ""
        parse_mode = p.get_str("parse_mode") or None
        visible, entities = self._parse_text(
            raw_text,
            parse_mode,
            p.get_json("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
        )
        markup = self._parse_markup(p)
        reply_to = self._reply_target(chat, p)
        link_preview = p.get_json("link_preview_options")
        if not isinstance(link_preview, dict):
            link_preview = {"is_disabled": True} if p.get_bool("disable_web_page_preview") else None
        message = chat.add_message(
            True,
            self.bot_user,
            text=visible,
            raw_text=raw_text,
            parse_mode=parse_mode,
            entities=entities,
            reply_markup=markup,
            reply_to=reply_to,
            link_preview_options=link_preview,
        )
        self._apply_reply_keyboard(chat, markup)
        chat.changed()
        return message.to_dict()

    def _editable(self, chat: FakeChat, p: _Params) -> FakeMessage:
        if p.has("inline_message_id"):
            raise _bad_request("inline messages are not supported by the fake API")
        message_id = p.get_int("message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = chat.by_id.get(message_id)
        if message is None or message.deleted:
            raise _bad_request("message to edit not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    def _apply_edit(
        self,
        message: FakeMessage,
        *,
        text: str,
        raw_text: str,
        parse_mode: str | None,
        entities: list[dict[str, Any]],
        markup: dict[str, Any] | None,
    ) -> dict[str, Any]:
        if (
            text == message.text
            and entities == message.entities
            and markup == (message.reply_markup if message.inline_keyboard else None)
        ):
            raise _bad_request(ERR_NOT_MODIFIED.removeprefix("Bad Request: "))
        message.edit_history.append(
            {
                "text": message.text,
                "raw_text": message.raw_text,
                "parse_mode": message.parse_mode,
                "entities": message.entities,
                "reply_markup": message.reply_markup,
                "t": time.monotonic(),
            }
        )
        message.text = text
        message.raw_text = raw_text
        message.parse_mode = parse_mode
        message.entities = entities
        message.reply_markup = markup
        message.edits += 1
        message.edit_date = int(time.time())
        message.seq = message.chat.bump()
        message.chat.changed()
        return message.to_dict()

    async def _m_edit_message_text(self, p: _Params) -> Any:
        chat = self._chat_for(p)
        message = self._editable(chat, p)
        if message.document is not None or message.contact is not None:
            raise _bad_request("there is no text in the message to edit")
        raw_text = p.get_str("text", "") or ""
        parse_mode = p.get_str("parse_mode") or None
        visible, entities = self._parse_text(
            raw_text,
            parse_mode,
            p.get_json("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="MESSAGE_TOO_LONG",
        )
        return self._apply_edit(
            message,
            text=visible,
            raw_text=raw_text,
            parse_mode=parse_mode,
            entities=entities,
            markup=self._parse_markup(p, inline_only=True),
        )

    async def _m_edit_message_caption(self, p: _Params) -> Any:
        chat = self._chat_for(p)
        message = self._editable(chat, p)
        if message.document is None:
            raise _bad_request("there is no caption in the message to edit")
        raw_text = p.get_str("caption", "") or ""
        parse_mode = p.get_str("parse_mode") or None
        visible, entities = self._parse_text(
            raw_text,
            parse_mode,
            p.get_json("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
            allow_empty=True,
        )
        return self._apply_edit(
            message,
            text=visible,
            raw_text=raw_text,
            parse_mode=parse_mode,
            entities=entities,
            markup=self._parse_markup(p, inline_only=True),
        )

    async def _m_edit_message_reply_markup(self, p: _Params) -> Any:
        chat = self._chat_for(p)
        message = self._editable(chat, p)
        return self._apply_edit(
            message,
            text=message.text,
            raw_text=message.raw_text,
            parse_mode=message.parse_mode,
            entities=message.entities,
            markup=self._parse_markup(p, inline_only=True),
        )

    async def _m_delete_message(self, p: _Params) -> Any:
        chat = self._chat_for(p, check_blocked=False)
        message_id = p.get_int("message_id")
        message = chat.by_id.get(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        message.seq = chat.bump()
        chat.changed()
        return True

    async def _m_answer_callback_query(self, p: _Params) -> Any:
        query_id = p.get_str("callback_query_id", "") or ""
        callback = self.callbacks.get(query_id)
        if callback is None or callback.answer is not None:
            raise ApiError(400, ERR_QUERY_TOO_OLD)
        text = p.get_str("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        callback.answer = CallbackAnswer(
            text=text,
            show_alert=p.get_bool("show_alert"),
            url=p.get_str("url"),
            cache_time=p.get_int("cache_time"),
            answered_at=time.monotonic(),
        )
        user = self.users.get(callback.user_id)
        if user is not None:
            user.chat.changed()
        return True

    async def _m_send_document(self, p: _Params) -> Any:
        chat = self._chat_for(p)
        source = p.data.get("document")
        if isinstance(source, UploadedFile):
            document = self._store_file(
                source.filename or "document",
                source.content_type or "application/octet-stream",
                source.data,
            )
        elif isinstance(source, str) and source in self.files:
            document = self.files[source]
        elif isinstance(source, str) and source.startswith(("http://", "https://")):
            document = self._store_file(
                source.rstrip("/").rsplit("/", 1)[-1] or "document",
                "application/octet-stream",
                b"",
            )
        elif source in (None, ""):
            raise _bad_request("there is no document in the request")
        else:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        raw_caption = p.get_str("caption", "") or ""
        parse_mode = p.get_str("parse_mode") or None
        caption, entities = self._parse_text(
            raw_caption,
            parse_mode,
            p.get_json("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
            allow_empty=True,
        )
        markup = self._parse_markup(p)
        message = chat.add_message(
            True,
            self.bot_user,
            document=document,
            text=caption,
            raw_text=raw_caption,
            parse_mode=parse_mode,
            entities=entities,
            reply_markup=markup,
            reply_to=self._reply_target(chat, p),
        )
        self._apply_reply_keyboard(chat, markup)
        chat.changed()
        return message.to_dict()

    async def _m_send_chat_action(self, p: _Params) -> Any:
        self._chat_for(p)
        if not p.has("action"):
            raise _bad_request("action is empty")
        return True

    async def _m_get_file(self, p: _Params) -> Any:
        document = self.files.get(p.get_str("file_id", "") or "")
        if document is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": document.file_id,
            "file_unique_id": document.file_unique_id,
            "file_size": document.file_size,
            "file_path": self._file_path(document),
        }

    # -- control HTTP API ---------------------------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        app.router.add_post("/_fake/users/{user_id}/text", self._c_text)
        app.router.add_post("/_fake/users/{user_id}/contact", self._c_contact)
        app.router.add_post("/_fake/users/{user_id}/press", self._c_press)
        app.router.add_post("/_fake/users/{user_id}/block", self._c_block)
        app.router.add_post("/_fake/users/{user_id}/unblock", self._c_block)
        app.router.add_get("/_fake/chats/{chat_id}/messages", self._c_messages)
        app.router.add_get("/_fake/chats/{chat_id}/poll", self._c_poll)
        app.router.add_post("/_fake/inject", self._c_inject)
        app.router.add_get("/_fake/stats", self._c_stats)

    async def _c_user(self, request: web.Request) -> tuple[FakeUser, dict[str, Any]]:
        try:
            user_id = int(request.match_info["user_id"])
        except ValueError:
            raise web.HTTPBadRequest(text="user_id must be an integer") from None
        body: dict[str, Any] = {}
        if request.body_exists:
            try:
                loaded = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text="body must be JSON") from None
            if isinstance(loaded, dict):
                body = loaded
        user = self.user(
            user_id,
            first_name=str(body.get("first_name") or "Test"),
            last_name=body.get("last_name"),
            username=body.get("username"),
            language_code=body.get("language_code", "vi"),
        )
        return user, body

    async def _c_text(self, request: web.Request) -> web.Response:
        user, body = await self._c_user(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return web.json_response({"ok": False, "description": "text is required"}, status=400)
        return web.json_response({"ok": True, "result": await user.send_text(text)})

    async def _c_contact(self, request: web.Request) -> web.Response:
        user, body = await self._c_user(request)
        phone = body.get("phone_number")
        if not isinstance(phone, str) or not phone:
            return web.json_response(
                {"ok": False, "description": "phone_number is required"}, status=400
            )
        contact_user: int | Literal[_Own.OWN] | None = body.get("user_id", _Own.OWN)
        result = await user.share_contact(
            phone, user_id=contact_user, first_name=body.get("contact_first_name")
        )
        return web.json_response({"ok": True, "result": result})

    async def _c_press(self, request: web.Request) -> web.Response:
        user, body = await self._c_user(request)
        message_id = body.get("message_id")
        try:
            if "data" in body:
                if message_id is None:
                    raise AssertionError("message_id is required with data")
                query_id = await user.press_data(str(body["data"]), int(message_id))
            else:
                query_id = await user.press(
                    str(body.get("label", "")), int(message_id) if message_id else None
                )
        except AssertionError as exc:
            return web.json_response({"ok": False, "description": str(exc)}, status=400)
        return web.json_response({"ok": True, "result": {"callback_query_id": query_id}})

    async def _c_block(self, request: web.Request) -> web.Response:
        user, _ = await self._c_user(request)
        user.blocked = request.path.endswith("/block")
        return web.json_response({"ok": True, "result": {"blocked": user.blocked}})

    def _c_chat(self, request: web.Request) -> FakeChat:
        try:
            return self.chat(int(request.match_info["chat_id"]))
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text="chat not found") from None

    async def _c_messages(self, request: web.Request) -> web.Response:
        chat = self._c_chat(request)
        return web.json_response([m.to_record() for m in chat.messages])

    async def _c_poll(self, request: web.Request) -> web.Response:
        """Long poll: answer once the chat changed after event ``?after=N`` (or on timeout)."""
        chat = self._c_chat(request)
        after = int(request.query.get("after", "-1"))
        timeout = min(float(request.query.get("timeout", "25")), 60.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while chat.seq <= after and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await chat.notifier.wait(remaining)
        return web.json_response(
            {"seq": chat.seq, "messages": [m.to_record() for m in chat.messages]}
        )

    async def _c_inject(self, request: web.Request) -> web.Response:
        body = await request.json()
        method = str(body.get("method", "*"))
        times = body.get("times", 1)
        if "delay" in body and "status" not in body:
            self.inject_delay(method, float(body["delay"]), times, after=bool(body.get("after")))
        else:
            self.inject_error(
                method,
                int(body["status"]),
                description=body.get("description"),
                retry_after=body.get("retry_after"),
                times=times,
            )
        return web.json_response({"ok": True})

    async def _c_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": dict(self.call_counts),
                "total_calls": sum(self.call_counts.values()),
                "pending_updates": len(self._pending),
                "users": len(self.users),
                "updates_queued": len(self.update_created_at),
                "updates_delivered": len(self.update_delivered_at),
            }
        )


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad_request("can't parse inline keyboard button: Text must be a String")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise _bad_request("BUTTON_DATA_INVALID")
    elif not any(action in button for action in _INLINE_BUTTON_ACTIONS):
        raise _bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "url" in button and not str(button["url"]).strip():
        raise _bad_request("BUTTON_URL_INVALID")


# --------------------------------------------------------------------------------------------
# Standalone entry point
# --------------------------------------------------------------------------------------------


def _iter_lines(api: FakeBotApi) -> Iterable[str]:
    yield f"Fake Telegram Bot API listening on {api.url}"
    yield f"base_url={api.base_url}"
    yield f"base_file_url={api.base_file_url}"
    yield f"token={api.token}"


async def _serve(args: argparse.Namespace) -> None:
    api = FakeBotApi(token=args.token, host=args.host, port=args.port)
    await api.start()
    try:
        for line in _iter_lines(api):
            print(line, flush=True)
        await asyncio.Event().wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Telegram Bot API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
